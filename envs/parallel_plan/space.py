"""The legal plan space, enumerated as numpy arrays (struct of arrays), and its vectorised evaluation.

`uniform_space(inst)` lists every legal (t, c, p, d, b, v, sp, recompute, optimizer sharding, placement) with
equal pipeline stages; `evaluate_space` prices them all with one call of the cost model. Context parallelism c
is searched when the instance uses FlashAttention (Megatron-Core's requirement) over the c that split the
sequence into 2c equal chunks; placements on a heterogeneous cluster are Megatron's rank order (None) and every
contiguous assignment of stages to node groups (each group a block of consecutive stages, in every order of the
groups), when stages take whole nodes and fill each group exactly (`placement_options`). The same arrays drive the
exhaustive solver, the env's masks and the Optuna search, so every method sees one space. `infeasible_report`
says why an instance (or a method) has no plan that fits: the smallest per-GPU memory any legal plan needs.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from sysgym.envs.parallel_plan.cost import GIB, RECOMPUTE_CODE, memory_limit_bytes
from sysgym.envs.parallel_plan.plan import RECOMPUTE, TrainingPlan

# Optimizer-state sharding options searched: (zero_stage, distributed_optimizer). ZeRO-1 costs exactly what
# the distributed optimizer costs in this model, so only the latter is searched; ZeRO-2/3 need pp == 1.
OPT_OPTIONS: tuple[tuple[int, bool], ...] = ((0, False), (0, True), (2, False), (3, False))
MAX_MICRO_BATCH: int | None = None  # None: every divisor of the per-replica batch
KEYS = ("t", "c", "p", "d", "b", "v", "sp", "base", "z", "dopt", "m", "pl")


def divisors(n: int) -> list[int]:
    return [k for k in range(1, n + 1) if n % k == 0]


def tp_options(inst) -> list[int]:
    return [t for t in divisors(inst.model.num_heads) if inst.num_gpus % t == 0]


def cp_options(inst, t: int) -> list[int]:
    """Context-parallel degrees: 1, and with FlashAttention every c dividing the GPUs left by t for which the
    sequence splits into 2c chunks (each of at least one token per tensor-parallel rank)."""
    if not inst.flash_attention:
        return [1]
    rest = inst.num_gpus // t
    return [c for c in divisors(rest) if c == 1 or (inst.seq_len % (2 * c) == 0 and inst.seq_len // (2 * c) >= t)]


def pp_options(inst, t: int, *, uniform: bool = True, c: int = 1) -> list[int]:
    L = inst.model.num_layers
    rest = inst.num_gpus // (t * c)
    return [p for p in divisors(rest) if p <= L and (not uniform or L % p == 0)]


def placement_options(inst, t: int, c: int, p: int, d: int) -> list[tuple[int, ...] | None]:
    """None (Megatron's rank order over the nodes) and, on a heterogeneous cluster whose groups the stages can
    fill with whole nodes, every contiguous assignment of stages to groups (one block per group, each order)."""
    cluster = inst.cluster
    groups = cluster.groups
    out: list[tuple[int, ...] | None] = [None]
    per_stage = t * c * d
    if len(groups) < 2 or per_stage % cluster.gpus_per_node:
        return out
    counts = []
    for g in groups:
        gpus = g.num_nodes * cluster.gpus_per_node
        if gpus % per_stage:
            return out
        counts.append(gpus // per_stage)
    if sum(counts) != p:
        return out
    for order in itertools.permutations(range(len(groups))):
        place = tuple(k for k in order for _ in range(counts[k]))
        if place not in out:
            out.append(place)
    return out


def mb_options(inst, d: int, max_micro_batch: int | None = MAX_MICRO_BATCH) -> list[int]:
    if inst.global_batch % d:
        return []
    per = inst.global_batch // d
    return [b for b in divisors(per) if max_micro_batch is None or b <= max_micro_batch]


def vs_options(inst, p: int, m: int, *, interleaving: bool = True) -> list[int]:
    if not interleaving or p < 2 or m % p:
        return [1]
    return [v for v in divisors(inst.model.num_layers // p)]


@dataclass
class Space:
    cfg: dict[str, np.ndarray]
    placements: list = field(default_factory=lambda: [None])  # cfg["pl"] -> placement (the cost model's table)

    def __len__(self) -> int:
        return len(self.cfg["t"])

    def plan(self, k: int) -> TrainingPlan:
        c = {key: self.cfg[key][k] for key in KEYS}
        return TrainingPlan(tp=int(c["t"]), pp=int(c["p"]), dp=int(c["d"]), micro_batch=int(c["b"]),
                            virtual_stages=int(c["v"]), sequence_parallel=bool(c["sp"]),
                            recompute=RECOMPUTE[int(c["base"])], zero_stage=int(c["z"]),
                            distributed_optimizer=bool(c["dopt"]), context_parallel=int(c["c"]),
                            placement=self.placements[int(c["pl"])])

    def subset(self, mask: np.ndarray) -> Space:
        return Space({k: v[mask] for k, v in self.cfg.items()}, self.placements)


def uniform_space(inst, *, interleaving: bool = True, recompute: tuple[str, ...] = RECOMPUTE,
                  opt_options: tuple[tuple[int, bool], ...] = OPT_OPTIONS, uniform: bool = True,
                  max_micro_batch: int | None = MAX_MICRO_BATCH, placements: bool = True) -> Space:
    """Every legal plan with equal stages (or, with uniform=False and interleaving=False, every pipeline depth
    up to the layer count: the global knobs of the partition solvers). placements=False keeps Megatron's rank
    order only (a placement-oblivious search)."""
    cm = inst.cost_model()
    base_codes = [RECOMPUTE_CODE[r] for r in recompute]
    blocks, tails = [], {}
    for t in tp_options(inst):
        for c in cp_options(inst, t):
            for p in pp_options(inst, t, uniform=uniform, c=c):
                d = inst.num_gpus // (t * c * p)
                places = placement_options(inst, t, c, p, d) if placements else [None]
                pls = tuple(cm.placement_id(pl) for pl in places)
                sps = (False, True) if t > 1 and (inst.seq_len // c) % t == 0 else (False,)
                key = (sps, p > 1, pls)
                if key not in tails:  # (sp, base, z, dopt, pl) combinations, built once per kind of prefix
                    tails[key] = np.array([(sp, base, z, dopt, pl) for sp, base, (z, dopt), pl in
                                           itertools.product(sps, base_codes, opt_options, pls)
                                           if not (z >= 2 and p > 1)], dtype=np.int64).reshape(-1, 5)
                tail = tails[key]
                for b in mb_options(inst, d, max_micro_batch):
                    m = inst.global_batch // (d * b)
                    for v in vs_options(inst, p, m, interleaving=interleaving):
                        blocks.append((np.array([t, c, p, d, b, v, m], dtype=np.int64), tail))
    if blocks:
        heads = np.concatenate([np.repeat(h[None, :], len(tl), axis=0) for h, tl in blocks])
        tails_all = np.concatenate([tl for _, tl in blocks])
    else:
        heads, tails_all = np.zeros((0, 7), np.int64), np.zeros((0, 5), np.int64)
    cols = dict(zip(("t", "c", "p", "d", "b", "v", "m"), heads.T))
    cols.update(zip(("sp", "base", "z", "dopt", "pl"), tails_all.T))
    cfg = {k: np.ascontiguousarray(cols[k]) for k in KEYS}
    cfg["sp"] = cfg["sp"].astype(bool)
    cfg["dopt"] = cfg["dopt"].astype(bool)
    return Space(cfg, cm.placements)


def evaluate_space(inst, space: Space) -> dict[str, np.ndarray]:
    """Iteration time, memory and feasibility of every plan in the space (one vectorised call)."""
    cm = inst.cost_model()
    if len(space) == 0:
        return {"time": np.zeros(0), "mem_total": np.zeros(0), "feasible": np.zeros(0, bool)}
    out = cm.uniform(space.cfg, inst.global_batch)
    out["feasible"] = out["mem_total"] <= memory_limit_bytes(inst.cluster, inst.memory_limit_gib)
    return out


def infeasible_report(inst) -> dict:
    """Why no plan was found: the smallest per-GPU memory any legal equal-stage plan needs (full recomputation
    and every sharding option are in the space) against the limit. `feasible` says whether that plan fits, i.e.
    whether the instance has a plan and only the method found none."""
    space = uniform_space(inst)
    if len(space) == 0:
        return {"reason": "no legal plan (check GPU count, heads, layers and global batch)", "feasible": False}
    out = evaluate_space(inst, space)
    k = int(np.argmin(out["mem_total"]))
    limit = memory_limit_bytes(inst.cluster, inst.memory_limit_gib)
    need, plan = float(out["mem_total"][k] / GIB), space.plan(k).describe()
    feasible = bool(out["feasible"].any())
    if feasible:
        reason = (f"the method found no plan that fits, but {int(out['feasible'].sum())} legal plans do: the "
                  f"smallest per-GPU memory is {need:.1f} GiB ({plan}), the limit is {limit / GIB:.1f} GiB")
    else:
        reason = (f"no feasible plan: the smallest per-GPU memory of any legal plan is {need:.1f} GiB ({plan}), "
                  f"the limit is {limit / GIB:.1f} GiB")
    return {"reason": reason, "min_memory_gib": need, "min_memory_plan": plan, "feasible": feasible}
