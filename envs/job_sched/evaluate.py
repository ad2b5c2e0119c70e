"""The job-scheduling evaluator: the only scorer of every method (DESIGN.md contract 2).

A solution's `decisions` is an executed schedule: `{"task_executor": [...], "task_start": [...], "task_end":
[...]}` (one entry per task of the instance, in the instance's task order) and optionally
`"runtime_partition_s"`: the schedule is then for `partition_runtime(instance, that)` (UWFQ's runtime
partitioning, a deterministic transform), with the same jobs.

Checks, each naming the violated constraint and the job/stage/task:
* format: one entry per task, executors in 0..E-1, finite times;
* arrival: no task of a job starts before the job arrives;
* precedence: no task starts before every task of every parent stage has ended;
* duration: end - start equals the task's duration, plus the stage's warm-up when the executor is fresh to the
  job (its previous task was of another job, or it has none);
* executor capacity: an executor's tasks do not overlap, and a fresh executor starts no earlier than
  max(previous end, arrival) + the moving delay.
Metrics are then computed from the job completion times and the task times (`metrics.py`, with the UWFQ paper's
user-level measures); the leaderboard ranks `mean_response_s` (min).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from sysgym.envs.job_sched.instance import JobInstance, partition_runtime
from sysgym.envs.job_sched.metrics import schedule_metrics
from sysgym.errors import InfeasibleSolutionError
from sysgym.solution import Solution

TOL = 1e-6  # seconds: schedules are floats built by adding millisecond-grid durations


def _where(inst: JobInstance, k: int) -> str:
    s = int(np.searchsorted(inst.stage_task_ptr, k, side="right") - 1)
    j = int(inst.stage_job[s])
    local_stage, local_task = s - int(inst.job_stage_ptr[j]), k - int(inst.stage_task_ptr[s])
    return f"job {j} ({inst.job_label[j]}) stage {local_stage} task {local_task}"


def check_schedule(inst: JobInstance, decisions: dict[str, Any]) -> tuple[np.ndarray, float]:
    """Raise InfeasibleSolutionError on any violation; return (job finish times, busy executor-seconds)."""
    finish, busy, _, _ = _check(inst, decisions)
    return finish, busy


def _check(inst: JobInstance, decisions: dict[str, Any]):
    if not isinstance(decisions, dict):
        raise InfeasibleSolutionError("format", f"decisions must be a dict with task_executor/task_start/task_end, "
                                                f"got {type(decisions).__name__}")
    try:
        ex = np.asarray(decisions["task_executor"], np.int64)
        st = np.asarray(decisions["task_start"], float)
        en = np.asarray(decisions["task_end"], float)
    except KeyError as exc:
        raise InfeasibleSolutionError("format", f"decisions lack {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise InfeasibleSolutionError("format", f"non-numeric schedule entries ({exc})") from None
    T = inst.num_tasks
    for name, arr in (("task_executor", ex), ("task_start", st), ("task_end", en)):
        if arr.shape != (T,):
            raise InfeasibleSolutionError("format", f"{name} has shape {arr.shape}; the instance has {T} tasks")
    if not (np.isfinite(st).all() and np.isfinite(en).all()):
        k = int(np.flatnonzero(~(np.isfinite(st) & np.isfinite(en)))[0])
        raise InfeasibleSolutionError("format", f"{_where(inst, k)} was never run (non-finite start/end)")
    bad = np.flatnonzero((ex < 0) | (ex >= inst.num_executors))
    if len(bad):
        k = int(bad[0])
        raise InfeasibleSolutionError("executor index", f"{_where(inst, k)} runs on executor {ex[k]}; "
                                                        f"the cluster has {inst.num_executors}")
    ntasks = np.diff(inst.stage_task_ptr)
    task_stage = np.repeat(np.arange(inst.num_stages), ntasks)
    task_job = inst.stage_job[task_stage]
    arr = inst.job_arrival[task_job]
    early = np.flatnonzero(st < arr - TOL)
    if len(early):
        k = int(early[0])
        raise InfeasibleSolutionError("arrival", f"{_where(inst, k)} starts at {st[k]:.6f} s, before its job "
                                                 f"arrives at {arr[k]:.6f} s")
    stage_end = np.maximum.reduceat(en, inst.stage_task_ptr[:-1])
    stage_start = np.minimum.reduceat(st, inst.stage_task_ptr[:-1])
    for a, b in inst.edges.tolist():
        if stage_start[b] < stage_end[a] - TOL:
            lo = int(inst.stage_task_ptr[b])
            k = lo + int(np.argmin(st[lo:int(inst.stage_task_ptr[b + 1])]))
            j = int(inst.stage_job[a])
            raise InfeasibleSolutionError(
                "precedence", f"{_where(inst, k)} starts at {st[k]:.6f} s before its parent stage "
                              f"{a - int(inst.job_stage_ptr[j])} ends at {stage_end[a]:.6f} s")
    # executors: replay each one's tasks in start order
    order = np.lexsort((st, ex))
    prev_exec, prev_end, prev_job = -1, 0.0, -1
    dur, warm, delay = inst.task_duration_s, inst.stage_warmup_s, inst.moving_delay_s
    for k in order.tolist():
        e = int(ex[k])
        if e != prev_exec:
            prev_exec, prev_end, prev_job = e, -np.inf, -1
        j = int(task_job[k])
        fresh = j != prev_job
        expected = dur[k] + (warm[task_stage[k]] if fresh else 0.0)
        if abs((en[k] - st[k]) - expected) > TOL:
            raise InfeasibleSolutionError(
                "duration", f"{_where(inst, k)} runs {en[k] - st[k]:.6f} s on executor {e}; it takes {expected:.6f} s"
                            f"{' (with warm-up on a fresh executor)' if fresh else ''}")
        earliest = prev_end
        if fresh:
            earliest = max(prev_end if np.isfinite(prev_end) else 0.0, arr[k]) + delay
        if st[k] < earliest - TOL:
            what = "moving delay" if fresh and delay > 0 else "executor capacity"
            raise InfeasibleSolutionError(
                what, f"{_where(inst, k)} starts on executor {e} at {st[k]:.6f} s; the executor is free "
                      f"(after {'moving' if fresh else 'its previous task'}) only at {earliest:.6f} s")
        prev_end, prev_job = en[k], j
    finish = np.maximum.reduceat(stage_end, inst.job_stage_ptr[:-1])
    return finish, float((en - st).sum()), st, en


def evaluate(inst: JobInstance, solution: Solution | dict[str, Any], *, raise_on_infeasible: bool = True
             ) -> dict[str, Any]:
    """Metrics of an executed schedule (see module docstring); `feasible` False with `violation` when
    `raise_on_infeasible=False` and a constraint is broken."""
    decisions = solution.decisions if isinstance(solution, Solution) else solution
    target = inst
    part = decisions.get("runtime_partition_s") if isinstance(decisions, dict) else None
    if part:
        target = partition_runtime(inst, float(part))
    try:
        finish, busy, st, en = _check(target, decisions)
    except InfeasibleSolutionError as exc:
        if raise_on_infeasible:
            raise
        return {"feasible": False, "violation": str(exc), "mean_response_s": None}
    metrics = schedule_metrics(target, finish, busy_s=busy, task_start=st, task_end=en)
    metrics["feasible"] = True
    metrics["objective"] = metrics["mean_response_s"]  # the generic key `sysgym run` prints (experiments/run.py)
    return metrics
