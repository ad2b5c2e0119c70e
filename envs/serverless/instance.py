"""The serverless warm-pool instance: functions, their invocations, and a pool with a memory capacity.

Each function `f` has one instance (a pod / a Function App worker) that serves all of its concurrent
invocations, as in Azure Functions, where the application is the unit of allocation (Shahrad et al., ATC'20,
and the Azure Functions 2019 trace's description), and as in Shahrad et al.'s simulation, where an application
is either in memory or not. The instance occupies `mem_mb[f]` (its pool's memory limit, Huawei's pod pools,
Joosen et al., EuroSys'25, Sec. 2.1) while it is loading, busy or idle. Loading it takes the function's cold-start
time, the sum of four components logged by Huawei's platform (Joosen et al., Table 1 and the 2025 trace schema):
pod allocation, code deployment, dependency deployment and scheduling.

Invocation `j` (sorted by arrival) belongs to function `inv_func[j]`, arrives at `inv_time[j]` (seconds from 0) and
executes for `inv_exec[j]` seconds once an instance is ready. All loaded instances together must fit in
`capacity_mb`; the generator makes `capacity_mb` at least the memory that busy instances can ever need (every
invocation waiting at most one cold start), so a cold start always fits once idle instances are evicted.

`memory_weight` (seconds of added latency per GB-s of idle memory) weighs the family's objective,
`cost = cold-start seconds + memory_weight x wasted GB-s` (`sysgym.envs.serverless.evaluate`).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sysgym.errors import InvalidInstanceError, TraceFormatError
from sysgym.instances import InstanceBase, read_json, require_fields

FORMAT = "sysgym.serverless.instance/1"
COMPONENTS = ("pod_alloc_s", "deploy_code_s", "deploy_dep_s", "scheduling_s")
# Azure Functions' trigger groups (Shahrad et al., ATC'20, Fig. 2; the 2019 trace's `Trigger` column), and the
# Huawei 2025 trace's trigger types (Joosen et al., Sec. 3.3) mapped onto them by the loaders.
TRIGGERS = ("http", "queue", "event", "orchestration", "timer", "storage", "others")

_FUNC_FIELDS = ("mem_mb", *COMPONENTS, "trigger")
_INV_FIELDS = ("inv_func", "inv_time", "inv_exec")


@dataclass(frozen=True, eq=False)
class ServerlessInstance(InstanceBase):
    """Immutable problem instance (read-only arrays); `name` is its replayable spec."""

    FORMAT = FORMAT

    mem_mb: np.ndarray  # (F,) memory of the function's instance (its pool's limit), MB
    pod_alloc_s: np.ndarray  # (F,) cold-start components, seconds
    deploy_code_s: np.ndarray
    deploy_dep_s: np.ndarray
    scheduling_s: np.ndarray
    trigger: np.ndarray  # (F,) index into TRIGGERS (generator v1: the first of an application's triggers)
    inv_func: np.ndarray  # (N,) function of each invocation
    inv_time: np.ndarray  # (N,) arrival time, seconds, non-decreasing
    inv_exec: np.ndarray  # (N,) execution time once an instance is ready, seconds
    capacity_mb: float
    memory_weight: float  # seconds of cold-start latency one GB-s of idle memory is worth
    horizon_s: float  # arrivals lie in [0, horizon_s)
    name: str = "serverless/custom"
    source: dict[str, Any] = field(default_factory=dict)  # where it came from (generator parameters, trace file)

    def __post_init__(self) -> None:
        conv = {"mem_mb": np.float64, "trigger": np.int64, "inv_func": np.int64, "inv_time": np.float64,
                "inv_exec": np.float64, **{c: np.float64 for c in COMPONENTS}}
        for key, dtype in conv.items():
            try:
                arr = np.array(getattr(self, key), dtype=dtype)
            except (TypeError, ValueError) as exc:
                raise InvalidInstanceError(f"{self.name}: {key} is not numeric ({exc})") from None
            if arr.ndim != 1:
                raise InvalidInstanceError(f"{self.name}: {key} must be one-dimensional, got shape {arr.shape}")
            arr.setflags(write=False)
            object.__setattr__(self, key, arr)
        for key in ("capacity_mb", "memory_weight", "horizon_s"):
            object.__setattr__(self, key, float(getattr(self, key)))
        validate(self)
        cold = self.pod_alloc_s + self.deploy_code_s + self.deploy_dep_s + self.scheduling_s
        cold.setflags(write=False)
        object.__setattr__(self, "cold_s", cold)
        # The last moment anything can still run: every invocation waits at most one cold start.
        end = float(np.max(self.inv_time + cold[self.inv_func] + self.inv_exec)) if len(self.inv_time) else 0.0
        object.__setattr__(self, "end_s", max(self.horizon_s, end))

    # -- sizes --------------------------------------------------------------------------------------------
    @property
    def num_functions(self) -> int:
        return len(self.mem_mb)

    @property
    def num_invocations(self) -> int:
        return len(self.inv_time)

    def function_invocations(self) -> list[np.ndarray]:
        """Indices of each function's invocations, in arrival order."""
        order = np.argsort(self.inv_func, kind="stable")
        bounds = np.searchsorted(self.inv_func[order], np.arange(self.num_functions + 1))
        return [order[bounds[f]:bounds[f + 1]] for f in range(self.num_functions)]

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"format": FORMAT, "name": self.name, "capacity_mb": self.capacity_mb,
                                "memory_weight": self.memory_weight, "horizon_s": self.horizon_s,
                                "source": self.source}
        for key in (*_FUNC_FIELDS, *_INV_FIELDS):
            data[key] = getattr(self, key).tolist()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str | os.PathLike | None = None) -> ServerlessInstance:
        where = path if path is not None else "<dict>"
        require_fields(data, ("capacity_mb", "memory_weight", "horizon_s", *_FUNC_FIELDS, *_INV_FIELDS), where)
        kwargs = {k: data[k] for k in ("capacity_mb", "memory_weight", "horizon_s", *_FUNC_FIELDS, *_INV_FIELDS)}
        for key in (*_FUNC_FIELDS, *_INV_FIELDS):
            if not isinstance(kwargs[key], list):
                raise TraceFormatError(f"{where}: field {key!r} must be a list, got {type(kwargs[key]).__name__}")
        try:
            return cls(**kwargs, name=data.get("name", f"serverless/file:{path}"), source=data.get("source", {}))
        except InvalidInstanceError:
            raise
        except (TypeError, ValueError, OverflowError) as exc:
            raise TraceFormatError(f"{where}: malformed instance field ({exc})") from None


def validate(inst: ServerlessInstance) -> None:
    """Reject an instance that cannot exist; the message names the offending function or invocation."""
    n_f, n = len(inst.mem_mb), len(inst.inv_time)
    for key in (*COMPONENTS, "trigger"):
        if len(getattr(inst, key)) != n_f:
            raise InvalidInstanceError(f"{inst.name}: {key} has {len(getattr(inst, key))} entries, mem_mb has {n_f}")
    for key in ("inv_func", "inv_exec"):
        if len(getattr(inst, key)) != n:
            raise InvalidInstanceError(f"{inst.name}: {key} has {len(getattr(inst, key))} entries, inv_time has {n}")
    for key in ("capacity_mb", "memory_weight", "horizon_s"):
        value = getattr(inst, key)
        if not math.isfinite(value) or value < 0:
            raise InvalidInstanceError(f"{inst.name}: {key} must be a finite non-negative number, got {value}")
    for key in ("mem_mb", *COMPONENTS, "inv_time", "inv_exec"):
        arr = getattr(inst, key)
        bad = np.flatnonzero(~np.isfinite(arr) | (arr < 0))
        if len(bad):
            what = "function" if key in ("mem_mb", *COMPONENTS) else "invocation"
            raise InvalidInstanceError(f"{inst.name}: {key} of {what} {int(bad[0])} is {arr[bad[0]]} "
                                       "(must be finite and >= 0)")
    if (inst.mem_mb <= 0).any():
        raise InvalidInstanceError(f"{inst.name}: function {int(np.argmax(inst.mem_mb <= 0))} has no memory")
    if len(inst.trigger) and ((inst.trigger < 0) | (inst.trigger >= len(TRIGGERS))).any():
        f = int(np.argmax((inst.trigger < 0) | (inst.trigger >= len(TRIGGERS))))
        raise InvalidInstanceError(f"{inst.name}: function {f} has trigger index {int(inst.trigger[f])}; "
                                   f"triggers are 0..{len(TRIGGERS) - 1} {TRIGGERS}")
    if n:
        if ((inst.inv_func < 0) | (inst.inv_func >= n_f)).any():
            j = int(np.argmax((inst.inv_func < 0) | (inst.inv_func >= n_f)))
            raise InvalidInstanceError(f"{inst.name}: invocation {j} names function {int(inst.inv_func[j])}; "
                                       f"the instance has {n_f}")
        if (np.diff(inst.inv_time) < 0).any():
            j = int(np.argmax(np.diff(inst.inv_time) < 0)) + 1
            raise InvalidInstanceError(f"{inst.name}: invocations must be sorted by arrival; invocation {j} "
                                       f"({inst.inv_time[j]} s) comes before invocation {j - 1}")
        if inst.inv_time[-1] >= inst.horizon_s:
            raise InvalidInstanceError(f"{inst.name}: invocation {n - 1} arrives at {inst.inv_time[-1]} s, not before "
                                       f"the horizon {inst.horizon_s} s")
    if n_f and inst.mem_mb.max() > inst.capacity_mb:
        f = int(np.argmax(inst.mem_mb))
        raise InvalidInstanceError(f"{inst.name}: function {f} needs {inst.mem_mb[f]} MB, more than the pool's "
                                   f"capacity {inst.capacity_mb} MB")
    need = peak_busy_memory(inst)
    if need > inst.capacity_mb + 1e-6:
        raise InvalidInstanceError(f"{inst.name}: busy instances may need {need:.0f} MB at once (every invocation "
                                   f"waiting one cold start), more than the capacity {inst.capacity_mb:.0f} MB")


def peak_busy_memory(inst: ServerlessInstance) -> float:
    """The most memory busy instances can need at once under any schedule (see `busy_memory_bound`)."""
    cold = inst.pod_alloc_s + inst.deploy_code_s + inst.deploy_dep_s + inst.scheduling_s
    return busy_memory_bound(inst.inv_func, inst.inv_time, inst.inv_exec, cold, inst.mem_mb)


def busy_memory_bound(inv_func: np.ndarray, inv_time: np.ndarray, inv_exec: np.ndarray, cold: np.ndarray,
                      mem: np.ndarray) -> float:
    """Function f is busy at most during the union of [a_j, a_j + cold_f + exec_j) over its invocations (a wait
    never exceeds one cold start); the largest total memory of functions busy at one moment under that bound."""
    if len(inv_time) == 0:
        return 0.0
    ends = inv_time + cold[inv_func] + inv_exec
    order = np.lexsort((inv_time, inv_func))
    seg_s, seg_e, seg_m = [], [], []
    f_list, s_list, e_list = inv_func[order].tolist(), inv_time[order].tolist(), ends[order].tolist()
    cur_f, cur_s, cur_e = f_list[0], s_list[0], e_list[0]
    for fi, si, ei in zip(f_list, s_list, e_list):
        if fi == cur_f and si <= cur_e:
            cur_e = max(cur_e, ei)
            continue
        seg_s.append(cur_s), seg_e.append(cur_e), seg_m.append(float(mem[cur_f]))
        cur_f, cur_s, cur_e = fi, si, ei
    seg_s.append(cur_s), seg_e.append(cur_e), seg_m.append(float(mem[cur_f]))
    return max_overlap(np.array(seg_s), np.array(seg_e), np.array(seg_m))


def max_overlap(starts: np.ndarray, ends: np.ndarray, weights: np.ndarray) -> float:
    """The largest total weight of half-open intervals [start, end) covering one moment."""
    if len(starts) == 0:
        return 0.0
    times = np.concatenate([starts, ends])
    deltas = np.concatenate([weights, -weights])
    # At equal times ends (-) come before starts (+): [a, b) and [b, c) do not overlap.
    order = np.lexsort((deltas, times))
    return float(max(0.0, np.cumsum(deltas[order]).max()))


def save(inst: ServerlessInstance, path: str | Path) -> Path:
    return inst.save(path)


def load(path: str | os.PathLike) -> ServerlessInstance:
    """Load a saved instance (JSON), or build one from a trace file: an Azure Functions 2019 invocation file
    (`invocations_per_function_md.anon.d01.csv`), a Huawei 2025 per-request table or per-minute `requests` file
    (`sysgym.envs.serverless.traces`). Malformed files raise TraceFormatError naming the file and line."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        from sysgym.envs.serverless.traces import load_trace

        return load_trace(path)
    data = read_json(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise TraceFormatError(f"{path}: not a sysgym serverless instance (format {FORMAT!r}) nor a trace .csv")
    return ServerlessInstance.from_dict(data, path)
