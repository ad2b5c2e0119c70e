"""`TrainingPlan`: one way to split a transformer's training over GPUs, and the rules that make it legal.

Degrees: tensor (`tp`), pipeline (`pp`), data (`dp`) parallel; `micro_batch` sequences per micro-batch;
`virtual_stages` model chunks per GPU (Megatron's interleaved 1F1B); `sequence_parallel` (Korthikanti
et al. 2022); `recompute` = "none" | "selective" | "full" (activation recomputation of every layer);
`zero_stage` 0..3 (ZeRO, Rajbhandari et al. SC'20) or `distributed_optimizer` (Megatron's ZeRO-1);
`partition` = layers per pipeline stage (None: equal split); `recompute_layers` = per stage, how many of
its layers are fully recomputed (Megatron's `--recompute-method block`), the others following `recompute`
("none" or "selective"); `context_parallel` = c, the sequence split over c ranks (Megatron-Core's context
parallelism, ring attention; needs FlashAttention); `placement` = the node group of each pipeline stage on a
heterogeneous cluster (None: Megatron's rank order over the nodes in the cluster's order).

GPUs: tp * context_parallel * pp * dp.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

RECOMPUTE = ("none", "selective", "full")


@dataclass(frozen=True)
class TrainingPlan:
    tp: int
    pp: int
    dp: int
    micro_batch: int
    virtual_stages: int = 1
    sequence_parallel: bool = False
    recompute: str = "none"
    zero_stage: int = 0
    distributed_optimizer: bool = False
    partition: tuple[int, ...] | None = None
    recompute_layers: tuple[int, ...] | None = None
    context_parallel: int = 1
    placement: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("tp", "pp", "dp", "micro_batch", "virtual_stages", "zero_stage", "context_parallel"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value:
                raise ValueError(f"TrainingPlan.{name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        for name in ("tp", "pp", "dp", "micro_batch", "virtual_stages", "context_parallel"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainingPlan.{name} must be >= 1, got {getattr(self, name)}")
        if self.recompute not in RECOMPUTE:
            raise ValueError(f"TrainingPlan.recompute must be one of {RECOMPUTE}, got {self.recompute!r}")
        if not 0 <= self.zero_stage <= 3:
            raise ValueError(f"TrainingPlan.zero_stage must be 0..3, got {self.zero_stage}")
        object.__setattr__(self, "sequence_parallel", bool(self.sequence_parallel))
        object.__setattr__(self, "distributed_optimizer", bool(self.distributed_optimizer))
        for name in ("partition", "recompute_layers", "placement"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(int(x) for x in value))

    @property
    def num_gpus(self) -> int:
        return self.tp * self.context_parallel * self.pp * self.dp

    def replace(self, **changes: Any) -> TrainingPlan:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for key in ("partition", "recompute_layers", "placement"):
            if d[key] is not None:
                d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingPlan:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(f"unknown TrainingPlan field(s) {unknown}; fields: {', '.join(sorted(fields))}")
        return cls(**data)

    def describe(self) -> str:
        parts = [f"t{self.tp}"] + ([f"c{self.context_parallel}"] if self.context_parallel > 1 else []) + \
            [f"p{self.pp}", f"d{self.dp}", f"b{self.micro_batch}"]
        if self.virtual_stages > 1:
            parts.append(f"v{self.virtual_stages}")
        if self.sequence_parallel:
            parts.append("sp")
        parts.append(f"rc={self.recompute}")
        if self.recompute_layers is not None:
            parts.append("rcl=" + ",".join(map(str, self.recompute_layers)))
        if self.zero_stage:
            parts.append(f"zero{self.zero_stage}")
        if self.distributed_optimizer:
            parts.append("distopt")
        if self.partition is not None:
            parts.append("part=" + ",".join(map(str, self.partition)))
        if self.placement is not None:
            parts.append("place=" + "".join(map(str, self.placement)))
        return " ".join(parts)


def legality(plan: TrainingPlan, *, num_layers: int, num_heads: int, num_gpus: int, seq_len: int,
             global_batch: int, flash_attention: bool = False, cluster=None) -> tuple[str, str] | None:
    """(rule, detail) of the first rule the plan breaks, or None when it is legal. `cluster` (a kernels
    Cluster) is needed to check a placement."""
    t, p, d, b, v, c = plan.tp, plan.pp, plan.dp, plan.micro_batch, plan.virtual_stages, plan.context_parallel
    if t * c * p * d != num_gpus:
        if c == 1:
            return ("GPU count", f"dp*tp*pp = {d}*{t}*{p} = {d * t * p}, but the cluster has {num_gpus} GPUs")
        return ("GPU count", f"dp*tp*cp*pp = {d}*{t}*{c}*{p} = {d * t * c * p}, but the cluster has {num_gpus} GPUs")
    if num_heads % t:
        return ("tensor parallelism divides heads", f"tp={t} does not divide {num_heads} attention heads")
    if p > num_layers:
        return ("pipeline depth", f"pp={p} exceeds the model's {num_layers} layers")
    if plan.partition is None:
        if num_layers % (p * v):
            return ("pipeline divides layers",
                    f"pp*virtual_stages = {p}*{v} = {p * v} does not divide {num_layers} layers "
                    "(give an explicit partition)")
    else:
        part = plan.partition
        if v != 1:
            return ("partition", "an explicit partition needs virtual_stages=1")
        if len(part) != p:
            return ("partition", f"partition has {len(part)} stages, pp={p}")
        if min(part) < 1:
            return ("partition", f"every stage needs >= 1 layer, got {list(part)}")
        if sum(part) != num_layers:
            return ("partition", f"partition sums to {sum(part)} layers, the model has {num_layers}")
    if global_batch % (d * b):
        return ("micro-batches", f"global batch {global_batch} is not a multiple of dp*micro_batch = {d}*{b}")
    m = global_batch // (d * b)
    if v > 1:
        if p < 2:
            return ("interleaving", "virtual_stages > 1 needs pp >= 2")
        if m % p:
            return ("interleaving", f"interleaved 1F1B needs the {m} micro-batches to be a multiple of pp={p}")
    if c > 1:
        if not flash_attention:
            return ("context parallelism", "context_parallel > 1 needs FlashAttention (Megatron-Core runs ring "
                                           "attention inside Transformer Engine's fused attention)")
        if seq_len % (2 * c):
            return ("context parallelism", f"2*context_parallel = {2 * c} does not divide seq_len={seq_len} "
                                           "(the causal load balance splits the sequence into 2c chunks)")
    if plan.sequence_parallel:
        if t == 1:
            return ("sequence parallelism", "sequence_parallel needs tp > 1")
        if (seq_len // c) % t:
            return ("sequence parallelism", f"tp={t} does not divide the {seq_len // c} tokens a rank holds")
    if plan.distributed_optimizer and plan.zero_stage:
        return ("optimizer sharding", "choose the distributed optimizer or a ZeRO stage, not both")
    if plan.zero_stage >= 2 and p > 1:
        return ("ZeRO with pipelining",
                f"ZeRO stage {plan.zero_stage} shards gradients across micro-batches, which pipeline "
                "parallelism does not support (DeepSpeed allows only stage <= 1 with pp > 1)")
    if plan.recompute_layers is not None:
        if plan.recompute == "full":
            return ("recompute_layers", "recompute_layers lists the fully recomputed layers per stage; "
                                        "use recompute='none' or 'selective' for the rest")
        if len(plan.recompute_layers) != p:
            return ("recompute_layers", f"recompute_layers has {len(plan.recompute_layers)} entries, pp={p}")
        sizes = plan.partition or (num_layers // p,) * p
        for i, (r, n) in enumerate(zip(plan.recompute_layers, sizes)):
            if not 0 <= r <= n:
                return ("recompute_layers", f"stage {i} has {n} layers, cannot recompute {r}")
        if v != 1:
            return ("recompute_layers", "recompute_layers needs virtual_stages=1")
    if plan.placement is not None:
        broken = placement_rule(plan, cluster)
        if broken is not None:
            return ("placement", broken)
    return None


def placement_rule(plan: TrainingPlan, cluster) -> str | None:
    """Why `plan.placement` cannot be laid out on `cluster` (None when it can): one node group per stage, each
    stage on whole nodes, every group's GPUs used."""
    place = plan.placement
    groups = cluster.groups if cluster is not None else ()
    if len(groups) < 2:
        return "a placement needs a cluster with node groups (a heterogeneous cluster)"
    if len(place) != plan.pp:
        return f"placement names {len(place)} stages, pp={plan.pp}"
    if min(place) < 0 or max(place) >= len(groups):
        return f"placement names groups {sorted(set(place))}; the cluster has groups 0..{len(groups) - 1}"
    per_stage = plan.tp * plan.context_parallel * plan.dp
    gpn = cluster.gpus_per_node
    if per_stage % gpn:
        return f"a placed stage takes whole nodes: its {per_stage} GPUs are not a multiple of {gpn} per node"
    for k, g in enumerate(groups):
        need = place.count(k) * per_stage
        if need != g.num_nodes * gpn:
            return (f"group {k} ({g.name or k}) has {g.num_nodes * gpn} GPUs, its {place.count(k)} stages take "
                    f"{need}")
    return None
