"""Offline optimum of session-level retention (OR-Tools CP-SAT) for variable-size entries.

Each gap between two turns of a session is a candidate interval [end of turn, arrival of the next turn)
holding `size` = the context after the turn; keeping it saves recomputing that context. Choose the
intervals to keep so that at every instant the kept sizes fit the pool, maximising the saved recompute
cost (`cost="tokens"`: the context length; `"quadratic"`: tokens x (1 + tokens / 4096), attention's
quadratic prefill term with 4096 a nominal context scale). Partial retention never helps (a copy dropped
before the next turn saves nothing), so this is the exact optimum of the entry-level problem. For equal
sizes and costs it is the maximum C-colourable subset of an interval graph, which the farthest-next-use
greedy (Belady with bypass) also finds (Yannakakis & Gavril 1987); a test checks both agree, and that the
optimum never recomputes more than any entry-level policy.
"""
from __future__ import annotations

import time
from typing import Any

from ortools.sat.python import cp_model

from sysgym.envs.kv_eviction.sessions import SessionWorkload


def candidate_intervals(w: SessionWorkload) -> list[tuple[int, int, float, float, int]]:
    """(turn, session, start, stop, size) for every turn that has a next turn in its session."""
    nxt = w.next_turn()
    return [(i, int(w.session[i]), float(w.end[i]), float(w.arrival[nxt[i]]), w.ctx_after(i))
            for i in range(w.num_turns) if nxt[i] >= 0 and w.ctx_after(i) <= w.capacity]


def solve_sessions_cpsat(w: SessionWorkload, *, time_limit: float | None = 30.0, cost: str = "tokens",
                         seed: int = 0) -> tuple[list, dict[str, Any]]:
    """Returns (held items for `evaluate_sessions`, stats with status, objective and bound)."""
    if cost not in ("tokens", "quadratic"):
        raise ValueError(f"cost must be 'tokens' or 'quadratic', got {cost!r}")
    t0 = time.perf_counter()
    cand = candidate_intervals(w)
    m = cp_model.CpModel()
    x = [m.NewBoolVar(f"keep_{c[0]}") for c in cand]
    starts = sorted({c[2] for c in cand})
    for t in starts:
        alive = [(k, c[4]) for k, c in enumerate(cand) if c[2] <= t < c[3]]
        if sum(s for _, s in alive) > w.capacity:
            m.Add(sum(s * x[k] for k, s in alive) <= w.capacity)

    def weight(size: int) -> int:
        return size if cost == "tokens" else int(round(size * (1 + size / 4096)))

    m.Maximize(sum(weight(c[4]) * x[k] for k, c in enumerate(cand)))
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = seed
    if time_limit is not None:
        solver.parameters.max_time_in_seconds = float(time_limit)
    code = solver.Solve(m)
    if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise RuntimeError(f"CP-SAT found no retention plan ({solver.StatusName(code)})")
    items = [(c[1], 0, c[4], c[2], c[3]) for k, c in enumerate(cand) if solver.Value(x[k])]
    stats = {"status": "optimal" if code == cp_model.OPTIMAL else "feasible", "objective": solver.ObjectiveValue(),
             "bound": solver.BestObjectiveBound(), "candidates": len(cand), "wall_time_s": time.perf_counter() - t0}
    return items, stats
