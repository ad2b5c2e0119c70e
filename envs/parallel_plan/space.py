"""The legal plan space, enumerated as numpy arrays (struct of arrays), and its vectorised evaluation.

`uniform_space(inst)` lists every legal (t, p, d, b, v, sp, recompute, optimizer sharding) with equal
pipeline stages; `evaluate_space` prices them all with one call of the cost model. The same arrays drive the
exhaustive solver, the env's masks and the Optuna search, so every method sees one space. `infeasible_report`
says why an instance (or a method) has no plan that fits: the smallest per-GPU memory any legal plan needs.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from sysgym.envs.parallel_plan.cost import GIB, RECOMPUTE_CODE, memory_limit_bytes
from sysgym.envs.parallel_plan.plan import RECOMPUTE, TrainingPlan

# Optimizer-state sharding options searched: (zero_stage, distributed_optimizer). ZeRO-1 costs exactly what
# the distributed optimizer costs in this model, so only the latter is searched; ZeRO-2/3 need pp == 1.
OPT_OPTIONS: tuple[tuple[int, bool], ...] = ((0, False), (0, True), (2, False), (3, False))
MAX_MICRO_BATCH: int | None = None  # None: every divisor of the per-replica batch
KEYS = ("t", "p", "d", "b", "v", "sp", "base", "z", "dopt", "m")


def divisors(n: int) -> list[int]:
    return [k for k in range(1, n + 1) if n % k == 0]


def tp_options(inst) -> list[int]:
    return [t for t in divisors(inst.model.num_heads) if inst.num_gpus % t == 0]


def pp_options(inst, t: int, *, uniform: bool = True) -> list[int]:
    L = inst.model.num_layers
    rest = inst.num_gpus // t
    return [p for p in divisors(rest) if p <= L and (not uniform or L % p == 0)]


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

    def __len__(self) -> int:
        return len(self.cfg["t"])

    def plan(self, k: int) -> TrainingPlan:
        c = {key: self.cfg[key][k] for key in KEYS}
        return TrainingPlan(tp=int(c["t"]), pp=int(c["p"]), dp=int(c["d"]), micro_batch=int(c["b"]),
                            virtual_stages=int(c["v"]), sequence_parallel=bool(c["sp"]),
                            recompute=RECOMPUTE[int(c["base"])], zero_stage=int(c["z"]),
                            distributed_optimizer=bool(c["dopt"]))

    def subset(self, mask: np.ndarray) -> Space:
        return Space({k: v[mask] for k, v in self.cfg.items()})


def uniform_space(inst, *, interleaving: bool = True, recompute: tuple[str, ...] = RECOMPUTE,
                  opt_options: tuple[tuple[int, bool], ...] = OPT_OPTIONS, uniform: bool = True,
                  max_micro_batch: int | None = MAX_MICRO_BATCH) -> Space:
    """Every legal plan with equal stages (or, with uniform=False and interleaving=False, every pipeline depth
    up to the layer count: the global knobs of the partition solvers)."""
    rows = []
    base_codes = [RECOMPUTE_CODE[r] for r in recompute]
    for t in tp_options(inst):
        for p in pp_options(inst, t, uniform=uniform):
            d = inst.num_gpus // (t * p)
            for b in mb_options(inst, d, max_micro_batch):
                m = inst.global_batch // (d * b)
                for v in vs_options(inst, p, m, interleaving=interleaving):
                    sps = (False, True) if t > 1 and inst.seq_len % t == 0 else (False,)
                    for sp, base, (z, dopt) in itertools.product(sps, base_codes, opt_options):
                        if z >= 2 and p > 1:
                            continue
                        rows.append((t, p, d, b, v, sp, base, z, dopt, m))
    arr = np.array(rows, dtype=np.int64).reshape(-1, len(KEYS))
    cfg = {k: arr[:, j] for j, k in enumerate(KEYS)}
    cfg["sp"] = cfg["sp"].astype(bool)
    cfg["dopt"] = cfg["dopt"].astype(bool)
    return Space(cfg)


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
