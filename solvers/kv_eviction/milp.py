"""`kv_eviction.milp`: the offline optimum of retained attention mass (OR-Tools MILP), Belady-like.

Mass is a proxy: the leaderboard ranks `loss_increase`, which this schedule does not minimise (see
oracle.py, the offline search on the real loss, and its gap to this one in benchmarks/kv_eviction_bench.py).

Knowing the whole full-cache attention trace `W` (aggregated to the granularity's groups), choose for
every group a monotone schedule (an evicted token stays evicted) that maximises the attention mass the
kept tokens carry, summed over the decode steps:

    max   sum_{t in D} sum_{j < t} W[t, j] x[t, j]
    s.t.  sum_{j < t} x[t, j] <= budget - 1              (token t itself always fits)   t = P .. T-2
          x[t, j] <= x[t-1, j]                            (monotone)                     t > P, j < t-1
          x binary

Each group is an independent model (their sum is the evaluator's `attention_mass` times a constant), so
the total bound is the sum of the groups' bounds. Per-head granularity (the default) dominates every
coarser schedule, so the optimum retains at least the mass of every online policy on the same trace.
The schedule is then replayed through the incremental decoder (claimed loss) and scored by the evaluator
like every other method; `stats` reports the mass bound and gap.
"""
from __future__ import annotations

import time

import numpy as np
from ortools.linear_solver import pywraplp

from sysgym.envs.kv_eviction.evaluate import full_attention
from sysgym.envs.kv_eviction.instance import KvInstance
from sysgym.envs.kv_eviction.simulator import GRANULARITIES, instance_model, run_policy
from sysgym.errors import InvalidArgumentError, UnknownNameError
from sysgym.solution import Solution, relative_gap
from sysgym.solver import Solver, register
from sysgym.solvers.kv_eviction.policies import H2O, ScheduleReplay, scored_solution


def schedule_mass(w: np.ndarray, e: np.ndarray, prompt_len: int) -> float:
    """sum over decode rows t in [P, T-2] of the W mass on tokens kept at t, for one group."""
    t_len = len(e)
    rows = np.arange(prompt_len, t_len - 1)
    j = np.arange(t_len)
    kept = (j[None, :] <= rows[:, None]) & (rows[:, None] < e[None, :])
    return float((w[rows] * kept).sum())


def solve_group(w: np.ndarray, prompt_len: int, budget: int, *, backend: str, time_limit: float | None,
                hint: np.ndarray | None, seed: int = 0) -> tuple[np.ndarray, float, float, str, dict]:
    """One group's MILP: returns (evict_step, objective mass, bound, status, stats)."""
    t_len = w.shape[0]
    p = prompt_len
    s = pywraplp.Solver.CreateSolver(backend)
    if time_limit is not None:
        s.SetTimeLimit(max(1, int(time_limit * 1000)))
    s.SetNumThreads(1)
    if backend.upper() == "SCIP":
        s.SetSolverSpecificParametersAsString(f"randomization/randomseedshift = {int(seed)}\n")
    x: dict[tuple[int, int], pywraplp.Variable] = {}
    objective = s.Objective()
    const = 0.0
    for t in range(p, t_len - 1):  # the scored decode steps
        row = []
        for j in range(t):
            v = s.BoolVar(f"x_{t}_{j}")
            x[t, j] = v
            row.append(v)
            if w[t, j] != 0.0:
                objective.SetCoefficient(v, float(w[t, j]))
            if t > p and j < t - 1:
                s.Add(v <= x[t - 1, j])
        const += float(w[t, t])
        s.Add(sum(row) <= budget - 1)
    objective.SetMaximization()
    if hint is not None:
        keys = list(x)
        s.SetHint([x[k] for k in keys], [1.0 if hint[k[1]] > k[0] else 0.0 for k in keys])
    code = s.Solve()
    stats = {"variables": s.NumVariables(), "constraints": s.NumConstraints(), "nodes": s.nodes()}
    if code not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        return None, float("nan"), float("inf"), "timeout", stats
    e = np.full(t_len, t_len, np.int64)
    for j in range(t_len):
        e[j] = max(p, j + 1)
    for (t, j), v in x.items():
        if v.solution_value() > 0.5:
            e[j] = max(e[j], t + 1)
    status = "optimal" if code == pywraplp.Solver.OPTIMAL else "timeout"
    return e, s.Objective().Value() + const, s.Objective().BestBound() + const, status, stats


@register
class KvMilp(Solver):
    """Offline-optimal (clairvoyant) eviction maximising retained attention mass."""

    name = "kv_eviction.milp"
    family = "kv_eviction"
    # exact for attention mass only: it does not minimise the family objective (loss_increase), so it is ranked
    # as an offline search like kv_eviction.oracle (which searches on the real loss), never as the optimum
    kind = "search"

    def __init__(self, granularity: str = "head", backend: str = "CBC", warm_start: bool = True,
                 max_seq_len: int = 256):
        super().__init__(granularity=granularity, backend=backend, warm_start=warm_start, max_seq_len=max_seq_len)
        if granularity not in GRANULARITIES:
            raise UnknownNameError("granularity", granularity, GRANULARITIES)
        if pywraplp.Solver.CreateSolver(backend) is None:
            raise InvalidArgumentError(f"MILP backend {backend!r} is not available in this OR-Tools build; "
                             "try CBC, SCIP or HIGHS")
        self.granularity, self.backend, self.warm_start = granularity, backend, warm_start
        self.max_seq_len = max_seq_len

    def solve(self, instance: KvInstance, *, time_limit: float | None = None, seed: int = 0) -> Solution:
        t0 = time.perf_counter()
        if instance.seq_len > self.max_seq_len:
            raise InvalidArgumentError(f"kv_eviction.milp is for short traces: {instance.seq_len} tokens > max_seq_len "
                             f"{self.max_seq_len} (each group's model has ~T^2/2 binaries); raise max_seq_len "
                             "or use a shorter instance")
        instance_model(instance)
        w = full_attention(instance, self.granularity)  # (N, GL, GH, T, T)
        hint = None
        if self.warm_start:
            hint = run_policy(instance, H2O(granularity=self.granularity), seed=seed).evict_step
        n, gl, gh, t_len, _ = w.shape
        groups = [(a, b, c) for a in range(n) for b in range(gl) for c in range(gh)]
        evict = np.empty((n, gl, gh, t_len), np.int64)
        total = bound = 0.0
        statuses, nvars = [], 0
        for k, g in enumerate(groups):
            left = None
            if time_limit is not None:
                left = max(0.05, (time_limit - (time.perf_counter() - t0)) / (len(groups) - k))
            e, obj, bnd, status, st = solve_group(w[g], instance.prompt_len, instance.budget, backend=self.backend,
                                                  time_limit=left, hint=None if hint is None else hint[g], seed=seed)
            nvars += st["variables"]
            if hint is not None:  # keep the warm start where the solver stopped at something worse
                h_mass = schedule_mass(w[g], hint[g], instance.prompt_len)
                if e is None or h_mass > schedule_mass(w[g], e, instance.prompt_len) + 1e-12:
                    e = hint[g].astype(np.int64)
            if e is None:
                raise RuntimeError(f"kv_eviction.milp found no schedule for group {g} within the time limit")
            evict[g] = e
            total += schedule_mass(w[g], e, instance.prompt_len)
            bound += bnd
            statuses.append(status)
        # Replay the schedule through the incremental decoder: same mechanism as every online policy.
        milp_seconds = time.perf_counter() - t0
        sim = run_policy(instance, ScheduleReplay(evict, self.granularity), seed=seed)
        denom = len(groups) * (t_len - 1 - instance.prompt_len)
        mass, mass_bound = total / denom, min(bound / denom, 1.0)
        status = "optimal" if all(s == "optimal" for s in statuses) else "timeout"
        stats = {"attention_mass_milp": mass, "attention_mass_bound": mass_bound,
                 "attention_mass_gap": relative_gap(mass, mass_bound), "groups": len(groups),
                 "variables": nvars, "granularity": self.granularity, "backend": self.backend,
                 "milp_seconds": milp_seconds}
        return scored_solution(instance, sim, t0, status, stats)
