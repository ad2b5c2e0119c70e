"""The serverless evaluator: the only scorer of every method.

A solution's decisions are the instance lifetimes it produced: `(function, load_s, unload_s)` triples (any
order). The evaluator re-checks them against the instance and derives everything else:

* each function has at most one instance at a time (lifetimes of one function do not overlap);
* every invocation finds its function's instance loaded when it arrives (`load <= arrival < unload`). The
  instance is ready `cold_s` after its load; an invocation arriving earlier waits (a cold start; one that arrives
  while a pre-warm is loading waits the rest). It then runs for its execution time, and the instance may not be
  unloaded before it ends;
* at every moment the loaded instances fit in the pool's memory (`capacity_mb`).

Metrics: `cold_starts` (invocations that waited), `cold_start_rate`, added latency (`added_latency_mean_s`,
`added_latency_p99_s`, over all invocations), `cold_start_s` (total waiting, also split by cold-start
component), `wasted_gb_s` (memory-time of loaded instances with no invocation running or waiting: idle keep-alive
and pre-warm loading), per-function fairness (`fairness_jain`: Jain's index of the functions' warm-start rates;
`max_function_cold_rate`), and the objective `cost = cold_start_s + memory_weight x wasted_gb_s`.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from sysgym.envs.serverless.instance import COMPONENTS, ServerlessInstance, max_overlap
from sysgym.envs.serverless.simulator import EPS
from sysgym.errors import FamilyMismatchError, InfeasibleSolutionError
from sysgym.solution import Solution

TOL = 1e-6  # seconds (and MB) of floating-point slack in the checks


def as_schedule(solution: Solution | Iterable[Sequence[float]] | None) -> np.ndarray:
    """Decisions as an (n, 3) array of (function, load, unload); a malformed entry is a named error."""
    decisions = solution.decisions if isinstance(solution, Solution) else solution
    rows = []
    for i, d in enumerate(decisions or []):
        try:
            f, load, unload = d
            rows.append((int(f), float(load), float(unload)))
        except (TypeError, ValueError):
            raise InfeasibleSolutionError("format", f"lifetime {i} is {d!r}, expected (function, load_s, unload_s)") \
                from None
        if rows[-1][0] != f and not float(f).is_integer():
            raise InfeasibleSolutionError("format", f"lifetime {i} names function {f!r}, not an integer")
    return np.array(rows, float).reshape(-1, 3)


def evaluate(inst: ServerlessInstance, solution: Solution | Iterable[Sequence[float]] | None, *,
             raise_on_infeasible: bool = True) -> dict[str, Any]:
    """Re-check a schedule of instance lifetimes and score it (see the module doc)."""
    if not isinstance(inst, ServerlessInstance):
        raise FamilyMismatchError("serverless", inst, "serverless.evaluate")
    try:
        return _evaluate(inst, as_schedule(solution))
    except InfeasibleSolutionError as exc:
        if raise_on_infeasible:
            raise
        return {"feasible": False, "violation": str(exc), "cost": None}


def _evaluate(inst: ServerlessInstance, sched: np.ndarray) -> dict[str, Any]:
    n_f, n = inst.num_functions, inst.num_invocations
    if len(sched):
        fs = sched[:, 0]
        bad = np.flatnonzero((fs < 0) | (fs >= n_f) | (fs != np.round(fs)))
        if len(bad):
            raise InfeasibleSolutionError("function index", f"lifetime {int(bad[0])} names function {fs[bad[0]]}; "
                                          f"the instance has {n_f}")
        bad = np.flatnonzero(~np.isfinite(sched[:, 1:]).all(axis=1))
        if len(bad):
            raise InfeasibleSolutionError("format", f"lifetime {int(bad[0])} has a non-finite time")
        bad = np.flatnonzero((sched[:, 1] < -TOL) | (sched[:, 2] < sched[:, 1] - TOL)
                             | (sched[:, 2] > inst.end_s + TOL))
        if len(bad):
            i = int(bad[0])
            raise InfeasibleSolutionError("lifetime", f"lifetime {i} of function {int(sched[i, 0])} is "
                                          f"[{sched[i, 1]}, {sched[i, 2]}); lifetimes lie in [0, {inst.end_s}]")
    sched = sched[np.lexsort((sched[:, 1], sched[:, 0]))] if len(sched) else sched
    funcs = sched[:, 0].astype(np.int64) if len(sched) else np.zeros(0, np.int64)
    bounds = np.searchsorted(funcs, np.arange(n_f + 1))
    wait = np.zeros(n)
    inv_by_f = inst.function_invocations()
    busy_s = np.zeros(n_f)
    loaded_s = np.zeros(n_f)
    cold = inst.cold_s
    for f in range(n_f):
        rows = sched[bounds[f]:bounds[f + 1]]
        loads, unloads = rows[:, 1], rows[:, 2]
        if len(rows) > 1 and (loads[1:] < unloads[:-1] - TOL).any():
            k = int(np.argmax(loads[1:] < unloads[:-1] - TOL))
            raise InfeasibleSolutionError("one instance per function",
                                          f"function {f}'s lifetimes [{loads[k]}, {unloads[k]}) and "
                                          f"[{loads[k + 1]}, {unloads[k + 1]}) overlap")
        loaded_s[f] = float((unloads - loads).sum())
        idx = inv_by_f[f]
        if len(idx) == 0:
            continue
        a, e = inst.inv_time[idx], inst.inv_exec[idx]
        k = np.searchsorted(loads, a, side="right") - 1
        uncovered = (k < 0) | (a >= unloads[np.maximum(k, 0)] if len(rows) else np.ones(len(a), bool))
        if uncovered.any():
            j = int(idx[np.argmax(uncovered)])
            raise InfeasibleSolutionError("coverage", f"invocation {j} of function {f} arrives at {inst.inv_time[j]} s "
                                          "and finds no instance loaded (a lifetime must start at or before it)")
        ready = loads[k] + cold[f]
        start = np.maximum(a, ready)
        end = start + e
        late = end > unloads[k] + TOL
        if late.any():
            i = int(np.argmax(late))
            raise InfeasibleSolutionError("unloaded while running",
                                          f"invocation {int(idx[i])} of function {f} runs until {end[i]} s; its "
                                          f"instance is unloaded at {unloads[k[i]]} s")
        wait[idx] = start - a
        # Busy time: the union of [arrival, end) (running or waiting); it lies inside the lifetimes.
        prev_end = np.maximum.accumulate(np.r_[-np.inf, end[:-1]])
        busy_s[f] = float(np.maximum(0.0, end - np.maximum(a, prev_end)).sum())
    if len(sched):
        peak = max_overlap(sched[:, 1], sched[:, 2], inst.mem_mb[funcs])
        if peak > inst.capacity_mb + TOL:
            t = _first_over(sched, inst.mem_mb[funcs], inst.capacity_mb)
            raise InfeasibleSolutionError("capacity", f"{peak:.0f} MB loaded at once (first over at {t:.6f} s); the "
                                          f"pool holds {inst.capacity_mb:.0f} MB")
    else:
        peak = 0.0
    return _metrics(inst, sched, funcs, wait, busy_s, loaded_s, peak)


def _first_over(sched: np.ndarray, mem: np.ndarray, capacity: float) -> float:
    times = np.concatenate([sched[:, 1], sched[:, 2]])
    deltas = np.concatenate([mem, -mem])
    order = np.lexsort((deltas, times))
    level = np.cumsum(deltas[order])
    return float(times[order][np.argmax(level > capacity + TOL)])


def _metrics(inst: ServerlessInstance, sched: np.ndarray, funcs: np.ndarray, wait: np.ndarray, busy_s: np.ndarray,
             loaded_s: np.ndarray, peak: float) -> dict[str, Any]:
    n_f, n = inst.num_functions, inst.num_invocations
    cold = wait > EPS
    wasted = np.maximum(0.0, loaded_s - busy_s) * inst.mem_mb / 1024.0
    wasted_gb_s = float(wasted.sum())
    cold_start_s = float(wait.sum())
    per_n = np.bincount(inst.inv_func, minlength=n_f)
    per_cold = np.bincount(inst.inv_func, weights=cold.astype(float), minlength=n_f)
    active = per_n > 0
    cold_rate_f = np.divide(per_cold, per_n, out=np.zeros(n_f), where=active)
    warm = 1.0 - cold_rate_f[active]
    jain = float(warm.sum() ** 2 / (len(warm) * (warm ** 2).sum())) if len(warm) and (warm ** 2).sum() > 0 else 0.0
    shares = np.stack([getattr(inst, c) for c in COMPONENTS], axis=1) / np.maximum(inst.cold_s, 1e-12)[:, None]
    by_comp = (wait[:, None] * shares[inst.inv_func]).sum(axis=0) if n else np.zeros(len(COMPONENTS))
    # A load is a pre-warm when no invocation waits at its start (it was loaded ahead of demand).
    prewarm_loads = 0
    if len(sched) and n:
        arrivals_at_load = set(zip(inst.inv_func[cold].tolist(), (inst.inv_time[cold]).tolist()))
        prewarm_loads = sum((int(f), float(lo)) not in arrivals_at_load for f, lo, _ in sched.tolist())
    return {
        "feasible": True,
        "cost": cold_start_s + inst.memory_weight * wasted_gb_s,
        "cold_starts": int(cold.sum()),
        "cold_start_rate": float(cold.mean()) if n else 0.0,
        "invocations": n,
        "cold_start_s": cold_start_s,
        "added_latency_mean_s": float(wait.mean()) if n else 0.0,
        "added_latency_p99_s": float(np.quantile(wait, 0.99)) if n else 0.0,
        "added_latency_mean_cold_s": float(wait[cold].mean()) if cold.any() else 0.0,
        "cold_start_s_by_component": {c.removesuffix("_s"): float(v) for c, v in zip(COMPONENTS, by_comp)},
        "wasted_gb_s": wasted_gb_s,
        "loaded_gb_s": float((loaded_s * inst.mem_mb / 1024.0).sum()),
        "memory_weight": inst.memory_weight,
        "loads": int(len(sched)),
        "prewarm_loads": int(prewarm_loads),
        "peak_memory_mb": float(peak),
        "capacity_mb": inst.capacity_mb,
        "fairness_jain": jain,
        "max_function_cold_rate": float(cold_rate_f[active].max()) if active.any() else 0.0,
        "per_function_cold_rate": [round(float(x), 6) for x in cold_rate_f],
        "per_function_wasted_gb_s": [round(float(x), 6) for x in wasted],
    }
