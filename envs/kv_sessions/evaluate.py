"""The session-level evaluator: the family's only scorer (DESIGN.md contract 2).

A solution's decisions are held items `(owner, lo, hi, start, stop)`: tokens [lo, hi) of session `owner`'s
context (owner >= 0) or of prefix group g's system prompt (owner = -1 - g), held in the pool during
[start, stop). The evaluator re-checks them (the pool's capacity at every instant; a session's tokens held only
after the session computed them; prefix items within the system prompt), derives what each turn finds in the
pool (the held prefix of its context at its arrival), and reports

* `recompute_tokens` (the leaderboard objective, lower is better): context tokens prefilled again;
* `hit_rate` (turns after the first that found their whole context) and `token_hit_rate`;
* `prefill_tokens`, `turns`; with `serve=True` (default) `ttft_mean`, `ttft_p90`, `e2e_mean` from pricing the
  prefills on the LLM-serving simulator (`sysgym.envs.llm_serving.simulate`, its public API).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from sysgym.envs.kv_sessions.instance import SessionWorkload
from sysgym.errors import InfeasibleSolutionError
from sysgym.solution import Solution


def as_items(solution: Solution | list | None) -> list[tuple[int, int, int, float, float]]:
    decisions = solution.decisions if isinstance(solution, Solution) else solution
    out = []
    for k, it in enumerate(decisions or []):
        try:
            o, lo, hi, a, b = it
            item = (int(o), int(lo), int(hi), float(a), float(b))
        except (TypeError, ValueError):
            raise InfeasibleSolutionError("format", f"held item {k} is {it!r}, expected (owner, lo, hi, start, "
                                          "stop)") from None
        if not (0 <= item[1] < item[2]) or not item[3] <= item[4] or not np.isfinite(item[3:]).all():
            raise InfeasibleSolutionError("item", f"held item {item} is malformed")
        out.append(item)
    return out


def reuse_per_turn(w: SessionWorkload, items: Solution | list | None) -> np.ndarray:
    """Checks the holdings and returns, per turn, the context tokens served from the pool."""
    items = as_items(items)
    ev = []
    for _o, lo, hi, a, b in items:
        ev += [(a, 1, hi - lo), (b, 0, -(hi - lo))]
    ev.sort()
    used = 0
    for t, _, d in ev:
        used += d
        if used > w.capacity:
            raise InfeasibleSolutionError("capacity", f"{used} tokens held at t={t:.3f} s; the pool holds "
                                          f"{w.capacity}")
    by_owner: dict[int, list] = {}
    for it in items:
        by_owner.setdefault(it[0], []).append(it)
    first_end: dict[int, float] = {}
    for i in range(w.num_turns):
        s = int(w.session[i])
        first_end[s] = min(first_end.get(s, np.inf), float(w.end[i]))
    for o in by_owner:
        if o >= 0 and o not in first_end:
            raise InfeasibleSolutionError("content", f"held item of session {o}, which the workload does not have")
    reuse = np.zeros(w.num_turns, np.int64)
    for i in range(w.num_turns):
        s, g, t = int(w.session[i]), int(w.group[i]), float(w.arrival[i])
        limit = int(w.ctx_before[i])
        cover = []
        for o, lo, hi, a, b in by_owner.get(s, []) + by_owner.get(-1 - g, []):
            if not (a <= t <= b):
                continue
            if o >= 0 and a < first_end[s]:
                raise InfeasibleSolutionError("content", f"session {s} tokens held from t={a:.3f} s, before the "
                                              "session computed anything")
            if o < 0 and hi > w.prefix_tokens:
                raise InfeasibleSolutionError("content", f"prefix item {(o, lo, hi)} exceeds the "
                                              f"{w.prefix_tokens}-token system prompt")
            cover.append((lo, min(hi, limit)))
        x = 0
        for lo, hi in sorted(cover):
            if lo > x:
                break
            x = max(x, hi)
        reuse[i] = min(x, limit)
    return reuse


def evaluate(instance: SessionWorkload, solution: Solution | list | None, *, serve: bool = True,
             model: str = "llama-2-7b", gpu: str = "a100-80gb") -> dict[str, Any]:
    """Hit rates, recompute tokens and (with `serve`) TTFT from the serving simulator (see the module doc)."""
    w = instance
    reuse = reuse_per_turn(w, solution)
    later = w.turn > 0
    reusable = w.ctx_before[later]
    # The first turn of a session could only reuse a shared system prompt.
    prefill = w.ctx_before + w.new_input - reuse
    recompute = int((w.ctx_before - reuse).sum())
    out: dict[str, Any] = {
        "recompute_tokens": recompute,
        "objective": recompute,  # the family objective under the generic name the runner prints
        "hit_rate": float(np.mean(reuse[later] >= reusable)) if later.any() else 0.0,
        "token_hit_rate": float(reuse[later].sum() / max(1, reusable.sum())),
        "prefill_tokens": int(prefill.sum()),
        "turns": int(w.num_turns),
        "feasible": True,
    }
    if serve:
        from sysgym.envs.llm_serving import Trace, simulate

        trace = Trace.sorted(w.arrival, np.maximum(1, prefill), np.maximum(1, w.output), session=w.session)
        res = simulate(trace, model=model, gpu=gpu)
        out.update(ttft_mean=float(res.metrics["ttft_mean"]), ttft_p90=float(res.metrics["ttft_p90"]),
                   e2e_mean=float(res.metrics["e2e_mean"]))
    return out


def evaluate_sessions(w: SessionWorkload, items: Solution | list | None, **options: Any) -> dict[str, Any]:
    """The old name (`sysgym.envs.kv_eviction.sessions.evaluate_sessions`) of `evaluate`."""
    return evaluate(w, items, **options)
