"""Loaders for public cluster traces, given a path (sysgym ships no trace).

Alibaba cluster-trace-v2018 `batch_task.csv` (github.com/alibaba/clusterdata, `cluster-trace-v2018/schema.txt`):
no header, columns `task_name, instance_num, job_name, task_type, status, start_time, end_time, plan_cpu,
plan_mem` (times in seconds). A job is a DAG of tasks; the task name carries the DAG: `M1`, `R2_1`, `J4_2_3`
mean task 1, task 2 after task 1, task 4 after tasks 2 and 3 (the letter is the task type); names such as
`task_Nzg3ODAwNDgzMTAwNTc2NTQ2Mw==` are independent tasks. Each task becomes a stage of `instance_num` tasks,
each lasting the task's `end_time - start_time` (the per-instance times are in `batch_instance.csv`; the task
span is the duration of its slowest instance, so this is an upper bound). The job arrives at its earliest task
start. Rows with non-positive duration (unfinished tasks) are dropped with their jobs.

Google cluster trace 2019 (Borg, github.com/google/cluster-data, `ClusterData2019.md`): a slice of the
`instance_events` table exported as CSV with a header, or as JSON lines, with at least the fields `time`
(microseconds), `type` (0 SUBMIT, 3 SCHEDULE, 6 FINISH, ...), `collection_id`, `instance_index`, and optionally
`user` (from `collection_events`). A collection (job) becomes a job of one stage whose tasks are its instances;
an instance lasts from its last SCHEDULE to its first FINISH after it; the job arrives at its first SUBMIT.
Instances that never finish are dropped (a collection left with none is dropped).

Errors name the file and line (`TraceFormatError`): a field that is not a number, a count or time that is
infinite, NaN or negative, a count that is not whole, a line that is not UTF-8, a JSON line that is not an object.

Size (decided while reading, before an instance is built or simulated): `max_tasks` (default 1,000,000, about a
minute of simulation) caps the tasks of the instance after coalescing (`max_tasks_per_stage`); a trace beyond it
(one Alibaba row with instance_num=1e8, say) is refused with an `InvalidInstanceError` naming the file, the line
and the remedy (`max_tasks_per_stage`, `max_jobs` or a larger `max_tasks`), instead of building 1e8 tasks.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from sysgym.envs.job_sched.instance import JobInstance, build
from sysgym.errors import InvalidInstanceError, TraceFormatError

ALIBABA_COLUMNS = ("task_name", "instance_num", "job_name", "task_type", "status", "start_time", "end_time",
                   "plan_cpu", "plan_mem")
_DAG_NAME = re.compile(r"^[A-Za-z]+(\d+)((?:_\d+)*)$")
GOOGLE_SUBMIT, GOOGLE_SCHEDULE, GOOGLE_FINISH = 0, 3, 6
MAX_TASKS = 1_000_000  # default cap on a loaded trace's tasks (module doc)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _lines(path: Path):
    """The file's lines as text (newlines kept, for csv); a line that is not UTF-8 is named by its number."""
    with path.open("rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise TraceFormatError(f"{path}:{line_no}: not UTF-8 text (byte {exc.start} of the line); is it a "
                                       "trace file?") from None


def _number(path: Path, line_no: int, what: str, value, *, whole: bool = False, allow_negative: bool = False
            ) -> float:
    """A finite number (>= 0 unless allowed; whole when asked) or a TraceFormatError naming file and line."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise TraceFormatError(f"{path}:{line_no}: {what} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise TraceFormatError(f"{path}:{line_no}: {what} must be finite, got {value!r}")
    if x < 0 and not allow_negative:
        raise TraceFormatError(f"{path}:{line_no}: {what} must be >= 0, got {value!r}")
    if whole and x != int(x):
        raise TraceFormatError(f"{path}:{line_no}: {what} must be a whole number, got {value!r}")
    return x


def detect_format(path: Path) -> str:
    first = next(_lines(path), "").strip()
    if first.startswith("{"):
        return "google2019"
    if "collection_id" in first and "instance_index" in first:
        return "google2019"
    if len(first.split(",")) == len(ALIBABA_COLUMNS):
        return "alibaba2018"
    raise TraceFormatError(f"{path}:1: neither an Alibaba 2018 batch_task row ({len(ALIBABA_COLUMNS)} columns) nor "
                           "a Google 2019 instance_events slice (header with collection_id, instance_index, or "
                           "JSON lines)")


def load_trace(path: str | Path, *, format: str | None = None, num_executors: int = 100, num_users: int | None = None,
               max_jobs: int | None = None, max_tasks_per_stage: int | None = None,
               moving_delay_s: float = 2.0, max_tasks: int | None = MAX_TASKS) -> JobInstance:
    """An instance from a trace file; `format` is "alibaba2018" or "google2019" (detected when None);
    `max_tasks` caps the instance's tasks (module doc; None: no cap)."""
    path = Path(path)
    fmt = format or detect_format(path)
    if fmt not in ("alibaba2018", "google2019"):
        raise TraceFormatError(f"{path}: unknown trace format {fmt!r}; known: alibaba2018, google2019")
    if max_tasks_per_stage is not None and max_tasks_per_stage < 1:
        raise TraceFormatError(f"{path}: max_tasks_per_stage must be >= 1, got {max_tasks_per_stage}")
    cap = _Cap(path, max_tasks, max_tasks_per_stage)
    jobs, users = _alibaba(path, num_users or 4, cap) if fmt == "alibaba2018" else _google(path)
    if not jobs:
        raise TraceFormatError(f"{path}: no complete job in the trace")
    jobs.sort(key=lambda j: (j["arrival"], j["label"]))
    if max_jobs is not None:
        jobs = jobs[:max_jobs]
    cap.check_total(jobs)
    t0 = min(j["arrival"] for j in jobs)
    for j in jobs:
        j["arrival"] = round(j["arrival"] - t0, 3)
        j["stages"] = [_stage_tasks(s, max_tasks_per_stage) for s in j["stages"]]
    works = sorted(sum(sum(s) for s in j["stages"]) for j in jobs)
    median = works[len(works) // 2]
    for j in jobs:
        j["small"] = sum(sum(s) for s in j["stages"]) <= median  # small = at most the median work
    U = num_users if num_users is not None else max(1, len(users))
    return build(num_executors, jobs, num_users=U, moving_delay_s=moving_delay_s,
                 name=f"job_sched/file:{path}", meta={"trace": fmt, "sha256": _digest(path), "users": users})


def _coalesce(tasks: list[float], k: int) -> list[float]:
    if len(tasks) <= k:
        return tasks
    size = -(-len(tasks) // k)
    return [round(sum(tasks[i:i + size]), 3) for i in range(0, len(tasks), size)]


def _stage_tasks(stage, k: int | None) -> list[float]:
    """A stage's task durations: a list (Google), or (count, duration) for an Alibaba task whose instances all
    last the same, expanded only now (after the size check), coalesced into at most k tasks."""
    if isinstance(stage, list):
        return stage if k is None else _coalesce(stage, k)
    n, d = stage
    if k is None or n <= k:
        return [d] * n
    size = -(-n // k)
    full, rest = divmod(n, size)
    return [round(d * size, 3)] * full + ([round(d * rest, 3)] if rest else [])


def _stage_size(stage, k: int | None) -> int:
    n = len(stage) if isinstance(stage, list) else stage[0]
    return n if k is None or n <= k else -(-n // -(-n // k))


class _Cap:
    """The `max_tasks` check (module doc): per row while reading, and on the selected jobs."""

    def __init__(self, path: Path, max_tasks: int | None, k: int | None):
        self.path, self.max_tasks, self.k = path, max_tasks, k

    def _refuse(self, where: str, count: int) -> None:
        raise InvalidInstanceError(
            f"{where} {count:,} tasks, more than max_tasks={self.max_tasks:,} (about a minute of simulation per "
            "million tasks); pass max_tasks_per_stage=K to coalesce each stage into at most K tasks, max_jobs=N, "
            "or a larger max_tasks")

    def row(self, line_no: int, job: str, task: str, n: int) -> None:
        if self.max_tasks is not None:
            count = n if self.k is None else min(n, self.k)
            if count > self.max_tasks:
                self._refuse(f"{self.path}:{line_no}: job {job!r} task {task!r} has instance_num={n:,}: the instance "
                             "would have", count)

    def check_total(self, jobs: list[dict[str, Any]]) -> None:
        if self.max_tasks is not None:
            total = sum(_stage_size(s, self.k) for j in jobs for s in j["stages"])
            if total > self.max_tasks:
                self._refuse(f"{self.path}: the {len(jobs):,} jobs selected have", total)


def _alibaba(path: Path, num_users: int, cap: _Cap) -> tuple[list[dict[str, Any]], list[str]]:
    rows: dict[str, list[tuple[int, str, int, float, float]]] = defaultdict(list)
    bad_jobs: set[str] = set()
    reader = csv.reader(_lines(path))
    for row in reader:
        line_no = reader.line_num
        if not row or not "".join(row).strip():
            continue
        if len(row) != len(ALIBABA_COLUMNS):
            raise TraceFormatError(f"{path}:{line_no}: {len(row)} columns, an Alibaba 2018 batch_task row has "
                                   f"{len(ALIBABA_COLUMNS)} ({', '.join(ALIBABA_COLUMNS)})")
        task, inst_num, job = row[0].strip(), row[1].strip(), row[2].strip()
        if not job or not task:
            raise TraceFormatError(f"{path}:{line_no}: empty task_name or job_name")
        where = f"job {job!r} task {task!r}: "
        n = int(_number(path, line_no, where + "instance_num", inst_num, whole=True))
        start = _number(path, line_no, where + "start_time", row[5], allow_negative=True)
        end = _number(path, line_no, where + "end_time", row[6], allow_negative=True)
        if n == 0 or end <= start:
            bad_jobs.add(job)  # unfinished or empty task: the job cannot be replayed
            continue
        cap.row(line_no, job, task, n)
        rows[job].append((line_no, task, n, start, end))
    jobs = []
    for job, tasks in rows.items():
        if job in bad_jobs:
            continue
        ids: dict[int, int] = {}
        deps: list[list[int]] = []
        for i, (line_no, task, _n, _s, _e) in enumerate(tasks):
            m = _DAG_NAME.match(task)
            if m:
                tid = int(m.group(1))
                if tid in ids:
                    raise TraceFormatError(f"{path}:{line_no}: job {job!r} has task id {tid} twice")
                ids[tid] = i
                deps.append([int(x) for x in m.group(2).split("_") if x])
            else:
                deps.append([])
        edges = []
        for i, dl in enumerate(deps):
            for d in dl:
                if d not in ids:
                    line_no, task = tasks[i][0], tasks[i][1]
                    raise TraceFormatError(f"{path}:{line_no}: job {job!r} task {task!r} depends on task {d}, "
                                           "which is not in the file")
                edges.append((ids[d], i))
        user = int(hashlib.md5(job.encode()).hexdigest(), 16) % num_users  # the trace has no user field
        jobs.append({"arrival": min(t[3] for t in tasks), "user": user, "label": job, "edges": edges,
                     "stages": [(n, round(e - s, 3)) for (_l, _t, n, s, e) in tasks]})  # expanded after the cap
    return jobs, [str(u) for u in range(num_users)]


def _google_rows(path: Path):
    lines = _lines(path)
    first = next(lines, "")
    if first.lstrip().startswith("{"):
        for line_no, line in enumerate(_chain(first, lines), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TraceFormatError(f"{path}:{line_no}: not a JSON object ({exc.msg})") from None
            if not isinstance(row, dict):
                raise TraceFormatError(f"{path}:{line_no}: not a JSON object (a {type(row).__name__})")
            yield line_no, row
    else:
        reader = csv.DictReader(_chain(first, lines))
        for row in reader:
            yield reader.line_num, row


def _chain(first: str, rest):
    yield first
    yield from rest


def _google(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    submit: dict[str, float] = {}
    user_of: dict[str, str] = {}
    sched: dict[tuple[str, int], float] = {}
    done: dict[tuple[str, int], float] = {}
    for line_no, row in _google_rows(path):
        missing = [k for k in ("time", "type", "collection_id", "instance_index") if row.get(k) is None]
        if missing:
            raise TraceFormatError(f"{path}:{line_no}: missing field {missing[0]!r} (need time, type, "
                                   "collection_id, instance_index)")
        try:
            t = _number(path, line_no, "time", row["time"]) / 1e6
            typ = int(_number(path, line_no, "type", row["type"], whole=True))
            idx = int(_number(path, line_no, "instance_index", row["instance_index"], whole=True))
        except TraceFormatError as exc:
            detail = str(exc).split(": ", 1)[1]
            raise TraceFormatError(f"{path}:{line_no}: time/type/instance_index must be finite whole numbers >= 0 "
                                   f"(time may be fractional): {detail}") from None
        coll = str(row["collection_id"]).strip()
        if not coll:
            raise TraceFormatError(f"{path}:{line_no}: empty collection_id")
        if row.get("user"):
            user_of.setdefault(coll, str(row["user"]))
        if typ == GOOGLE_SUBMIT:
            submit[coll] = min(t, submit.get(coll, t))
        elif typ == GOOGLE_SCHEDULE:
            sched[(coll, idx)] = t
            done.pop((coll, idx), None)
        elif typ == GOOGLE_FINISH and (coll, idx) in sched and (coll, idx) not in done:
            done[(coll, idx)] = t
    per_coll: dict[str, list[float]] = defaultdict(list)
    first_sched: dict[str, float] = {}
    for (coll, idx), t_end in sorted(done.items()):
        d = round(t_end - sched[(coll, idx)], 3)
        if d > 0:
            per_coll[coll].append(d)
            first_sched[coll] = min(sched[(coll, idx)], first_sched.get(coll, float("inf")))
    users = sorted(set(user_of.values()))
    uidx = {u: i for i, u in enumerate(users)}
    jobs = []
    for coll, durs in per_coll.items():
        jobs.append({"arrival": submit.get(coll, first_sched[coll]), "user": uidx.get(user_of.get(coll, ""), 0),
                     "label": f"collection-{coll}", "stages": [durs], "edges": []})
    return jobs, users
