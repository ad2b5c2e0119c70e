"""`parallel_plan.exhaustive`: enumerate the legal plan space and price it all in one vectorised call.

`partitions="uniform"` (default): every legal (t, c, p, d, b, v, sp, recompute, sharding, placement) with equal
stages -- the space Megatron-LM accepts, placements being Megatron's rank order and, on a heterogeneous
cluster, every contiguous assignment of stages to node groups (`space.placement_options`; `placements=False`
searches the rank order only, i.e. placement-oblivious). `partitions="all"`: the partition solvers' space
instead (v = 1, any pipeline depth, every layer-to-stage split and every per-stage count of fully recomputed
layers), enumerated configuration by configuration; it is the referee for `parallel_plan.dp` and
`parallel_plan.cpsat` on instances small enough (`max_candidates`).
"""
from __future__ import annotations

import math
import time

import numpy as np

from sysgym.envs.parallel_plan.cost import memory_limit_bytes
from sysgym.envs.parallel_plan.space import evaluate_space, infeasible_report, uniform_space
from sysgym.errors import InvalidArgumentError
from sysgym.solvers.base import Solver, register
from sysgym.solvers.parallel_plan.common import (
    cfg_row,
    compositions,
    opt_options,
    partition_configs,
    plan_from,
    row_placement,
    scored_solution,
    stage_tables,
)


def best_uniform(inst, *, interleaving: bool = True, max_zero_stage: int = 3, placements: bool = True):
    """(space, evaluation, index of the fastest feasible plan or None)."""
    space = uniform_space(inst, interleaving=interleaving, opt_options=opt_options(max_zero_stage),
                          placements=placements)
    out = evaluate_space(inst, space)
    if not out["feasible"].any():
        return space, out, None
    return space, out, int(np.argmin(np.where(out["feasible"], out["time"], np.inf)))


def enumerate_partitions(inst, *, max_candidates: int = 2_000_000, deadline: float | None = None,
                         max_zero_stage: int = 3, placements: bool = True):
    """Best plan of the partition space by brute force: (plan, objective, candidates evaluated, complete)."""
    configs = partition_configs(inst, max_zero_stage=max_zero_stage, placements=placements)
    L = inst.model.num_layers
    limit = memory_limit_bytes(inst.cluster, inst.memory_limit_gib)
    best, best_plan, count = math.inf, None, 0
    for k in range(len(configs)):
        row = cfg_row(configs, k)
        tab = stage_tables(inst, row)
        p = tab.p
        for parts in compositions(L, p):
            grids = np.meshgrid(*[np.arange(n + 1) for n in parts], indexing="ij")
            rs = np.stack([g.ravel() for g in grids], axis=1)  # (K, p)
            count += len(rs)
            if count > max_candidates or (deadline is not None and time.perf_counter() > deadline):
                return best_plan, best, count, False
            idx = np.arange(p)
            nn = np.array(parts)
            taus = tab.tau_nr[idx, nn[None, :], rs]
            mems = tab.mem_nr[idx, nn[None, :], rs]
            ok = np.all(mems <= limit, axis=1)
            if not ok.any():
                continue
            end = max(tab.end[i, n] for i, n in enumerate(parts))
            obj = (tab.m - 1) * taus.max(axis=1) + taus.sum(axis=1) + end
            obj = np.where(ok, obj, np.inf)
            j = int(np.argmin(obj))
            if obj[j] < best:
                best, best_plan = float(obj[j]), plan_from(row, parts, rs[j], row_placement(inst, row))
    return best_plan, best, count, True


@register
class Exhaustive(Solver):
    """Every legal equal-stage plan priced in one vectorised call (partitions="all": every layer split too)."""

    name = "parallel_plan.exhaustive"
    family = "parallel_plan"
    kind = "exact"

    def __init__(self, partitions: str = "uniform", interleaving: bool = True, max_candidates: int = 2_000_000,
                 max_zero_stage: int = 3, placements: bool = True):
        if partitions not in ("uniform", "all"):
            raise InvalidArgumentError(f"partitions must be 'uniform' or 'all', got {partitions!r}")
        super().__init__(partitions=partitions, interleaving=interleaving, max_candidates=max_candidates,
                         max_zero_stage=max_zero_stage, placements=placements)
        self.partitions, self.interleaving, self.max_candidates = partitions, interleaving, max_candidates
        self.max_zero_stage, self.placements = max_zero_stage, placements

    def solve(self, instance, *, time_limit: float | None = None, seed: int = 0):
        t0 = time.perf_counter()
        if self.partitions == "uniform":
            space, out, k = best_uniform(instance, interleaving=self.interleaving,
                                         max_zero_stage=self.max_zero_stage, placements=self.placements)
            stats = {"plans_evaluated": len(space), "feasible_plans": int(out["feasible"].sum())}
            if k is None:
                return scored_solution(instance, None, t0, "infeasible", stats={**stats, **infeasible_report(instance)})
            plan = space.plan(k)
            stats["plans_per_s"] = len(space) / max(time.perf_counter() - t0, 1e-9)
            sol = scored_solution(instance, plan, t0, "optimal", stats=stats)
            sol.bound = sol.objective  # the whole space was enumerated
            sol.gap = 0.0
            return sol
        deadline = None if time_limit is None else t0 + float(time_limit)
        plan, _, count, complete = enumerate_partitions(instance, max_candidates=self.max_candidates,
                                                        deadline=deadline, max_zero_stage=self.max_zero_stage,
                                                        placements=self.placements)
        stats = {"plans_evaluated": count, "complete": complete}
        if plan is None:
            status = "infeasible" if complete else "timeout"
            return scored_solution(instance, None, t0, status, stats={**stats, **infeasible_report(instance)})
        sol = scored_solution(instance, plan, t0, "optimal" if complete else "timeout", stats=stats)
        if complete:
            sol.bound, sol.gap = sol.objective, 0.0
        return sol
