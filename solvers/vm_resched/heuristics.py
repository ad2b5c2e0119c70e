"""Heuristic VM-rescheduling methods: greedy best-improvement, filter-and-score, random."""
from __future__ import annotations

import time

import numpy as np

from sysgym.envs.vm_resched.instance import VmInstance
from sysgym.envs.vm_resched.state import ClusterState
from sysgym.solution import Solution
from sysgym.solvers.base import Solver, register


def _best_move(state: ClusterState) -> tuple[float, int, int, int] | None:
    """The single migration with the largest drop in the sum of remainders: (delta, vm, pm, numa)."""
    unit = state.unit
    f, fm = state.free_cpu, state.free_mem
    rem = f % unit
    alive = np.flatnonzero(state.alive)
    best = None
    dbl = state.vm_double[alive]
    # Single-NUMA VMs, grouped by size so each destination scan is one vector operation.
    singles = alive[~dbl]
    if len(singles):
        src = 2 * state.vm_pm[singles] + state.vm_numa[singles]
        c, m = state.vm_cpu[singles], state.vm_mem[singles]
        gain_src = (f[src] + c) % unit - rem[src]
        for size in np.unique(np.stack([c, m], 1), axis=0):
            sc, sm = int(size[0]), int(size[1])
            sel = (c == sc) & (m == sm)
            ok = (f >= sc) & (fm >= sm)
            d_dst = np.where(ok, (f - sc) % unit - rem, np.inf)
            order = np.argsort(d_dst, kind="stable")[:2]
            for idx in np.flatnonzero(sel):
                v = int(singles[idx])
                if state.vm_group[v] >= 0:  # anti-affinity: its own scan with blocked PMs removed
                    d_v = d_dst.copy()
                    for pm in state.group_blocked_pms(v):
                        d_v[2 * pm:2 * pm + 2] = np.inf
                    d_v[src[idx]] = np.inf
                    dst = int(np.argmin(d_v))
                    if not np.isfinite(d_v[dst]):
                        continue
                    delta = float(gain_src[idx] + d_v[dst])
                    if best is None or delta < best[0]:
                        best = (delta, v, dst // 2, dst % 2)
                    continue
                dst = order[0] if order[0] != src[idx] else order[1] if len(order) > 1 else None
                if dst is None or not np.isfinite(d_dst[dst]):
                    continue
                delta = float(gain_src[idx] + d_dst[dst])
                if best is None or delta < best[0]:
                    best = (delta, int(singles[idx]), int(dst) // 2, int(dst) % 2)
    doubles = alive[dbl]
    if len(doubles):
        f2, fm2, rem2 = f.reshape(-1, 2), fm.reshape(-1, 2), rem.reshape(-1, 2)
        for v in doubles:
            c, m, p = int(state.vm_cpu[v]) // 2, int(state.vm_mem[v]) // 2, int(state.vm_pm[v])
            gain = float(((f2[p] + c) % unit - rem2[p]).sum())
            ok = (f2.min(1) >= c) & (fm2.min(1) >= m)
            ok[p] = False
            ok[state.group_blocked_pms(int(v))] = False
            if not ok.any():
                continue
            d = np.where(ok, ((f2 - c) % unit - rem2).sum(1), np.inf)
            q = int(np.argmin(d))
            delta = gain + float(d[q])
            if best is None or delta < best[0]:
                best = (delta, int(v), q, 0)
    return best


def greedy_migrations(inst: VmInstance, state: ClusterState, budget: int):
    moves = []
    for _ in range(budget):
        best = _best_move(state)
        if best is None or best[0] >= 0:
            break  # no migration lowers the fragment rate any more
        _, v, pm, numa = best
        state.move(v, pm, numa)
        moves.append((v, pm, numa))
    return state, moves


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
