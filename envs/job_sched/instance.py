"""The job-scheduling instance: executors, and users' DAG jobs of stages of tasks arriving over time.

Layout (flat arrays, CSR-style, so the simulator and the CP-SAT model index them without objects):

* jobs `j = 0..J-1`: `job_arrival[j]` (s), `job_user[j]`, `job_small[j]` (the "small job" class the metrics
  report separately), `job_label[j]` (e.g. `tpch-2g-q9`); its stages are `job_stage_ptr[j] : job_stage_ptr[j+1]`.
* stages `s = 0..S-1`: `stage_job[s]`, `stage_warmup_s[s]` (extra seconds of a task run by an executor that is
  fresh to the job, Decima's "fresh durations"); its tasks are `stage_task_ptr[s] : stage_task_ptr[s+1]`.
* tasks `k = 0..T-1`: `task_duration_s[k]` (seconds on a warm executor, rounded to 1 ms so the CP-SAT model in
  integer milliseconds is exact).
* `edges` (M, 2): stage `a` must finish (all its tasks) before any task of stage `b` starts; both in one job.

Executor rules (Decima, Mao et al. SIGCOMM'19, `spark_env/env.py` and `node.py`): an executor that starts a
task of a job other than the one of its previous task (or its first task) first spends `moving_delay_s`
moving (Decima: 2 s); the first task it runs in a job takes `stage_warmup_s` longer (warm-up).

Two settings (`setting`, `SETTINGS`), which name whose published results an instance reproduces:
* `shared_app`: UWFQ's (arXiv 2510.15485): one long-running Spark application shared by every user, so a task of
  any job runs on any executor with no moving delay and no warm-up (both 0);
* `multi_app`: Decima's (SIGCOMM'19): executors move between jobs (applications) at a cost, a moving delay and/or a
  fresh-executor warm-up (at least one > 0).
`setting` is None on instances made before settings were named (generator v0, older saved files, traces);
`effective_setting` is then read from the delays. Such instances keep their `to_dict()` and digest.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sysgym.errors import InvalidInstanceError, TraceFormatError
from sysgym.instances import InstanceBase, read_json, require_fields

FORMAT = "sysgym.job_sched.instance/1"
SETTINGS = ("shared_app", "multi_app")
_ARRAYS = {"job_arrival": np.float64, "job_user": np.int64, "job_small": bool, "job_stage_ptr": np.int64,
           "stage_job": np.int64, "stage_task_ptr": np.int64, "stage_warmup_s": np.float64,
           "task_duration_s": np.float64, "edges": np.int64}


@dataclass(frozen=True, eq=False)
class JobInstance(InstanceBase):
    """Immutable problem instance. Arrays are read-only; `name` is its replayable spec."""

    FORMAT = FORMAT

    num_executors: int
    job_arrival: np.ndarray
    job_user: np.ndarray
    job_small: np.ndarray
    job_stage_ptr: np.ndarray
    stage_job: np.ndarray
    stage_task_ptr: np.ndarray
    stage_warmup_s: np.ndarray
    task_duration_s: np.ndarray
    edges: np.ndarray
    num_users: int = 1
    moving_delay_s: float = 2.0
    horizon_s: float | None = None
    job_label: tuple[str, ...] = ()
    name: str = "job_sched/custom"
    meta: dict[str, Any] = field(default_factory=dict)
    setting: str | None = None  # "shared_app" or "multi_app" (module doc); None: read from the delays

    def __post_init__(self) -> None:
        for key, dtype in _ARRAYS.items():
            arr = np.array(getattr(self, key), dtype=dtype)
            if key == "edges":
                arr = arr.reshape(-1, 2)
            arr.setflags(write=False)
            object.__setattr__(self, key, arr)
        if not self.job_label:
            object.__setattr__(self, "job_label", tuple(f"job{j}" for j in range(len(self.job_arrival))))
        object.__setattr__(self, "job_label", tuple(str(x) for x in self.job_label))
        validate(self)
        # derived, read-only helpers
        parents: list[list[int]] = [[] for _ in range(self.num_stages)]
        children: list[list[int]] = [[] for _ in range(self.num_stages)]
        for a, b in self.edges.tolist():
            parents[b].append(a)
            children[a].append(b)
        object.__setattr__(self, "stage_parents", tuple(tuple(p) for p in parents))
        object.__setattr__(self, "stage_children", tuple(tuple(c) for c in children))
        work = np.add.reduceat(self.task_duration_s, self.stage_task_ptr[:-1]) if self.num_tasks else \
            np.zeros(self.num_stages)
        work = np.where(np.diff(self.stage_task_ptr) > 0, work, 0.0)
        work.setflags(write=False)
        object.__setattr__(self, "stage_work_s", work)

    # -- sizes -------------------------------------------------------------------------------------
    @property
    def num_jobs(self) -> int:
        return len(self.job_arrival)

    @property
    def num_stages(self) -> int:
        return len(self.stage_job)

    @property
    def num_tasks(self) -> int:
        return len(self.task_duration_s)

    def stage_num_tasks(self, s: int) -> int:
        return int(self.stage_task_ptr[s + 1] - self.stage_task_ptr[s])

    def job_stages(self, j: int) -> range:
        return range(int(self.job_stage_ptr[j]), int(self.job_stage_ptr[j + 1]))

    def job_work_s(self) -> np.ndarray:
        """Total warm task time of each job (core-seconds)."""
        return np.add.reduceat(self.stage_work_s, self.job_stage_ptr[:-1])

    def job_critical_path_s(self) -> np.ndarray:
        """Longest chain of (longest task of each stage) per job: no schedule finishes a job faster."""
        longest = np.array([self.task_duration_s[self.stage_task_ptr[s]:self.stage_task_ptr[s + 1]].max()
                            for s in range(self.num_stages)])
        finish = np.zeros(self.num_stages)
        for s in topological_order(self):
            start = max((finish[p] for p in self.stage_parents[s]), default=0.0)
            finish[s] = start + longest[s]
        return np.array([finish[list(self.job_stages(j))].max() for j in range(self.num_jobs)])

    @property
    def charges_moves(self) -> bool:
        """Whether an executor pays anything to change job (a moving delay or a warm-up > 0)."""
        return self.moving_delay_s > 0 or bool((self.stage_warmup_s > 0).any())

    @property
    def effective_setting(self) -> str:
        """`setting`, or for an instance that does not name one, the setting its delays give."""
        return self.setting or ("multi_app" if self.charges_moves else "shared_app")

    def to_dict(self) -> dict[str, Any]:
        out = {"format": FORMAT, "name": self.name, "num_executors": int(self.num_executors),
               "num_users": int(self.num_users), "moving_delay_s": float(self.moving_delay_s),
               "horizon_s": self.horizon_s, "job_label": list(self.job_label), "meta": self.meta,
               **{k: getattr(self, k).tolist() for k in _ARRAYS}}
        if self.setting is not None:  # absent on unnamed instances, whose digests stay what they were
            out["setting"] = self.setting
        return out


def topological_order(inst: JobInstance) -> list[int]:
    """Stages in an order where parents come first (Kahn); raises on a cycle naming its job and stages."""
    indeg = np.zeros(inst.num_stages, np.int64)
    children: list[list[int]] = [[] for _ in range(inst.num_stages)]
    for a, b in inst.edges.tolist():
        indeg[b] += 1
        children[a].append(b)
    order = [s for s in range(inst.num_stages) if indeg[s] == 0]
    i = 0
    while i < len(order):
        for c in children[order[i]]:
            indeg[c] -= 1
            if indeg[c] == 0:
                order.append(c)
        i += 1
    if len(order) < inst.num_stages:
        left = np.flatnonzero(indeg > 0)
        j = int(inst.stage_job[left[0]])
        local = [int(s - inst.job_stage_ptr[j]) for s in left if inst.stage_job[s] == j]
        raise InvalidInstanceError(f"{inst.name}: job {j} ({inst.job_label[j] if inst.job_label else j}) has a "
                                   f"cyclic DAG: stages {local} (job-local indices) lie on or after a cycle")
    return order


def validate(inst: JobInstance) -> None:
    """Reject an instance that cannot exist; the message names the job, stage or task."""
    n = inst.name
    if int(inst.num_executors) < 1:
        raise InvalidInstanceError(f"{n}: need at least one executor, got num_executors={inst.num_executors}")
    J, S, T = len(inst.job_arrival), len(inst.stage_job), len(inst.task_duration_s)
    if J == 0:
        raise InvalidInstanceError(f"{n}: no jobs")
    for key in ("job_user", "job_small"):
        if len(getattr(inst, key)) != J:
            raise InvalidInstanceError(f"{n}: {key} has {len(getattr(inst, key))} entries, job_arrival has {J}")
    if len(inst.job_label) != J:
        raise InvalidInstanceError(f"{n}: job_label has {len(inst.job_label)} entries for {J} jobs")
    if len(inst.job_stage_ptr) != J + 1 or inst.job_stage_ptr[0] != 0 or inst.job_stage_ptr[-1] != S:
        raise InvalidInstanceError(f"{n}: job_stage_ptr must have {J + 1} entries from 0 to {S}")
    if len(inst.stage_task_ptr) != S + 1 or inst.stage_task_ptr[0] != 0 or inst.stage_task_ptr[-1] != T:
        raise InvalidInstanceError(f"{n}: stage_task_ptr must have {S + 1} entries from 0 to {T}")
    if len(inst.stage_warmup_s) != S:
        raise InvalidInstanceError(f"{n}: stage_warmup_s has {len(inst.stage_warmup_s)} entries for {S} stages")
    for j in range(J):
        if inst.job_stage_ptr[j + 1] <= inst.job_stage_ptr[j]:
            raise InvalidInstanceError(f"{n}: job {j} has no stages")
        if (inst.stage_job[inst.job_stage_ptr[j]:inst.job_stage_ptr[j + 1]] != j).any():
            raise InvalidInstanceError(f"{n}: stage_job disagrees with job_stage_ptr for job {j}")
        if not np.isfinite(inst.job_arrival[j]) or inst.job_arrival[j] < 0:
            raise InvalidInstanceError(f"{n}: job {j} arrives at {inst.job_arrival[j]} (must be >= 0)")
        if not 0 <= inst.job_user[j] < inst.num_users:
            raise InvalidInstanceError(f"{n}: job {j} belongs to user {inst.job_user[j]}; num_users={inst.num_users}")
    for s in range(S):
        if inst.stage_task_ptr[s + 1] <= inst.stage_task_ptr[s]:
            j = int(inst.stage_job[s])
            raise InvalidInstanceError(f"{n}: job {j} stage {s - int(inst.job_stage_ptr[j])} has no tasks")
    bad = np.flatnonzero(~np.isfinite(inst.task_duration_s) | (inst.task_duration_s <= 0))
    if len(bad):
        s = int(np.searchsorted(inst.stage_task_ptr, bad[0], side="right") - 1)
        j = int(inst.stage_job[s])
        raise InvalidInstanceError(f"{n}: job {j} stage {s - int(inst.job_stage_ptr[j])} task "
                                   f"{int(bad[0] - inst.stage_task_ptr[s])} has duration "
                                   f"{inst.task_duration_s[bad[0]]} (must be > 0)")
    if not (np.isfinite(inst.stage_warmup_s).all() and np.isfinite(inst.moving_delay_s)) or \
            (inst.stage_warmup_s < 0).any() or inst.moving_delay_s < 0:
        raise InvalidInstanceError(f"{n}: warm-up and moving delays must be finite and >= 0")
    if inst.setting is not None:
        if inst.setting not in SETTINGS:
            raise InvalidInstanceError(f"{n}: unknown setting {inst.setting!r}; known: {', '.join(SETTINGS)}")
        if inst.setting == "shared_app" and inst.charges_moves:
            raise InvalidInstanceError(f"{n}: setting shared_app (one shared application) has no moving delay and no "
                                       f"warm-up, got moving_delay_s={inst.moving_delay_s} and warm-ups up to "
                                       f"{inst.stage_warmup_s.max():.3f} s")
        if inst.setting == "multi_app" and not inst.charges_moves:
            raise InvalidInstanceError(f"{n}: setting multi_app (executors move between jobs at a cost) needs a "
                                       "moving delay or a warm-up > 0; both are 0")
    if inst.horizon_s is not None:
        over = np.flatnonzero(inst.task_duration_s > inst.horizon_s)
        if len(over):
            s = int(np.searchsorted(inst.stage_task_ptr, over[0], side="right") - 1)
            j = int(inst.stage_job[s])
            raise InvalidInstanceError(
                f"{n}: job {j} stage {s - int(inst.job_stage_ptr[j])} task {int(over[0] - inst.stage_task_ptr[s])} "
                f"lasts {inst.task_duration_s[over[0]]:.3f} s, longer than the horizon {inst.horizon_s} s")
    for a, b in inst.edges.tolist():
        if not (0 <= a < S and 0 <= b < S):
            raise InvalidInstanceError(f"{n}: edge ({a}, {b}) names a stage outside 0..{S - 1}")
        if inst.stage_job[a] != inst.stage_job[b]:
            raise InvalidInstanceError(f"{n}: edge ({a}, {b}) links stages of jobs {inst.stage_job[a]} and "
                                       f"{inst.stage_job[b]}")
        if a == b:
            j = int(inst.stage_job[a])
            raise InvalidInstanceError(f"{n}: job {j} has a cyclic DAG: stage {a - int(inst.job_stage_ptr[j])} "
                                       "depends on itself")
    topological_order(inst)


def build(num_executors: int, jobs: list[dict[str, Any]], *, num_users: int | None = None,
          moving_delay_s: float = 2.0, horizon_s: float | None = None, name: str = "job_sched/custom",
          meta: dict[str, Any] | None = None, setting: str | None = None) -> JobInstance:
    """An instance from per-job dicts: `arrival`, `user`, `small` (optional), `label` (optional),
    `stages` = list of task-duration lists, `edges` = job-local (parent, child) pairs, `warmup_s` (optional,
    per stage); `setting` names the setting (module doc), None leaves it to the delays."""
    arrival, user, small, labels, job_ptr, stage_job, task_ptr, warm, dur, edges = ([] for _ in range(10))
    job_ptr.append(0)
    task_ptr.append(0)
    for j, job in enumerate(jobs):
        base = len(stage_job)
        arrival.append(float(job["arrival"]))
        user.append(int(job.get("user", 0)))
        small.append(bool(job.get("small", False)))
        labels.append(str(job.get("label", f"job{j}")))
        w = job.get("warmup_s") or [0.0] * len(job["stages"])
        for s, tasks in enumerate(job["stages"]):
            stage_job.append(j)
            dur.extend(float(x) for x in tasks)
            task_ptr.append(len(dur))
            warm.append(float(w[s]))
        job_ptr.append(len(stage_job))
        for a, b in job.get("edges", []):
            if not (0 <= int(a) < len(job["stages"]) and 0 <= int(b) < len(job["stages"])):
                raise InvalidInstanceError(f"{name}: job {j} edge ({a}, {b}) names a stage outside "
                                           f"0..{len(job['stages']) - 1}")
            edges.append((base + int(a), base + int(b)))
    return JobInstance(num_executors=int(num_executors), job_arrival=arrival, job_user=user, job_small=small,
                       job_stage_ptr=job_ptr, stage_job=stage_job, stage_task_ptr=task_ptr, stage_warmup_s=warm,
                       task_duration_s=dur, edges=np.array(edges, np.int64).reshape(-1, 2),
                       num_users=int(num_users if num_users is not None else max(user) + 1),
                       moving_delay_s=float(moving_delay_s), horizon_s=horizon_s, job_label=tuple(labels),
                       name=name, meta=dict(meta or {}), setting=setting)


def partition_runtime(inst: JobInstance, target_s: float = 0.5) -> JobInstance:
    """UWFQ's runtime partitioning (arXiv 2510.15485): split every task into ceil(d / target_s) pieces of about
    `target_s` expected runtime (durations stay on the 1 ms grid; pieces sum to the task). Deterministic, so
    the evaluator can rebuild the partitioned instance from the original one."""
    if target_s <= 0:
        raise ValueError(f"runtime partitioning target must be > 0 s, got {target_s}")
    ms = np.rint(inst.task_duration_s * 1000).astype(np.int64)
    pieces = np.maximum(1, np.ceil(ms / (target_s * 1000.0)).astype(np.int64))
    new_dur: list[np.ndarray] = []
    ptr = [0]
    for s in range(inst.num_stages):
        lo, hi = int(inst.stage_task_ptr[s]), int(inst.stage_task_ptr[s + 1])
        for k in range(lo, hi):
            q, r = divmod(int(ms[k]), int(pieces[k]))
            part = np.full(int(pieces[k]), q, np.int64)
            part[:r] += 1
            new_dur.append(part[part > 0])
        ptr.append(ptr[-1] + sum(len(x) for x in new_dur[len(new_dur) - (hi - lo):]))
    dur = np.concatenate(new_dur) / 1000.0
    return JobInstance(num_executors=inst.num_executors, job_arrival=inst.job_arrival, job_user=inst.job_user,
                       job_small=inst.job_small, job_stage_ptr=inst.job_stage_ptr, stage_job=inst.stage_job,
                       stage_task_ptr=ptr, stage_warmup_s=inst.stage_warmup_s, task_duration_s=dur,
                       edges=inst.edges, num_users=inst.num_users, moving_delay_s=inst.moving_delay_s,
                       horizon_s=inst.horizon_s, job_label=inst.job_label,
                       name=f"{inst.name}#partition={target_s}", meta=inst.meta, setting=inst.setting)


def save(inst: JobInstance, path: str | Path) -> Path:
    return inst.save(path)


_FIELDS = ("num_executors", "num_users", "moving_delay_s", *_ARRAYS)


def load(path: str | Path) -> JobInstance:
    """A saved instance (JSON), or a trace: Alibaba 2018 `batch_task.csv`, Google 2019 slice (CSV or JSON
    lines); the trace format is recognised from the file's content (see `traces.py`). A malformed saved
    instance raises `TraceFormatError` naming the file and the field."""
    path = Path(path)
    if path.is_dir():
        raise TraceFormatError(f"{path}: is a directory, not an instance or trace file")
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except FileNotFoundError:
        raise FileNotFoundError(f"no instance or trace file at {path}") from None
    if not (head.lstrip().startswith(b"{") and b'"format"' in head):
        from sysgym.envs.job_sched.traces import load_trace

        return load_trace(path)
    data = read_json(path)
    require_fields(data, ("format",), path)
    if data["format"] != FORMAT:
        raise TraceFormatError(f"{path}: format {data['format']!r}, expected {FORMAT!r}")
    require_fields(data, _FIELDS, path)
    for key in _ARRAYS:
        if not isinstance(data[key], list):
            raise TraceFormatError(f"{path}: field {key!r} must be a list, got {type(data[key]).__name__}")
    for key, types, what in (("num_executors", int, "an integer"), ("num_users", int, "an integer"),
                             ("moving_delay_s", (int, float), "a number"),
                             ("horizon_s", (int, float, type(None)), "a number or null"),
                             ("setting", (str, type(None)), "a string or null")):
        if isinstance(data.get(key), bool) or not isinstance(data.get(key), types):
            raise TraceFormatError(f"{path}: field {key!r} must be {what}, got {data.get(key)!r}")
    try:
        return JobInstance(num_executors=data["num_executors"], num_users=data["num_users"],
                           moving_delay_s=data["moving_delay_s"], horizon_s=data.get("horizon_s"),
                           job_label=tuple(data.get("job_label", ())), name=data.get("name", f"job_sched/file:{path}"),
                           meta=data.get("meta", {}), setting=data.get("setting"),
                           **{k: data[k] for k in _ARRAYS})
    except InvalidInstanceError as exc:
        raise InvalidInstanceError(f"{path}: {exc}") from None  # a constraint the file's data breaks
    except (TypeError, ValueError, OverflowError) as exc:
        raise TraceFormatError(f"{path}: malformed instance field ({exc})") from None
