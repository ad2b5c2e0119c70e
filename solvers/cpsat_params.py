"""One way every CP-SAT solver sets its limits, so that the same seed and config give the same answer.

`deterministic=True` (the default of every CP-SAT solver in sysgym): CP-SAT's interleaved search
(`interleave_search`: the subsolvers take turns in fixed batches, independent of thread timing, so the result
does not depend on the machine's load for any number of workers) and `time_limit` read as a deterministic-time
limit (`max_deterministic_time`, CP-SAT's work units, about a second each on an idle machine). A wall-clock
limit of WALL_GUARD x time_limit + 60 s remains only to stop a hung machine; `wall_guard_hit` in the stats says
when it bound (that answer is then timing-dependent). `deterministic=False` is CP-SAT's portfolio search under
a wall-clock `time_limit`: often stronger per second, but two runs may differ.
"""
from __future__ import annotations

from typing import Any

WALL_GUARD = 30.0


def set_limits(solver: Any, *, time_limit: float | None, workers: int, seed: int, deterministic: bool = True) -> None:
    """Set workers, seed and the time limit on a `cp_model.CpSolver` as described above."""
    params = solver.parameters
    params.num_workers = int(workers)
    params.random_seed = int(seed) % (2 ** 31)
    if deterministic:
        params.interleave_search = True
        if time_limit is not None:
            params.max_deterministic_time = float(time_limit)
            params.max_time_in_seconds = WALL_GUARD * float(time_limit) + 60.0
    elif time_limit is not None:
        params.max_time_in_seconds = float(time_limit)


def limit_stats(solver: Any, *, time_limit: float | None, wall_s: float, deterministic: bool) -> dict[str, Any]:
    """What a record should say about the limits: deterministic or not, work done, whether the guard bound."""
    guard = deterministic and time_limit is not None and wall_s >= WALL_GUARD * float(time_limit) + 60.0 - 0.5
    return {"deterministic": bool(deterministic), "deterministic_time": float(solver.deterministic_time),
            "wall_guard_hit": bool(guard)}
