"""The solve loop shared by the MILP and CP-SAT solvers: model, warm start, order, repair cycles."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from sysgym.envs.vm_resched.instance import VmInstance
from sysgym.envs.vm_resched.state import ClusterState
from sysgym.solution import Solution
from sysgym.solvers.vm_resched import model as vm_model
from sysgym.solvers.vm_resched.common import order_migrations, to_fr


@dataclass
class BackendResult:
    status: str  # optimal | feasible | timeout | infeasible
    counts: list[list[int]] | None  # per group: how many of its VMs end at each place
    objective: float | None  # sum of remainders
    bound: float | None  # proven lower bound on the sum of remainders
    stats: dict = field(default_factory=dict)


def solve_exact(inst: VmInstance, backend, *, time_limit: float | None, seed: int, max_vms: int | None,
                warm_start: bool, solver_name: str) -> Solution:
    """`backend(data, time_limit, seed, no_reliance, hint) -> BackendResult`."""
    t0 = time.perf_counter()
    hint, warm = None, None
    if warm_start:
        from sysgym.solvers.vm_resched.heuristics import greedy_migrations

        warm_state, warm = greedy_migrations(inst, ClusterState(inst), inst.mnl)
    data = vm_model.build(inst, max_vms=max_vms, must_include=[v for v, _, _ in warm or []])
    if warm is not None:
        hint = vm_model.hint_counts(data, warm_state.vm_pm, warm_state.vm_numa)
    no_reliance: set[int] = set()
    first_bound, rounds, status = None, 0, "timeout"
    migrations: list[tuple[int, int, int]] = []
    stats: dict = {}
    while True:
        remaining = None if time_limit is None else max(0.1, time_limit - (time.perf_counter() - t0))
        res = backend(data, remaining, seed, no_reliance, hint)
        rounds += 1
        stats = {**res.stats, "rounds": rounds, "candidate_vms": int(len(data.vms)), "exact_model": data.exact,
                 "variables": int(sum(len(g.places) for g in data.groups))}
        if first_bound is None and res.bound is not None:
            # Remainders are >= 0, so a solver's weaker (or -inf) bound is clamped to the trivial 0.
            first_bound = max(0.0, res.bound)  # the first model is a relaxation of all repaired ones: its bound holds
        if res.counts is None:
            status = res.status
            migrations = []
            break
        pm, numa = vm_model.placement_from(data, res.counts)
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
    bound = to_fr(inst, first_bound) if (first_bound is not None and data.exact) else None
    if status == "optimal" and rounds > 1:
        status = "feasible"
    if not data.exact:
        stats["model_bound_fr"] = None if first_bound is None else to_fr(inst, first_bound)
        status = "timeout" if status == "timeout" else "feasible"
    return Solution(decisions=migrations, objective=fr, status=status, wall_time_s=wall, bound=bound,
                    stats={"solver": solver_name, **stats})
