"""`TrainingPlan`: one way to split a transformer's training over GPUs, and the rules that make it legal.

Degrees: tensor (`tp`), pipeline (`pp`), data (`dp`) parallel; `micro_batch` sequences per micro-batch;
`virtual_stages` model chunks per GPU (Megatron's interleaved 1F1B); `sequence_parallel` (Korthikanti
et al. 2022); `recompute` = "none" | "selective" | "full" (activation recomputation of every layer);
`zero_stage` 0..3 (ZeRO, Rajbhandari et al. SC'20) or `distributed_optimizer` (Megatron's ZeRO-1);
`partition` = layers per pipeline stage (None: equal split); `recompute_layers` = per stage, how many of
its layers are fully recomputed (Megatron's `--recompute-method block`), the others following `recompute`
("none" or "selective").
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

    def __post_init__(self) -> None:
        for name in ("tp", "pp", "dp", "micro_batch", "virtual_stages", "zero_stage"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value:
                raise ValueError(f"TrainingPlan.{name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        for name in ("tp", "pp", "dp", "micro_batch", "virtual_stages"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainingPlan.{name} must be >= 1, got {getattr(self, name)}")
        if self.recompute not in RECOMPUTE:
            raise ValueError(f"TrainingPlan.recompute must be one of {RECOMPUTE}, got {self.recompute!r}")
        if not 0 <= self.zero_stage <= 3:
            raise ValueError(f"TrainingPlan.zero_stage must be 0..3, got {self.zero_stage}")
        object.__setattr__(self, "sequence_parallel", bool(self.sequence_parallel))
        object.__setattr__(self, "distributed_optimizer", bool(self.distributed_optimizer))
        for name in ("partition", "recompute_layers"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(int(x) for x in value))

    @property
    def num_gpus(self) -> int:
        return self.tp * self.pp * self.dp

    def replace(self, **changes: Any) -> TrainingPlan:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for key in ("partition", "recompute_layers"):
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
        parts = [f"t{self.tp}", f"p{self.pp}", f"d{self.dp}", f"b{self.micro_batch}"]
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
        return " ".join(parts)


def legality(plan: TrainingPlan, *, num_layers: int, num_heads: int, num_gpus: int, seq_len: int,
             global_batch: int) -> tuple[str, str] | None:
    """(rule, detail) of the first rule the plan breaks, or None when it is legal."""
    t, p, d, b, v = plan.tp, plan.pp, plan.dp, plan.micro_batch, plan.virtual_stages
    if t * p * d != num_gpus:
        return ("GPU count", f"dp*tp*pp = {d}*{t}*{p} = {d * t * p}, but the cluster has {num_gpus} GPUs")
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
    if plan.sequence_parallel:
        if t == 1:
            return ("sequence parallelism", "sequence_parallel needs tp > 1")
        if seq_len % t:
            return ("sequence parallelism", f"tp={t} does not divide seq_len={seq_len}")
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
    return None
