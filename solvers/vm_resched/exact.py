"""The solve loop shared by the MILP and CP-SAT solvers: model, warm start, order, repair cycles, bound."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from sysgym.envs.vm_resched.instance import VmInstance
from sysgym.envs.vm_resched.state import ClusterState
from sysgym.solution import Solution
from sysgym.solvers.vm_resched import model as vm_model
from sysgym.solvers.vm_resched.bounds import lagrangian_bound, remainder_bound, remainder_bound_sum
from sysgym.solvers.vm_resched.common import order_migrations, to_fr

# Share of the time limit the Lagrangian bound may take before the solver starts (without a limit: its
# iteration cap).
BOUND_SHARE = 0.2
BOUND_ITERATIONS = 300


@dataclass
class BackendResult:
    status: str  # optimal | feasible | timeout | infeasible
    outs: dict | None  # (shape, place) -> VMs that leave; None: no solution
    ins: dict | None  # (shape, place) -> VMs that arrive
    objective: float | None  # sum of remainders
    bound: float | None  # proven lower bound on the sum of remainders (of the model solved)
    stats: dict = field(default_factory=dict)


def solve_exact(inst: VmInstance, backend, *, time_limit: float | None, seed: int, max_vms: int | None,
                warm_start: bool, solver_name: str, deterministic: bool = False) -> Solution:
    """`backend(data, time_limit, seed, no_reliance, hint, lower) -> BackendResult`.

    First a warm start (greedy) and the Lagrangian bound (`bounds.lagrangian_bound`, at most `BOUND_SHARE` of
    the time limit); when they meet, the warm start is optimal and no model is solved. Otherwise the model is
    solved, the bound passed to the backend (the MILP posts it as a cut; CP-SAT does not, see cpsat.py). The
    reported bound is the best proven one: the remainder bound, the Lagrangian bound and, when the model is
    exact (no `max_vms` restriction), the solver's bound on its first model (every repaired model is a
    restriction of it). It is never missing.

    `deterministic` (a backend whose limit is in deterministic time, CP-SAT's default): the Lagrangian bound runs
    its iteration cap (`BOUND_ITERATIONS`; it converges in 110-130 iterations, 1.4 s on medium-v1 and 3.8 s on
    large-v1) instead of a share of the wall clock, and each round's limit is what is left of `time_limit`
    after the deterministic time the earlier rounds used, so the same seed gives the same plan and bound on
    any machine. `time_limit` then bounds the solver's work, not the wall time of the whole call.
    """
    t0 = time.perf_counter()
    hint, warm = None, None
    from sysgym.solvers.vm_resched.heuristics import greedy_migrations

    warm_state, warm_moves = greedy_migrations(inst, ClusterState(inst), inst.mnl)
    upper = int((warm_state.free_cpu % inst.frag_unit).sum())
    deadline = None if time_limit is None or deterministic else t0 + BOUND_SHARE * time_limit
    lower, info = lagrangian_bound(inst, upper, max_iter=BOUND_ITERATIONS, deadline=deadline)
    lower = max(lower, remainder_bound_sum(inst))
    bound_stats = {"lagrangian_bound_fr": to_fr(inst, lower), "lagrangian_iterations": info["iterations"],
                   "remainder_bound_fr": remainder_bound(inst)}
    if lower >= upper:  # the greedy plan meets a proven bound: optimal, nothing to solve
        return Solution(decisions=list(warm_moves), objective=warm_state.fragment_rate(), status="optimal",
                        wall_time_s=time.perf_counter() - t0, bound=warm_state.fragment_rate(),
                        stats={"solver": solver_name, "proved_by": "bound", **bound_stats})
    if warm_start:
        warm = warm_moves
    data = vm_model.build(inst, max_vms=max_vms, must_include=[v for v, _, _ in warm or []])
    if warm is not None:
        hint = vm_model.counts_from(data, warm_state.vm_pm, warm_state.vm_numa)
    no_reliance: set[int] = set()
    first_bound, rounds, status = None, 0, "timeout"
    migrations: list[tuple[int, int, int]] = []
    stats: dict = {}
    work = 0.0  # deterministic time the backend used so far (deterministic mode)

    def used() -> float:
        return work if deterministic else time.perf_counter() - t0

    while True:
        remaining = None if time_limit is None else max(0.1, time_limit - used())
        res = backend(data, remaining, seed, no_reliance, hint, lower)
        work += float(res.stats.get("deterministic_time", 0.0))
        rounds += 1
        stats = {**res.stats, "rounds": rounds, "candidate_vms": int(len(data.candidates)), "exact_model": data.exact,
                 "variables": len(data.out_keys()) + len(data.in_keys()) + 2 * len(inst.node_cpu)}
        if first_bound is None and res.bound is not None:
            # Remainders are >= 0, so a solver's weaker (or -inf) bound is clamped to the trivial 0.
            first_bound = max(0.0, res.bound)  # the first model is a relaxation of all repaired ones: its bound holds
        if res.outs is None:
            status = res.status
            migrations = []
            break
        pm, numa = vm_model.placement_from(data, res.outs, res.ins)
        migrations, stuck = order_migrations(inst, pm, numa)
        status = res.status
        if not stuck:
            break
        # A cycle of moves that only works all at once: forbid relying on space freed by departures on
        # the nodes involved, and solve again.
        state = ClusterState(inst)
        for v in stuck:
            no_reliance.update(state.nodes_of(v))
            no_reliance.update(state.nodes_of(v, int(pm[v]), max(int(numa[v]), 0)))
        if rounds >= 3:
            no_reliance.update(range(len(inst.node_cpu)))
        status = "feasible" if status == "optimal" else status
        hint = None
        if time_limit is not None and used() >= time_limit:
            migrations = []  # out of time with an unorderable plan: fall back below
            break
    wall = time.perf_counter() - t0
    state = ClusterState(inst)
    for v, p, k in migrations:
        state.move(v, p, k)
    fr = state.fragment_rate()
    if warm is not None and warm_state.fragment_rate() < fr - 1e-12:
        # The solver stopped before re-finding its own warm start (CP-SAT may drop a hint): a solver
        # always answers with the best solution it knows.
        migrations, fr = list(warm), warm_state.fragment_rate()
        stats["kept_warm_start"] = True
        if status == "optimal":
            status = "feasible"
    model_bound = to_fr(inst, first_bound) if first_bound is not None else None
    bound = to_fr(inst, lower)
    if data.exact and model_bound is not None:
        bound = max(bound, model_bound)
    else:
        stats["model_bound_fr"] = model_bound  # a restricted model's bound is not the problem's
    if fr < bound <= fr + 1e-12:
        bound = fr  # float noise of the two divisions; a real excess is a bug the tests catch
    if status == "optimal" and (rounds > 1 or not data.exact):
        status = "feasible"
    stats.update(bound_stats)
    if bound >= fr - 1e-12 and migrations is not None:
        status = "optimal" if status != "infeasible" else status
    return Solution(decisions=migrations, objective=fr, status=status, wall_time_s=wall, bound=bound,
                    stats={"solver": solver_name, **stats})
