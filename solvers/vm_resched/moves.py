"""Single-migration evaluation for the VM-rescheduling heuristics (greedy, look-ahead, LNS's warm start).

A migration changes the sum of remainders R = sum_n (free_n mod u) only on its source and destination nodes,
so the best migration of every VM is found by one vector operation per VM shape: every VM of a shape sees the
same destinations, and only its own source differs. `best_move` returns exactly what a scan over every VM in
index order, keeping the first strictly better move, would return (tie-breaks included).
"""
from __future__ import annotations

import numpy as np

from sysgym.envs.vm_resched.state import ClusterState

Move = tuple[float, int, int, int]  # (change of R, vm, pm, numa)


def _top2(d: np.ndarray) -> np.ndarray:
    """The first two indices of a stable argsort of `d` (the first minimum, then the next)."""
    first = int(np.argmin(d))
    if len(d) == 1:
        return np.array([first])
    saved, d[first] = d[first], np.inf
    second = int(np.argmin(d))
    d[first] = saved
    if second == first:  # everything else is infinite: the stable order takes the lowest other index
        second = 1 if first == 0 else 0
    return np.array([first, second])


def _shapes(cpu: np.ndarray, mem: np.ndarray) -> list[tuple[int, int]]:
    """Distinct (cpu, mem) pairs in lexicographic order (np.unique(..., axis=0) without its row sort)."""
    keys = np.unique(cpu.astype(np.int64) * (1 << 32) + mem.astype(np.int64))
    return [(int(k >> 32), int(k & ((1 << 32) - 1))) for k in keys]


def _first_min(delta: np.ndarray) -> int | None:
    """Index of the first minimum of `delta`, or None when nothing is finite."""
    if len(delta) == 0:
        return None
    i = int(np.argmin(delta))
    return i if np.isfinite(delta[i]) else None


def best_move(state: ClusterState) -> Move | None:
    """The single migration with the largest drop in the sum of remainders: (delta, vm, pm, numa)."""
    unit = state.unit
    f, fm = state.free_cpu, state.free_mem
    rem = f % unit
    alive = np.flatnonzero(state.alive)
    best: Move | None = None
    dbl = state.vm_double[alive]
    singles = alive[~dbl]
    if len(singles):
        src = 2 * state.vm_pm[singles] + state.vm_numa[singles]
        c, m = state.vm_cpu[singles], state.vm_mem[singles]
        gain_src = (f[src] + c) % unit - rem[src]
        grouped = state.vm_group[singles] >= 0
        for sc, sm in _shapes(c, m):
            sel = np.flatnonzero((c == sc) & (m == sm))
            ok = (f >= sc) & (fm >= sm)
            d_dst = np.where(ok, (f - sc) % unit - rem, np.inf)
            order = _top2(d_dst)
            s_src = src[sel]
            if len(order) > 1:
                dst = np.where(s_src != order[0], order[0], order[1])
            else:
                dst = np.where(s_src != order[0], order[0], -1)
            delta = np.where(dst >= 0, gain_src[sel] + d_dst[np.maximum(dst, 0)], np.inf)
            for j in np.flatnonzero(grouped[sel]):  # anti-affinity: its own scan with blocked PMs removed
                v = int(singles[sel[j]])
                d_v = d_dst.copy()
                for pm in state.group_blocked_pms(v):
                    d_v[2 * pm:2 * pm + 2] = np.inf
                d_v[s_src[j]] = np.inf
                dst[j] = int(np.argmin(d_v))
                delta[j] = gain_src[sel[j]] + d_v[dst[j]] if np.isfinite(d_v[dst[j]]) else np.inf
            j = _first_min(delta)
            if j is not None and (best is None or delta[j] < best[0]):
                best = (float(delta[j]), int(singles[sel[j]]), int(dst[j]) // 2, int(dst[j]) % 2)
    doubles = alive[dbl]
    if len(doubles):
        f2, fm2, rem2 = f.reshape(-1, 2), fm.reshape(-1, 2), rem.reshape(-1, 2)
        c_half, m_half = state.vm_cpu[doubles] // 2, state.vm_mem[doubles] // 2
        p_src = state.vm_pm[doubles]
        gain = ((f2[p_src] + c_half[:, None]) % unit - rem2[p_src]).sum(1).astype(float)
        delta = np.full(len(doubles), np.inf)
        dest = np.full(len(doubles), -1, np.int64)
        grouped = state.vm_group[doubles] >= 0
        for c, m in _shapes(c_half, m_half):
            sel = np.flatnonzero((c_half == c) & (m_half == m))
            ok = (f2.min(1) >= c) & (fm2.min(1) >= m)
            d = np.where(ok, ((f2 - c) % unit - rem2).sum(1), np.inf)
            order = _top2(d)
            p = p_src[sel]
            q = np.where(p != order[0], order[0], order[1] if len(order) > 1 else -1)
            dest[sel] = q
            delta[sel] = np.where(q >= 0, gain[sel] + d[np.maximum(q, 0)], np.inf)
            for j in sel[grouped[sel]]:
                ok_v = ok.copy()
                ok_v[p_src[j]] = False
                ok_v[state.group_blocked_pms(int(doubles[j]))] = False
                d_v = np.where(ok_v, d, np.inf)
                q_v = int(np.argmin(d_v))
                dest[j] = q_v
                delta[j] = gain[j] + d_v[q_v] if np.isfinite(d_v[q_v]) else np.inf
        j = _first_min(delta)
        if j is not None and (best is None or delta[j] < best[0]):
            best = (float(delta[j]), int(doubles[j]), int(dest[j]), 0)
    return best


def improve(state: ClusterState, budget: int, choose, deadline: float | None = None):
    """Make up to `budget` migrations on `state`, each the one `choose(state, remaining)` returns as
    (change of R, vm, pm, numa), while that change is negative (and before `deadline`, a
    time.perf_counter() value). Returns (state, migrations)."""
    import time

    moves: list[tuple[int, int, int]] = []
    while len(moves) < budget:
        if deadline is not None and time.perf_counter() >= deadline:
            break
        best = choose(state, budget - len(moves))
        if best is None or best[0] >= 0:
            break  # nothing lowers the fragment rate any more
        _, v, pm, numa = best
        state.move(v, pm, numa)
        moves.append((v, pm, numa))
    return state, moves
