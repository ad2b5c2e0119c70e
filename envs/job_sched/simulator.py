"""A fast discrete-event simulator of a Spark-like shared cluster (Decima's executor model).

Events are job arrivals and task completions (a binary heap). Whenever executors are free and some stage is
runnable (its job arrived, its parent stages finished, it has unlaunched tasks), the scheduler is asked for a
`(stage, count)`: `count` free executors are sent to the stage, each taking its next task. Executors prefer to
stay in their job; an executor that changes job (or starts its first task) waits the moving delay and pays the
stage's warm-up on that task (Decima's fresh executor). The scheduler may decline (`None`): executors then
idle until the next event.

Everything the evaluator needs is recorded per task: executor, start, end. `simulate(instance, policy)` runs a
policy to the end; the env drives the same class one decision at a time.

The policies themselves live in `sysgym.solvers.job_sched` (each is the registered solver `job_sched.<name>`);
this module only states what the simulator calls (`SchedulingPolicy`) and finds a named policy through the core
registry (`make_policy`), so the env package never imports the solvers.
"""
from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from sysgym import solver as solver_api
from sysgym.envs.job_sched.instance import JobInstance, partition_runtime
from sysgym.envs.job_sched.metrics import schedule_metrics
from sysgym.errors import InvalidArgumentError

FAMILY = "job_sched"


@runtime_checkable
class SchedulingPolicy(Protocol):
    """What the simulator (and the env, through `PolicyAgent`) calls on a scheduling policy.

    * `reset(sim, seed)`: a new run on `sim` (a `Simulator`), its random draws seeded by `seed`;
    * `pick(sim) -> (stage, count) | None`: send `count` free executors to runnable `stage`, or leave the free
      executors idle until the next event;
    * `runtime_partition_s`: None, or UWFQ's runtime partitioning (the run is on `partition_runtime(instance,
      runtime_partition_s)` and the schedule says so).

    A policy that also has `on_arrival(sim, job)` and `on_job_done(sim, job)` is told of every arrival and
    completion (UWFQ's virtual deadlines are set at arrival).
    """

    runtime_partition_s: float | None

    def reset(self, sim: Simulator, seed: int = 0) -> None: ...

    def pick(self, sim: Simulator) -> tuple[int, int] | None: ...


def policy_names() -> list[str]:
    """The named policies (`fifo`, `fair`, ...): the family's registered solvers that are policies."""
    return solver_api.policy_names(FAMILY)


def make_policy(name: str | SchedulingPolicy, **options: Any) -> SchedulingPolicy:
    """The policy object of a named policy (`fifo`, ..., or `job_sched.fifo`): `job_sched.<name>`'s solver,
    found through the core registry, configured with `options`, gives it by `policy()`."""
    return solver_api.make_policy(FAMILY, name, SchedulingPolicy, **options)


class Simulator:
    """State of one run. Lists (not numpy) on the hot path: this is Python-speed code."""

    def __init__(self, inst: JobInstance):
        self.inst = inst
        E, S, J = inst.num_executors, inst.num_stages, inst.num_jobs
        self.E = E
        self.now = 0.0
        self.stage_job = inst.stage_job.tolist()
        self.job_user = inst.job_user.tolist()
        self.arrival = inst.job_arrival.tolist()
        self.dur = inst.task_duration_s.tolist()
        self.warm = inst.stage_warmup_s.tolist()
        self.delay = float(inst.moving_delay_s)
        self.children = inst.stage_children
        self.next_task = inst.stage_task_ptr[:-1].tolist()
        self.end_task = inst.stage_task_ptr[1:].tolist()
        self.ntasks = np.diff(inst.stage_task_ptr).tolist()
        self._task_stage = np.repeat(np.arange(S), np.diff(inst.stage_task_ptr)).tolist()
        self.parents_left = [len(p) for p in inst.stage_parents]
        self.running = [0] * S
        self.done = [0] * S
        self.job_running = [0] * J
        self.user_running = [0] * inst.num_users
        self.job_stages_left = np.diff(inst.job_stage_ptr).tolist()
        self.job_unlaunched_work = inst.job_work_s().tolist()  # true work of tasks not yet launched
        self.job_finish = [float("nan")] * J
        self.job_arrived = [False] * J
        self.ready: dict[int, None] = {}  # runnable stages, insertion-ordered set
        self.ready_log: list[int] = []  # every stage in the order it became runnable (append-only)
        self.active_jobs: dict[int, None] = {}  # arrived, unfinished jobs
        self.user_active_jobs = [0] * inst.num_users
        self.exec_job = [-1] * E
        self.free_by_job: dict[int, list[int]] = {-1: list(range(E - 1, -1, -1))}
        self.free_count = E
        T = inst.num_tasks
        self.task_exec = [-1] * T
        self.task_start = [0.0] * T
        self.task_end = [0.0] * T
        self.heap: list[tuple[float, int, int, int]] = []  # (time, seq, executor, task)
        self.seq = 0
        self.order = sorted(range(J), key=lambda j: (self.arrival[j], j))
        self.next_arrival = 0
        self.events = 0
        self.jobs_in_system = 0
        self.jobs_done = 0
        self.area = 0.0  # integral of jobs in system over time (= sum of response times at the end)
        self.user_in_system = [0] * inst.num_users
        self.user_area = [0.0] * inst.num_users
        self.busy_time = 0.0
        self.listeners: list[Any] = []  # objects with on_arrival(sim, j) / on_job_done(sim, j)

    # -- queries -----------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.jobs_done == self.inst.num_jobs

    def needs_decision(self) -> bool:
        return self.free_count > 0 and bool(self.ready)

    def unlaunched(self, s: int) -> int:
        return self.end_task[s] - self.next_task[s]

    # -- actions -----------------------------------------------------------------------------------
    def assign(self, s: int, count: int) -> int:
        """Send up to `count` free executors to runnable stage `s`; returns how many were sent."""
        if s not in self.ready:
            raise ValueError(f"stage {s} is not runnable at t={self.now:.3f}")
        j = self.stage_job[s]
        u = self.job_user[j]
        n = min(count, self.free_count, self.end_task[s] - self.next_task[s])
        own = self.free_by_job.get(j)
        now, dur, heap = self.now, self.dur, self.heap
        for _ in range(n):
            if own:
                e = own.pop()
                start = now
                extra = 0.0
            else:
                e = self._take_foreign()
                start = now + self.delay
                extra = self.warm[s]
                self.exec_job[e] = j
            k = self.next_task[s]
            self.next_task[s] = k + 1
            end = start + dur[k] + extra
            self.task_exec[k] = e
            self.task_start[k] = start
            self.task_end[k] = end
            self.seq += 1
            heapq.heappush(heap, (end, self.seq, e, k))
        self.free_count -= n
        self.running[s] += n
        self.job_running[j] += n
        self.user_running[u] += n
        launched = dur[self.next_task[s] - n:self.next_task[s]]
        self.job_unlaunched_work[j] -= sum(launched)
        if self.next_task[s] == self.end_task[s]:
            del self.ready[s]
        if own is not None and not own:
            self.free_by_job.pop(j, None)
        return n

    def _take_foreign(self) -> int:
        for key in list(self.free_by_job):
            lst = self.free_by_job[key]
            if lst:
                e = lst.pop()
                if not lst:
                    del self.free_by_job[key]
                return e
            del self.free_by_job[key]
        raise RuntimeError("no free executor")

    # -- time --------------------------------------------------------------------------------------
    def _advance_clock(self, t: float) -> None:
        dt = t - self.now
        if dt > 0:
            self.area += self.jobs_in_system * dt
            ua, ui = self.user_area, self.user_in_system
            for u in range(len(ui)):
                if ui[u]:
                    ua[u] += ui[u] * dt
            self.now = t

    def step_event(self) -> bool:
        """Process the next event (an arrival or a task completion); False when none is left."""
        heap = self.heap
        na = self.next_arrival
        t_arr = self.arrival[self.order[na]] if na < len(self.order) else float("inf")
        if heap and heap[0][0] <= t_arr:
            t, _, e, k = heapq.heappop(heap)
            self._advance_clock(t)
            self.events += 1
            self._finish(e, k)
            return True
        if na < len(self.order):
            self._advance_clock(t_arr)
            self.events += 1
            self.next_arrival += 1
            self._arrive(self.order[na])
            return True
        return False

    def _arrive(self, j: int) -> None:
        self.job_arrived[j] = True
        self.active_jobs[j] = None
        self.jobs_in_system += 1
        u = self.job_user[j]
        self.user_in_system[u] += 1
        self.user_active_jobs[u] += 1
        for s in self.inst.job_stages(j):
            if self.parents_left[s] == 0:
                self.ready[s] = None
                self.ready_log.append(s)
        for li in self.listeners:
            li.on_arrival(self, j)

    def _finish(self, e: int, k: int) -> None:
        s = self._task_stage[k]
        j = self.stage_job[s]
        u = self.job_user[j]
        self.busy_time += self.task_end[k] - self.task_start[k]
        self.running[s] -= 1
        self.done[s] += 1
        self.job_running[j] -= 1
        self.user_running[u] -= 1
        lst = self.free_by_job.get(j)
        if lst is None:
            self.free_by_job[j] = [e]
        else:
            lst.append(e)
        self.free_count += 1
        if self.done[s] == self.ntasks[s]:
            for c in self.children[s]:
                self.parents_left[c] -= 1
                if self.parents_left[c] == 0:
                    self.ready[c] = None
                    self.ready_log.append(c)
            self.job_stages_left[j] -= 1
            if self.job_stages_left[j] == 0:
                self.job_finish[j] = self.now
                del self.active_jobs[j]
                self.jobs_in_system -= 1
                self.jobs_done += 1
                self.user_in_system[u] -= 1
                self.user_active_jobs[u] -= 1
                for li in self.listeners:
                    li.on_job_done(self, j)

    def run_to_decision(self) -> bool:
        """Process events until a decision is needed (True) or the run is over (False)."""
        while not self.needs_decision():
            if not self.step_event():
                return False
        return True

    # -- output ------------------------------------------------------------------------------------
    def schedule(self) -> dict[str, Any]:
        """The executed schedule (the `decisions` every policy returns)."""
        return {"task_executor": list(self.task_exec), "task_start": list(self.task_start),
                "task_end": list(self.task_end)}


@dataclass
class SimResult:
    schedule: dict[str, Any]
    metrics: dict[str, Any]
    job_finish: np.ndarray
    events: int
    wall_time_s: float
    policy: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        return self.events / max(self.wall_time_s, 1e-9)


def drive(sim: Simulator, policy: SchedulingPolicy) -> Simulator:
    """Let `policy` (already reset, and listening if it listens) decide on `sim` from its current state until no
    event is left; `run_policy` from the start, `agents/decima_lookahead.py` from copies of a running simulator."""
    pick = policy.pick
    while True:
        while sim.free_count and sim.ready:
            choice = pick(sim)
            if choice is None:
                break
            s, count = choice
            sim.assign(s, count)
        if not sim.step_event():
            break
    return sim


def run_policy(inst: JobInstance, policy: SchedulingPolicy, *, seed: int = 0) -> Simulator:
    """Run `policy` (see `SchedulingPolicy`) to the end."""
    sim = Simulator(inst)
    policy.reset(sim, seed)
    if hasattr(policy, "on_arrival"):
        sim.listeners.append(policy)
    drive(sim, policy)
    if not sim.finished:
        left = [j for j in range(inst.num_jobs) if not np.isfinite(sim.job_finish[j])]
        raise RuntimeError(f"policy {getattr(policy, 'name', policy)} left jobs {left[:10]} unfinished "
                           "(it declined to schedule with every executor free)")
    return sim


def simulate(instance: JobInstance, policy: str | SchedulingPolicy = "fifo", *, seed: int = 0,
             **policy_options: Any) -> SimResult:
    """Run a scheduling policy (a registry name such as "uwfq", or a policy object) on an instance.

    Returns a `SimResult` whose `.metrics` has `mean_response_s`, `p95_response_s`, `per_user_mean_response_s`,
    `small_job_mean_response_s`, slowdowns, fairness, makespan and utilisation; `.schedule` is the executed
    schedule (per task: executor, start, end) that `evaluate` re-checks.
    """
    if isinstance(policy, str):
        pol = make_policy(policy, **policy_options)
    elif policy_options:
        raise InvalidArgumentError(f"simulate: options {sorted(policy_options)} go with a policy name, not with the "
                                   f"policy object {policy!r} (configure the object instead)")
    else:
        pol = policy
    part = getattr(pol, "runtime_partition_s", None)
    run_inst = partition_runtime(instance, part) if part else instance
    t0, c0 = time.perf_counter(), time.process_time()
    sim = run_policy(run_inst, pol, seed=seed)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    sched = sim.schedule()
    if part:
        sched["runtime_partition_s"] = float(part)
    metrics = schedule_metrics(run_inst, np.asarray(sim.job_finish), busy_s=sim.busy_time, task_start=sim.task_start,
                               task_end=sim.task_end)
    return SimResult(sched, metrics, np.asarray(sim.job_finish), sim.events, wall, getattr(pol, "name", str(pol)),
                     {"busy_time_s": sim.busy_time, "area": sim.area, "cpu_time_s": cpu})
