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

Errors name the file and line (`TraceFormatError`).
"""
from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from sysgym.envs.job_sched.instance import JobInstance, build
from sysgym.errors import TraceFormatError

ALIBABA_COLUMNS = ("task_name", "instance_num", "job_name", "task_type", "status", "start_time", "end_time",
                   "plan_cpu", "plan_mem")
_DAG_NAME = re.compile(r"^[A-Za-z]+(\d+)((?:_\d+)*)$")
GOOGLE_SUBMIT, GOOGLE_SCHEDULE, GOOGLE_FINISH = 0, 3, 6


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def detect_format(path: Path) -> str:
    try:
        with path.open(newline="") as f:
            first = f.readline().strip()
    except UnicodeDecodeError as exc:
        raise TraceFormatError(f"{path}:1: not UTF-8 text (byte {exc.start}); neither a saved instance nor a "
                               "trace file") from None
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
               moving_delay_s: float = 2.0) -> JobInstance:
    """An instance from a trace file; `format` is "alibaba2018" or "google2019" (detected when None)."""
    path = Path(path)
    fmt = format or detect_format(path)
    if fmt not in ("alibaba2018", "google2019"):
        raise TraceFormatError(f"{path}: unknown trace format {fmt!r}; known: alibaba2018, google2019")
    try:
        jobs, users = _alibaba(path, num_users or 4) if fmt == "alibaba2018" else _google(path)
    except UnicodeDecodeError as exc:
        raise TraceFormatError(f"{path}: not UTF-8 text (byte {exc.start} of a chunk); is it a {fmt} trace?") \
            from None
    if not jobs:
        raise TraceFormatError(f"{path}: no complete job in the trace")
    jobs.sort(key=lambda j: (j["arrival"], j["label"]))
    if max_jobs is not None:
        jobs = jobs[:max_jobs]
    t0 = min(j["arrival"] for j in jobs)
    for j in jobs:
        j["arrival"] = round(j["arrival"] - t0, 3)
        if max_tasks_per_stage is not None:
            j["stages"] = [_coalesce(s, max_tasks_per_stage) for s in j["stages"]]
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


def _alibaba(path: Path, num_users: int) -> tuple[list[dict[str, Any]], list[str]]:
    rows: dict[str, list[tuple[int, str, int, float, float]]] = defaultdict(list)
    bad_jobs: set[str] = set()
    with path.open(newline="") as f:
        for line_no, row in enumerate(csv.reader(f), start=1):
            if not row or not "".join(row).strip():
                continue
            if len(row) != len(ALIBABA_COLUMNS):
                raise TraceFormatError(f"{path}:{line_no}: {len(row)} columns, an Alibaba 2018 batch_task row has "
                                       f"{len(ALIBABA_COLUMNS)} ({', '.join(ALIBABA_COLUMNS)})")
            task, inst_num, job = row[0].strip(), row[1].strip(), row[2].strip()
            try:
                n = int(float(inst_num))
                start, end = float(row[5]), float(row[6])
            except ValueError:
                raise TraceFormatError(f"{path}:{line_no}: job {job!r} task {task!r}: instance_num/start_time/"
                                       f"end_time must be numbers, got {inst_num!r}, {row[5]!r}, {row[6]!r}") from None
            if not job or not task:
                raise TraceFormatError(f"{path}:{line_no}: empty task_name or job_name")
            if n <= 0 or end <= start:
                bad_jobs.add(job)  # unfinished or empty task: the job cannot be replayed
                continue
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
                     "stages": [[round(e - s, 3)] * n for (_l, _t, n, s, e) in tasks]})
    return jobs, [str(u) for u in range(num_users)]


def _google_rows(path: Path):
    with path.open(newline="") as f:
        head = f.readline()
        f.seek(0)
        if head.lstrip().startswith("{"):
            for line_no, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    yield line_no, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise TraceFormatError(f"{path}:{line_no}: not a JSON object ({exc.msg})") from None
        else:
            reader = csv.DictReader(f)
            for line_no, row in enumerate(reader, start=2):
                yield line_no, row


def _google(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    submit: dict[str, float] = {}
    user_of: dict[str, str] = {}
    sched: dict[tuple[str, int], float] = {}
    done: dict[tuple[str, int], float] = {}
    for line_no, row in _google_rows(path):
        try:
            t = float(row["time"]) / 1e6
            typ = int(float(row["type"]))
            coll = str(row["collection_id"]).strip()
            idx = int(float(row["instance_index"]))
        except KeyError as exc:
            raise TraceFormatError(f"{path}:{line_no}: missing field {exc.args[0]!r} (need time, type, "
                                   "collection_id, instance_index)") from None
        except (TypeError, ValueError):
            raise TraceFormatError(f"{path}:{line_no}: time/type/instance_index must be numbers in {dict(row)}") \
                from None
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
