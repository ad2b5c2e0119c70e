"""The power-capping evaluator: the only scorer of every method.

A solution's decisions are a cap schedule: one clock level (an index into `instance.levels`) per control
interval and server, as `num_intervals` rows of `num_servers` integers. The evaluator checks its shape and
values, replays the row interval by interval (`sysgym.envs.power_cap.simulator.Row`) and returns:
`slo_attainment` (share of requests finished inside the horizon with TTFT <= slo_ttft_s and TPOT <= slo_tpot_s),
`overbudget_rate` (share of intervals whose average row power exceeds the budget: POLCA's capping-failure /
breaker-trip events), `overbudget_energy_share`, peak and mean row power, `energy_j`, TTFT/TPOT percentiles,
`capped_share`, `mean_clock`, the per-interval `row_power_w`, and the objective
`cost = (1 - slo_attainment) + overbudget_weight x overbudget_rate` (minimised).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from sysgym.envs.power_cap.instance import PowerCapInstance
from sysgym.envs.power_cap.simulator import Row
from sysgym.errors import FamilyMismatchError, InfeasibleSolutionError
from sysgym.solution import Solution


def as_schedule(inst: PowerCapInstance, solution: Solution | Any) -> np.ndarray:
    """Decisions as an (num_intervals, num_servers) int array; anything else is a named error."""
    decisions = solution.decisions if isinstance(solution, Solution) else solution
    try:
        arr = np.asarray(decisions if decisions is not None else [], dtype=float)
    except (TypeError, ValueError):
        raise InfeasibleSolutionError("format", "the cap schedule is not a table of numbers") from None
    want = (inst.num_intervals, inst.num_servers)
    if arr.shape != want:
        raise InfeasibleSolutionError("format", f"the cap schedule has shape {arr.shape}; the instance needs {want} "
                                      "(one level per interval and server)")
    bad = ~np.isfinite(arr) | (arr != np.round(arr)) | (arr < 0) | (arr >= inst.num_levels)
    if bad.any():
        k, s = (int(x) for x in np.argwhere(bad)[0])
        raise InfeasibleSolutionError("cap level", f"interval {k}, server {s} has level {arr[k, s]}; levels are "
                                      f"0..{inst.num_levels - 1} ({list(inst.levels)})")
    return arr.astype(np.int64)


def replay(inst: PowerCapInstance, schedule: np.ndarray) -> Row:
    """The row after running a checked schedule to the horizon."""
    row = Row(inst)
    for levels in schedule:
        row.step(levels)
    return row


def evaluate(inst: PowerCapInstance, solution: Solution | Any, *, raise_on_infeasible: bool = True) -> dict[str, Any]:
    """Check and replay a cap schedule and score it (see the module doc)."""
    if not isinstance(inst, PowerCapInstance):
        raise FamilyMismatchError("power_cap", inst, "power_cap.evaluate")
    try:
        schedule = as_schedule(inst, solution)
    except InfeasibleSolutionError as exc:
        if raise_on_infeasible:
            raise
        return {"feasible": False, "violation": str(exc), "cost": None}
    return replay(inst, schedule).metrics()
