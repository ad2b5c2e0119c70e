"""Heuristic VM-rescheduling methods: greedy best-improvement, filter-and-score, random (look-ahead: lookahead.py)."""
from __future__ import annotations

import time

import numpy as np

from sysgym.envs.vm_resched.instance import VmInstance
from sysgym.envs.vm_resched.state import ClusterState
from sysgym.solution import Solution
from sysgym.solvers.base import Solver, register
from sysgym.solvers.vm_resched.moves import best_move, improve


def greedy_migrations(inst: VmInstance, state: ClusterState, budget: int):
    """Apply up to `budget` best single migrations to `state` while one lowers R; returns (state, moves)."""
    return improve(state, budget, lambda st, _remaining: best_move(st))


@register
class VmGreedy(Solver):
    """Repeatedly make the single migration that lowers the fragment rate most (stops when none does)."""

    name = "vm_resched.greedy"
    family = "vm_resched"

    def __init__(self):
        super().__init__()

    def solve(self, instance, *, time_limit=None, seed=0) -> Solution:
        t0 = time.perf_counter()
        state, moves = greedy_migrations(instance, ClusterState(instance), instance.mnl)
        return Solution(moves, state.fragment_rate(), "feasible", time.perf_counter() - t0)


@register
class VmFilterScore(Solver):
    """A production-style filter-and-score rescheduler (OpenStack Nova filter scheduler / Kubernetes
    scheduler shape): pick VMs off the most fragmented NUMA nodes, filter destinations where the VM fits,
    score them by alignment to the reference size and by packing (best fit), keep a move only when the
    fragment rate does not rise."""

    name = "vm_resched.filter_score"
    family = "vm_resched"

    def __init__(self, align_weight: float = 1.0, pack_weight: float = 0.5):
        super().__init__(align_weight=align_weight, pack_weight=pack_weight)
        self.align_weight, self.pack_weight = align_weight, pack_weight

    def solve(self, instance, *, time_limit=None, seed=0) -> Solution:
        t0 = time.perf_counter()
        state = ClusterState(instance)
        unit = state.unit
        rem = state.free_cpu % unit
        # Source order: nodes with the largest remainder first; small VMs first on each node.
        vm_rem = np.array([max(rem[n] for n in state.nodes_of(v)) for v in range(state.num_vms)])
        order = np.lexsort((np.arange(state.num_vms), state.vm_cpu, -vm_rem))
        moves = []
        for v in order:
            if len(moves) >= instance.mnl or vm_rem[v] == 0:
                break
            v = int(v)
            c, m = state.per_node_demand(v)
            before = state.fragment_rate()
            if state.vm_double[v]:
                f2, fm2 = state.free_cpu.reshape(-1, 2), state.free_mem.reshape(-1, 2)
                ok = (f2.min(1) >= c) & (fm2.min(1) >= m)
                ok[state.vm_pm[v]] = False
                ok[state.group_blocked_pms(v)] = False
                after = f2 - c
                score = -self.align_weight * (after % unit).sum(1) / unit - self.pack_weight * after.sum(1) / (
                    2 * instance.node_cpu.max())
                cand = [(p, 0) for p in np.flatnonzero(ok)]
                scores = score[ok]
            else:
                ok = (state.free_cpu >= c) & (state.free_mem >= m)
                ok[state.nodes_of(v)[0]] = False
                for pm in state.group_blocked_pms(v):
                    ok[2 * pm:2 * pm + 2] = False
                after = state.free_cpu - c
                score = -self.align_weight * (after % unit) / unit - self.pack_weight * after / instance.node_cpu.max()
                cand = [(n // 2, n % 2) for n in np.flatnonzero(ok)]
                scores = score[ok]
            if not cand:
                continue
            pm, numa = cand[int(np.argmax(scores))]
            old_pm, old_numa = int(state.vm_pm[v]), int(state.vm_numa[v])
            state.move(v, pm, numa)
            if state.fragment_rate() > before:
                state.move(v, old_pm, max(old_numa, 0))  # undo: never make things worse
                continue
            moves.append((v, int(pm), int(numa)))
        return Solution(moves, state.fragment_rate(), "feasible", time.perf_counter() - t0)


@register
class VmRandom(Solver):
    """MNL random feasible migrations (a floor every method must beat)."""

    name = "vm_resched.random"
    family = "vm_resched"
    kind = "baseline"

    def __init__(self):
        super().__init__()

    def solve(self, instance, *, time_limit=None, seed=0) -> Solution:
        t0 = time.perf_counter()
        rng = np.random.default_rng([int(seed), 0x524E44])
        state = ClusterState(instance)
        moves = []
        for _ in range(instance.mnl):
            for _attempt in range(100):
                v = int(rng.integers(state.num_vms))
                c, m = state.per_node_demand(v)
                cand = state.feasible_nodes(c * (2 if state.vm_double[v] else 1),
                                            m * (2 if state.vm_double[v] else 1), bool(state.vm_double[v]))
                blocked = set(state.group_blocked_pms(v).tolist())
                if state.vm_double[v]:
                    cand = [(int(p), 0) for p in cand if p != state.vm_pm[v] and p not in blocked]
                else:
                    cand = [(int(n) // 2, int(n) % 2) for n in cand
                            if n != state.nodes_of(v)[0] and n // 2 not in blocked]
                if cand:
                    pm, numa = cand[int(rng.integers(len(cand)))]
                    state.move(v, pm, numa)
                    moves.append((v, pm, numa))
                    break
        return Solution(moves, state.fragment_rate(), "feasible", time.perf_counter() - t0)
