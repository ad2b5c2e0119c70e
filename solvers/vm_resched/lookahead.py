"""`vm_resched.lookahead`: greedy with a k-migration look-ahead.

Greedy (`vm_resched.greedy`) makes the single migration that lowers the sum of remainders R most and stops
when none lowers it. Many improvements need two migrations, the first of which changes nothing (or makes R
worse): move a VM off a node so another fits there, then move that one. The look-ahead makes, at each step,
the first migration of the best sequence of up to k migrations (k = 1 is greedy), stopping when no sequence of
up to k migrations lowers R, or at MNL.

Which first migrations are examined: a migration changes R only on its source s and destination d, and every
single-NUMA VM of one shape on one node is interchangeable, as is every destination with the same free CPU. So
for every (shape, source node) x (free-CPU class of the destination) the first migration's change is exact and
the best continuation is estimated from per-shape tables (the best arrival into a node of a given free CPU,
the best departure of another VM from s, the best migration elsewhere). The `beam` first migrations with the
best estimates (and greedy's own choice) are then evaluated exactly: made, followed by the best
(k-1)-migration plan found the same way, and undone. Deterministic: no randomness, ties broken by index.
"""
from __future__ import annotations

import time

import numpy as np

from sysgym.envs.vm_resched.instance import VmInstance
from sysgym.envs.vm_resched.state import ClusterState
from sysgym.solution import Solution
from sysgym.solvers.base import Solver, register
from sysgym.solvers.vm_resched.moves import best_move, improve

INF = float("inf")


def _undo_info(state: ClusterState, v: int) -> tuple[int, int]:
    return int(state.vm_pm[v]), max(int(state.vm_numa[v]), 0)


def candidate_first_moves(state: ClusterState, limit: int) -> list[tuple[float, float, int, int, int]]:
    """Up to `limit` first migrations (estimated k=2 value, exact change, vm, pm, numa), best estimate first
    (module doc). Single-NUMA VMs outside anti-affinity groups only; greedy's choice is added by the caller."""
    u = state.unit
    f, fm = state.free_cpu, state.free_mem
    rem = f % u
    alive = np.flatnonzero(state.alive & ~state.vm_double & (state.vm_group < 0))
    if len(alive) == 0 or limit <= 0:
        return []
    src = 2 * state.vm_pm[alive] + state.vm_numa[alive]
    c, m = state.vm_cpu[alive], state.vm_mem[alive]
    # Groups: (cpu, mem, source node); representative = lowest VM index (alive is ascending).
    n_nodes = len(f)
    shape_key = c.astype(np.int64) * (int(m.max()) + 1) + m
    _, first, = np.unique(shape_key * n_nodes + src, return_index=True)
    g_c, g_m, g_s = c[first], m[first], src[first]
    g_vm = alive[first]
    cap = int(state.cap_cpu.max())
    # Shapes and their best source gain / best destination change (for continuation estimates).
    shape_keys, shape_first, shape_idx = np.unique(shape_key, return_index=True, return_inverse=True)
    shapes = np.stack([c[shape_first], m[shape_first]], 1)
    shape_idx = shape_idx.reshape(-1)
    gain_src = (f[src] + c) % u - rem[src]
    best_gain = np.full(len(shapes), INF)
    np.minimum.at(best_gain, shape_idx, gain_src.astype(float))
    best_dst = np.full(len(shapes), INF)
    for j, (sc, sm) in enumerate(shapes):
        ok = (f >= sc) & (fm >= sm)
        if ok.any():
            best_dst[j] = float(((f - sc) % u - rem)[ok].min())
    # T_in[x]: best migration into a node left with free CPU x (any shape that fits, its best source).
    xs = np.arange(cap + 1)
    t_in = np.full(cap + 1, INF)
    for j, (sc, _sm) in enumerate(shapes):
        fits = xs >= sc
        t_in[fits] = np.minimum(t_in[fits], (xs[fits] - sc) % u - xs[fits] % u + best_gain[j])
    # Per group: best departure of another VM from its source after the mover left (free f_s + c).
    hosted = np.zeros((n_nodes, len(shapes)), np.int64)
    np.add.at(hosted, (src, shape_idx), 1)
    g_shape = shape_idx[first]
    x_s = f[g_s] + g_c
    others = hosted[g_s].copy()
    others[np.arange(len(g_s)), g_shape] -= 1
    out_gain = ((x_s[:, None] + shapes[None, :, 0]) % u - (x_s % u)[:, None] + best_dst[None, :])
    out_s = np.where(others > 0, out_gain, INF).min(1)
    in_s = t_in[np.minimum(x_s, cap)]
    cont_s = np.minimum(out_s, in_s)
    # Destination classes: distinct free CPU values; two representatives each (most free memory, then index).
    order = np.lexsort((np.arange(n_nodes), -fm, f))
    vals, starts = np.unique(f[order], return_index=True)
    rep1 = order[starts]
    nxt = starts + 1
    has2 = np.append(starts[1:], n_nodes) > nxt
    rep2 = np.where(has2, order[np.minimum(nxt, n_nodes - 1)], -1)
    # delta1[g, k] and the estimated value.
    d_src = (f[g_s] + g_c) % u - rem[g_s]
    dest = np.where(rep1[None, :] != g_s[:, None], rep1[None, :], rep2[None, :])
    valid = dest >= 0
    dest_safe = np.maximum(dest, 0)
    fits = (vals[None, :] >= g_c[:, None]) & (fm[dest_safe] >= g_m[:, None]) & valid
    d_dst = (vals[None, :] - g_c[:, None]) % u - (vals % u)[None, :]
    delta1 = np.where(fits, d_src[:, None] + d_dst, INF)
    t_in_d = t_in[np.clip(vals[None, :] - g_c[:, None], 0, cap)]
    g_best = best_move(state)
    elsewhere = 0.0 if g_best is None else min(0.0, g_best[0])
    cont = np.minimum(np.minimum(cont_s[:, None], t_in_d), elsewhere)
    value = delta1 + np.minimum(cont, 0.0)
    flat = np.flatnonzero(np.isfinite(value).ravel())
    if len(flat) == 0:
        return []
    v_flat, d_flat = value.ravel()[flat], delta1.ravel()[flat]
    pick = flat[np.lexsort((flat, d_flat, v_flat))[:limit]]
    out = []
    n_cls = len(vals)
    for idx in pick:
        g, k = divmod(int(idx), n_cls)
        node = int(dest[g, k])
        out.append((float(value[g, k]), float(delta1[g, k]), int(g_vm[g]), node // 2, node % 2))
    return out


def plan(state: ClusterState, k: int, beam: int) -> tuple[float, int, tuple[float, int, int, int] | None]:
    """The best sequence of up to k migrations: (its change of R, its length, its first migration (delta, vm,
    pm, numa)); (0, 0, None) when none lowers R. Sequences are ranked by change per migration (the budget MNL
    is what they share), then by total change, then by the first migration's own change."""
    greedy = best_move(state)
    if k <= 1 or beam <= 0:
        if greedy is None or greedy[0] >= 0:
            return 0.0, 0, None
        return greedy[0], 1, greedy
    cands = [(greedy[0], greedy[0], *greedy[1:])] if greedy is not None else []
    seen = {tuple(c[2:]) for c in cands}
    for cand in candidate_first_moves(state, beam):
        if tuple(cand[2:]) not in seen:
            cands.append(cand)
            seen.add(tuple(cand[2:]))
    best = (0.0, 0.0, INF)  # (rate, value, first delta): lower is better
    best_len, best_first = 0, None
    for _est, delta1, v, pm, numa in cands[: beam + 1]:
        back = _undo_info(state, v)
        state.move(v, pm, numa)
        rest, rest_len, _ = plan(state, k - 1, beam)
        state.move(v, *back)
        value, length = (delta1 + rest, 1 + rest_len) if rest < 0 else (delta1, 1)
        if value >= 0:
            continue
        key = (value / length, value, delta1)
        if key < tuple(x - 1e-9 for x in best):
            best, best_len, best_first = key, length, (delta1, v, pm, numa)
    return best[1], best_len, best_first


def lookahead_migrations(inst: VmInstance, state: ClusterState, budget: int, k: int = 2, beam: int = 8,
                         deadline: float | None = None):
    """Apply up to `budget` look-ahead migrations to `state`; returns (state, migrations)."""

    def choose(st: ClusterState, remaining: int):
        value, _length, first = plan(st, min(k, remaining), beam)
        return None if first is None else (value, *first[1:])  # ranked by the sequence's change

    return improve(state, budget, choose, deadline)


@register
class VmLookahead(Solver):
    """Greedy with a k-migration look-ahead: each step makes the first migration of the best sequence of up to k."""

    name = "vm_resched.lookahead"
    family = "vm_resched"

    def __init__(self, k: int = 2, beam: int = 8):
        super().__init__(k=k, beam=beam)
        if int(k) < 1 or int(beam) < 0:
            from sysgym.errors import InvalidArgumentError

            raise InvalidArgumentError(f"vm_resched.lookahead needs k >= 1 and beam >= 0, got k={k}, beam={beam}")
        self.k, self.beam = int(k), int(beam)

    def solve(self, instance, *, time_limit=None, seed=0) -> Solution:
        t0 = time.perf_counter()
        deadline = None if time_limit is None else t0 + time_limit
        state, moves = lookahead_migrations(instance, ClusterState(instance), instance.mnl, self.k, self.beam, deadline)
        return Solution(moves, state.fragment_rate(), "feasible", time.perf_counter() - t0,
                        stats={"k": self.k, "beam": self.beam, "migrations": len(moves)})
