"""`vm_resched.lns`: large-neighbourhood search with CP-SAT, warm-started from the look-ahead.

1. Start: greedy's plan, continued by the k-migration look-ahead (`lookahead.py`) within its share of the
   time (on medium-v1 seeds 0-2 and large-v1 seed 0 that gives the look-ahead's own plans in half its time).
2. Global bound: the Lagrangian bound (`bounds.lagrangian_bound`, at least the remainder bound); if the start
   meets it, it is optimal and the search ends.
3. Destroy and repair: choose a few PMs (the neighbourhood), keep every count of the exact model
   (`model.py`: VMs of each shape leaving and arriving at each place) outside them as the incumbent has it,
   and let CP-SAT re-optimise the counts of their places: VMs move among the chosen PMs, their exchange with
   the rest of the cluster stays what it was, and the migration limit counts every migration. Neighbourhoods
   rotate between four kinds: PMs drawn with probability growing with their NUMA remainders, the PMs the
   incumbent's migrations touch (half of them, the rest by remainder), PMs drawn uniformly, and PMs drawn
   by the Lagrangian relaxation's advice (nodes left with more remainder than the relaxation gives them,
   and nodes the relaxation moves VMs to or from). A repair
   that lowers the sum of remainders, or keeps it with another plan, becomes the incumbent when its
   migrations can be ordered (`common.order_migrations`). The neighbourhood grows by a quarter when CP-SAT
   proves a repair optimal without improving, and shrinks when a repair runs out of time.
4. Anytime: the best plan when the time limit or the iteration limit is reached, with the global bound. When
   the neighbourhood has grown to every PM, a repair is the whole exact model and CP-SAT's bound on it
   raises the global bound (and proves the incumbent optimal when they meet: the search then stops).

Determinism: each repair is one CP-SAT worker with a deterministic time limit (`sub_time`, CP-SAT's
`max_deterministic_time`), seeded with `seed` and the iteration; neighbourhoods come from a generator seeded
with `seed`; the look-ahead and the Lagrangian bound are deterministic. Run to an iteration limit
(`iterations`, no time limit), the same seed gives the same plan. The time limit is wall-clock: it stops
the look-ahead, the bound and the search wherever they are, so timed runs may differ.
"""
from __future__ import annotations

import time

import numpy as np
from ortools.sat.python import cp_model

from sysgym.envs.vm_resched.instance import VmInstance
from sysgym.envs.vm_resched.state import ClusterState
from sysgym.errors import InvalidArgumentError
from sysgym.solution import Solution
from sysgym.solvers.base import Solver, register
from sysgym.solvers.vm_resched import model as vm_model
from sysgym.solvers.vm_resched.bounds import congruent_ceiling, lagrangian_bound, remainder_bound_sum
from sysgym.solvers.vm_resched.common import order_migrations, to_fr
from sysgym.solvers.vm_resched.cpsat import cpsat_model
from sysgym.solvers.vm_resched.heuristics import greedy_migrations
from sysgym.solvers.vm_resched.lookahead import lookahead_migrations

# Shares of the time limit the start and the bound may use (the search gets the rest). The look-ahead's plan
# is most of the answer at 10 s on large (it needs about 6 s there after greedy).
START_SHARE = 0.6
BOUND_SHARE = 0.2
DEFAULT_ITERATIONS = 200  # without a time limit and without `iterations`


def _remainder_sum(state: ClusterState) -> int:
    return int((state.free_cpu % state.unit).sum())


def _apply(inst: VmInstance, migrations) -> ClusterState:
    state = ClusterState(inst)
    for v, p, k in migrations:
        state.move(v, p, k)
    return state


class _Neighbourhoods:
    """The four kinds of neighbourhood (module doc), drawn from one seeded generator."""

    def __init__(self, inst: VmInstance, seed: int, relaxed_change: np.ndarray):
        self.inst = inst
        self.rng = np.random.default_rng([int(seed), 0x4C4E53])  # "LNS"
        self.num_pms = inst.num_pms
        free = inst.node_cpu - inst.node_usage()[0]
        self.relaxed_rem = (free + relaxed_change) % inst.frag_unit  # each node's remainder in the relaxation
        self.relaxed_moves = relaxed_change != 0

    def draw(self, iteration: int, size: int, state: ClusterState, migrations) -> list[int]:
        size = max(1, min(int(size), self.num_pms))
        kind = iteration % 4
        rem = (state.free_cpu % state.unit).reshape(-1, 2).sum(1).astype(float)
        by_remainder = (rem + 1.0) / (rem + 1.0).sum()
        if kind == 0:
            return sorted(self.rng.choice(self.num_pms, size, replace=False, p=by_remainder).tolist())
        if kind == 3:
            # Guided by the Lagrangian relaxation: nodes left with more remainder than the relaxation gives
            # them, and nodes the relaxation moves VMs to or from.
            short = np.maximum(state.free_cpu % state.unit - self.relaxed_rem, 0) + self.relaxed_moves
            w = short.reshape(-1, 2).sum(1).astype(float) + 0.05
            return sorted(self.rng.choice(self.num_pms, size, replace=False, p=w / w.sum()).tolist())
        if kind == 1:
            touched = sorted({int(self.inst.vm_pm[v]) for v, _, _ in migrations} | {int(p) for _, p, _ in migrations})
            take = min(len(touched), max(1, size // 2))
            chosen = set(self.rng.choice(touched, take, replace=False).tolist()) if touched else set()
            rest = [p for p in range(self.num_pms) if p not in chosen]
            if rest and size > len(chosen):
                w = by_remainder[rest] / by_remainder[rest].sum()
                chosen |= set(self.rng.choice(rest, min(size - len(chosen), len(rest)), replace=False, p=w).tolist())
            return sorted(int(p) for p in chosen)
        return sorted(self.rng.choice(self.num_pms, size, replace=False).tolist())


@register
class VmLns(Solver):
    """Large-neighbourhood search: CP-SAT re-optimises a few PMs at a time from a look-ahead start; anytime, bounded."""

    name = "vm_resched.lns"
    family = "vm_resched"
    kind = "search"

    def __init__(self, k: int = 2, pms: int = 16, sub_time: float = 1.0, iterations: int | None = None,
                 bound_iterations: int = 300, workers: int = 1):
        super().__init__(k=k, pms=pms, sub_time=sub_time, iterations=iterations, bound_iterations=bound_iterations,
                         workers=workers)
        if int(k) < 1 or int(pms) < 1 or not sub_time > 0 or (iterations is not None and int(iterations) < 0) \
                or int(workers) < 1 or int(bound_iterations) < 0:
            raise InvalidArgumentError(f"vm_resched.lns: need k >= 1, pms >= 1, sub_time > 0, iterations >= 0, "
                                       f"bound_iterations >= 0, workers >= 1; got {self.config}")
        self.k, self.pms, self.sub_time = int(k), int(pms), float(sub_time)
        self.iterations = None if iterations is None else int(iterations)
        self.bound_iterations, self.workers = int(bound_iterations), int(workers)

    def solve(self, instance, *, time_limit=None, seed=0) -> Solution:
        inst: VmInstance = instance
        t0 = time.perf_counter()
        deadline = None if time_limit is None else t0 + time_limit
        # 1. start: greedy's migrations, then the look-ahead's from there (the same plans as the look-ahead
        # alone on medium-v1 seeds 0-2 and large-v1 seed 0, in half the time)
        start_deadline = None if time_limit is None else t0 + START_SHARE * time_limit
        state, migrations = greedy_migrations(inst, ClusterState(inst), inst.mnl)
        state, more = lookahead_migrations(inst, state, inst.mnl - len(migrations), self.k, 8, start_deadline)
        migrations = migrations + more
        best_r = _remainder_sum(state)
        start_r = best_r
        start_r0 = _remainder_sum(ClusterState(inst))
        # 2. global bound
        bound_deadline = None if time_limit is None else min(deadline, time.perf_counter() + BOUND_SHARE * time_limit)
        lower, info = lagrangian_bound(inst, best_r, max_iter=self.bound_iterations, deadline=bound_deadline)
        lower = max(lower, remainder_bound_sum(inst))
        stats = {"start_fr": to_fr(inst, start_r), "lagrangian_iterations": info["iterations"],
                 "bound_fr": to_fr(inst, lower)}
        # 3. destroy and repair
        iterations = self.iterations
        if iterations is None and time_limit is None:
            iterations = DEFAULT_ITERATIONS
        data = vm_model.build(inst)
        inc_out, inc_in = vm_model.counts_from(data, state.vm_pm, state.vm_numa)
        hoods = _Neighbourhoods(inst, seed, info["node_change"])
        size = min(self.pms, inst.num_pms)
        it = improved = accepted = 0
        while best_r > lower and inst.num_vms and (iterations is None or it < iterations):
            if deadline is not None and time.perf_counter() >= deadline:
                break
            pms = hoods.draw(it, size, state, migrations)
            free_nodes = {n for p in pms for n in (2 * p, 2 * p + 1)}
            m, outs, ins = cpsat_model(data, hint=(inc_out, inc_in), neighbourhood=(free_nodes, inc_out, inc_in))
            solver = cp_model.CpSolver()
            solver.parameters.num_workers = self.workers
            solver.parameters.random_seed = int(seed) + it
            solver.parameters.max_deterministic_time = self.sub_time
            if deadline is not None:
                solver.parameters.max_time_in_seconds = max(0.01, deadline - time.perf_counter())
            code = solver.Solve(m)
            it += 1
            if len(pms) == inst.num_pms and code in (cp_model.OPTIMAL, cp_model.FEASIBLE):
                # Every PM free: the repair is the whole exact model, so its bound is the problem's.
                lower = max(lower, congruent_ceiling(solver.BestObjectiveBound(), start_r0, inst.frag_unit))
            if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
                size = max(2, int(size * 0.8))
                continue
            new_out = {k: v for k, v in inc_out.items() if k not in outs}
            new_in = {k: v for k, v in inc_in.items() if k not in ins}
            new_out.update({k: int(solver.Value(v)) for k, v in outs.items() if solver.Value(v)})
            new_in.update({k: int(solver.Value(v)) for k, v in ins.items() if solver.Value(v)})
            changed = new_out != inc_out or new_in != inc_in
            if changed:
                pm, numa = vm_model.placement_from(data, new_out, new_in)
                order, stuck = order_migrations(inst, pm, numa)
                if not stuck:
                    trial = _apply(inst, order)
                    r = _remainder_sum(trial)
                    if r <= best_r:
                        improved += r < best_r
                        accepted += 1
                        best_r, state, migrations = r, trial, order
                        inc_out, inc_in = new_out, new_in
            if code == cp_model.OPTIMAL and not changed:
                size = min(inst.num_pms, max(size + 1, int(size * 1.25)))
            elif code != cp_model.OPTIMAL:
                size = max(2, int(size * 0.8))
        wall = time.perf_counter() - t0
        fr = state.fragment_rate()
        bound = to_fr(inst, lower)
        stats.update(iterations=it, improvements=improved, accepted=accepted, neighbourhood_pms=size,
                     bound_fr=to_fr(inst, lower))
        return Solution(migrations, fr, "optimal" if best_r <= lower else "feasible", wall, bound=bound, stats=stats)
