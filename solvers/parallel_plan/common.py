"""Shared pieces of the parallel-plan solvers: scoring a chosen plan with the evaluator and per-stage cost tables
for partition search. (Why an instance has no plan that fits is the plan space's `infeasible_report`.)"""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass

import numpy as np

from sysgym.envs.parallel_plan.cost import memory_limit_bytes
from sysgym.envs.parallel_plan.plan import RECOMPUTE, TrainingPlan
from sysgym.envs.parallel_plan.space import OPT_OPTIONS, Space, uniform_space
from sysgym.solution import Solution


def scored_solution(inst, plan: TrainingPlan | None, t0: float, status: str, *, bound: float | None = None,
                    stats: dict | None = None) -> Solution:
    """A Solution whose objective is the evaluator's score of `plan` (never the solver's own arithmetic). With
    no plan, `status` says why: "infeasible" (the method's space has no plan that fits) or "timeout"."""
    wall = time.perf_counter() - t0
    if plan is None:
        return Solution(decisions=None, objective=math.inf, status=status, wall_time_s=wall, stats=stats or {})
    est = inst.estimate(plan)
    if not est.feasible:  # a solver bug, not a user error: refuse to report an infeasible plan as a result
        raise RuntimeError(f"solver produced an infeasible plan {plan.describe()}: {est.reason}")
    if bound is not None:
        bound = min(bound, est.iteration_time_s)
    return Solution(decisions=plan.to_dict(), objective=est.iteration_time_s, status=status, wall_time_s=wall,
                    bound=bound, stats={"plan": plan.describe(), "tflops_per_gpu": est.tflops_per_gpu,
                                        "memory_gib": est.memory_gib.total, **(stats or {})})


# -- partition search -----------------------------------------------------------------------------------------
def opt_options(max_zero_stage: int = 3) -> tuple[tuple[int, bool], ...]:
    """The sharding options searched when ZeRO stages above `max_zero_stage` are excluded."""
    return tuple(o for o in OPT_OPTIONS if o[0] <= max_zero_stage)


def partition_configs(inst, *, recompute_base=("none", "selective"), max_zero_stage: int = 3,
                      placements: bool = True) -> Space:
    """Global knobs (t, c, p, d, b, sp, base recompute, sharding, placement) of the partition solvers: v = 1,
    every pipeline depth up to the layer count (stages may be unequal); placements=False keeps Megatron's rank
    order only (CP-SAT assigns stages to node groups itself)."""
    return uniform_space(inst, interleaving=False, recompute=recompute_base, uniform=False,
                         opt_options=opt_options(max_zero_stage), placements=placements)


@dataclass
class StageTables:
    """For one configuration: per stage i and layer count n, the fewest fully recomputed layers r*(n) that fit
    in memory, and the resulting time per micro-batch tau[i, n] and end-of-iteration time end[i, n]."""

    p: int
    m: int
    tau: np.ndarray  # (p, L+1), inf where no r fits
    end: np.ndarray  # (p, L+1)
    r: np.ndarray  # (p, L+1) int, -1 where no r fits
    tau_nr: np.ndarray  # (p, L+1, L+1) full table, inf where r > n
    mem_nr: np.ndarray  # (p, L+1, L+1)


def stage_tables(inst, cfg_row: dict) -> StageTables:
    cm = inst.cost_model()
    L = inst.model.num_layers
    p = int(cfg_row["p"])
    i = np.arange(p)[:, None, None]
    n = np.arange(L + 1)[None, :, None]
    r = np.arange(L + 1)[None, None, :]
    if int(cfg_row["z"]) == 3:
        st = cm.stage_terms(cfg_row, i, n, r)
        tau_full, mem_full, end = st["tau"], st["mem_total"], np.broadcast_to(st["end"], st["tau"].shape)[:, :, 0]
    else:
        # Stage time and memory are affine in the number of recomputed layers (each adds a forward and swaps a
        # layer's activations for its input), so two evaluations give the whole table.
        st0 = cm.stage_terms(cfg_row, i[:, :, 0], n[:, :, 0], 0)
        st1 = cm.stage_terms(cfg_row, i[:, :, 0], n[:, :, 0], 1)
        d_tau, d_mem = st1["tau"] - st0["tau"], st1["mem_total"] - st0["mem_total"]
        tau_full = st0["tau"][:, :, None] + r * d_tau[:, :, None]
        mem_full = st0["mem_total"][:, :, None] + r * d_mem[:, :, None]
        end = st0["end"]
    valid = (r <= n) & (n >= 1)
    limit = memory_limit_bytes(inst.cluster, inst.memory_limit_gib)
    fits = valid & (mem_full <= limit)
    tau_nr = np.where(valid, tau_full, np.inf)
    mem_nr = np.where(valid, mem_full, np.inf)
    # The layer-wise memory-budget choice: a layer is recomputed only when the budget needs it. Layers of a
    # stage are identical, so the knapsack over them picks the fewest recomputed layers that fit.
    any_fit = fits.any(axis=2)
    r_star = np.where(any_fit, np.argmax(fits, axis=2), -1)
    rr = np.maximum(r_star, 0)[:, :, None]
    tau = np.where(any_fit, np.take_along_axis(tau_nr, rr, axis=2)[:, :, 0], np.inf)
    end = np.array(end, float, copy=True)
    return StageTables(p=p, m=int(cfg_row["m"]), tau=tau, end=end, r=r_star, tau_nr=tau_nr, mem_nr=mem_nr)


def compositions(total: int, parts: int):
    """All ordered ways to write `total` as `parts` positive integers."""
    for cuts in itertools.combinations(range(1, total), parts - 1):
        bounds = (0, *cuts, total)
        yield tuple(bounds[k + 1] - bounds[k] for k in range(parts))


def plan_from(cfg_row: dict, parts, rs, placement=None) -> TrainingPlan:
    return TrainingPlan(tp=int(cfg_row["t"]), pp=int(cfg_row["p"]), dp=int(cfg_row["d"]),
                        micro_batch=int(cfg_row["b"]), virtual_stages=1, sequence_parallel=bool(cfg_row["sp"]),
                        recompute=RECOMPUTE[int(cfg_row["base"])], zero_stage=int(cfg_row["z"]),
                        distributed_optimizer=bool(cfg_row["dopt"]), partition=tuple(int(x) for x in parts),
                        recompute_layers=tuple(int(x) for x in rs), context_parallel=int(cfg_row.get("c", 1)),
                        placement=placement)


def row_placement(inst, cfg_row: dict):
    """The placement a configuration row names (its `pl` in the instance's cost model)."""
    return inst.cost_model().placement(int(cfg_row.get("pl", 0)))


def cfg_row(space: Space, k: int) -> dict:
    return {key: space.cfg[key][k].item() for key in space.cfg}
