"""Loaders for the public serverless traces, each from a path the user gives (nothing is downloaded).

Schemas (the files are CSV with a header row; every malformed row raises TraceFormatError naming file and line):

* **Azure Functions 2019** (Shahrad et al., ATC'20; github.com/Azure/AzurePublicDataset, AzureFunctionsDataset2019.md):
  - invocation counts `invocations_per_function_md.anon.dNN.csv`: `HashOwner,HashApp,HashFunction,Trigger,1..1440`
    (invocations of the function in each minute of the day; Trigger one of http, timer, event, queue, storage,
    orchestration, others);
  - durations `function_durations_percentiles.anon.dNN.csv`: `HashOwner,HashApp,HashFunction,Average,Count,Minimum,
    Maximum,percentile_Average_0,_1,_25,_50,_75,_99,_100` (milliseconds);
  - memory `app_memory_percentiles.anon.dNN.csv`: `HashOwner,HashApp,SampleCount,AverageAllocatedMb,
    AverageAllocatedMb_pct1,...` (MB; per application, the unit of allocation).
* **Huawei Public Cloud Trace 2025** (Joosen et al., EuroSys'25; github.com/sir-lab/data-release,
  README_data_release_2025.md):
  - cold-start events: `day,time,clusterName,funcName,userID,requestID,totalCost_cold_start,podAllocationCost,
    deployCodeCost,deployDependencyCost,schedulingCost,podID` (seconds; podID begins with its pool name,
    e.g. `pool22-300-128`: 300 millicores, 128 MB);
  - per-request table: `time_worker,time_frontend,requestID,clusterName,funcName,podID,userID,totalCost_worker,
    workerCost,runtimeCost,totalCost_frontend,...` (seconds; any column order, extra columns ignored);
  - per-minute time series (`quantiles/<region>/<metric>/*.csv`): `day,time,<funcID>...`, one column per
    function `funcName---userID---poolName`, one row per minute, empty cells for none; the `requests` metric holds
    request counts, `<metric>_avg` / `<metric>_quantile_050` hold per-minute statistics in seconds.

What a trace lacks is filled from the calibrated model of `sysgym.envs.serverless.generator` (seeded, so a load
is reproducible): cold-start times for Azure functions and for Huawei functions without cold-start events,
execution times and memory when no durations or memory file is given. Arrivals known only per minute are
spread uniformly within their minute. The instance's `source` records what came from where.
"""
from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sysgym.envs.serverless.generator import (
    COLD_REGIONS,
    COLD_SIGMA,
    EXEC_MEAN_S_QUANTILES,
    EXEC_SIGMA,
    LARGE_POOL_COLD_FACTOR,
    LARGE_POOL_MB,
    MEM_NEED_MB_QUANTILES,
    MEMORY_WEIGHT,
    POOL_MB,
    SHARE_CONCENTRATION,
    _quantile,
)
from sysgym.envs.serverless.instance import COMPONENTS, TRIGGERS, ServerlessInstance, busy_memory_bound
from sysgym.errors import InvalidInstanceError, TraceFormatError
from sysgym.instances import read_text

AZURE_INVOCATION_COLUMNS = ("HashOwner", "HashApp", "HashFunction", "Trigger")
AZURE_DURATION_COLUMNS = ("HashOwner", "HashApp", "HashFunction", "Average", "Count", "Minimum", "Maximum",
                          "percentile_Average_0", "percentile_Average_1", "percentile_Average_25",
                          "percentile_Average_50", "percentile_Average_75", "percentile_Average_99",
                          "percentile_Average_100")
AZURE_MEMORY_COLUMNS = ("HashOwner", "HashApp", "SampleCount", "AverageAllocatedMb")
HUAWEI_COLD_START_COLUMNS = ("day", "time", "clusterName", "funcName", "userID", "requestID", "totalCost_cold_start",
                             "podAllocationCost", "deployCodeCost", "deployDependencyCost", "schedulingCost", "podID")
HUAWEI_REQUEST_COLUMNS = ("funcName", "userID", "podID")  # plus a time and an execution-time column
_FUNC_ID = re.compile(r"^(\d+)---(\d+)---(pool\d+-\d+-\d+)$")
_POOL = re.compile(r"^pool\d+-(\d+)-(\d+)")
MINUTE = 60.0
DAY = 86400.0


# -- reading --------------------------------------------------------------------------------------------------
def _rows(path: Path, required: Sequence[str], what: str) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The header and the (line number, cells) of a CSV file; a missing file, a non-text file or a header without
    the required columns is a named error."""
    text = read_text(path, f"{what} CSV")  # the kit's reader: named errors for a folder, a missing or non-UTF-8 file
    reader = csv.reader(text.splitlines())
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise TraceFormatError(f"{path}: empty file, expected a {what} CSV header") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise TraceFormatError(f"{path}:1: the {what} header lacks column(s) {', '.join(missing)} "
                               f"(got {', '.join(header[:8])}{', ...' if len(header) > 8 else ''})")

    def gen():
        for lineno, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise TraceFormatError(f"{path}:{lineno}: {len(row)} fields, the header has {len(header)}")
            yield lineno, row

    return header, gen()


def _number(path: Path, lineno: int, column: str, cell: str, *, integer: bool = False, empty: float | None = None,
            minimum: float = 0.0) -> float:
    cell = cell.strip()
    if cell == "" or cell.lower() == "nan":
        if empty is not None:
            return empty
        raise TraceFormatError(f"{path}:{lineno}: column {column!r} is empty")
    try:
        value = float(cell)
    except ValueError:
        raise TraceFormatError(f"{path}:{lineno}: column {column!r} is {cell!r}, not a number") from None
    if not math.isfinite(value) or value < minimum:
        raise TraceFormatError(f"{path}:{lineno}: column {column!r} is {cell!r} (must be finite and >= {minimum:g})")
    if integer and value != int(value):
        raise TraceFormatError(f"{path}:{lineno}: column {column!r} is {cell!r}, not a whole number")
    return value


def _pool_mb(path: Path, lineno: int, pod_or_pool: str) -> float:
    m = _POOL.match(pod_or_pool.strip())
    if not m:
        raise TraceFormatError(f"{path}:{lineno}: {pod_or_pool!r} does not begin with a pool name "
                               "'pool<N>-<millicores>-<MB>'")
    return float(m.group(2))


def _pool_name(pod_id: str) -> str:
    return "-".join(pod_id.strip().split("-")[:3])


# -- Huawei cold-start events ---------------------------------------------------------------------------------
@dataclass
class ColdStartTable:
    """Cold-start events per function (`funcName---userID---poolName`): counts and mean component times (s)."""

    path: str
    count: dict[str, int] = field(default_factory=dict)
    sums: dict[str, np.ndarray] = field(default_factory=dict)  # (pod, code, dependencies, scheduling) sums
    totals: list[float] = field(default_factory=list)

    def components(self, func_id: str) -> np.ndarray | None:
        """Mean (pod allocation, code, dependencies, scheduling) seconds of the function's cold starts."""
        if func_id not in self.count:
            return None
        return self.sums[func_id] / self.count[func_id]

    def summary(self) -> dict[str, Any]:
        """Mean and standard deviation of the cold-start time (compare: 3.24 s and 7.10 s over all regions,
        Joosen et al. Fig. 10(b)), and each component's share of the total."""
        tot = np.asarray(self.totals)
        comp = sum(self.sums.values()) if self.sums else np.zeros(len(COMPONENTS))
        share = comp / max(float(comp.sum()), 1e-12)
        return {"events": int(len(tot)), "functions": len(self.count),
                "mean_s": float(tot.mean()) if len(tot) else 0.0, "std_s": float(tot.std()) if len(tot) else 0.0,
                "component_share": {c.removesuffix("_s"): float(s) for c, s in zip(COMPONENTS, share)}}


def load_huawei_cold_starts(path: str | os.PathLike | Sequence[str | os.PathLike]) -> ColdStartTable:
    """Huawei 2025 cold-start event files (one, or several days/regions): per-function mean components."""
    paths = [Path(p) for p in ([path] if isinstance(path, (str, os.PathLike)) else path)]
    table = ColdStartTable(path=",".join(map(str, paths)))
    cols = ("podAllocationCost", "deployCodeCost", "deployDependencyCost", "schedulingCost")
    for p in paths:
        header, rows = _rows(p, HUAWEI_COLD_START_COLUMNS, "Huawei 2025 cold-start events")
        ix = {c: header.index(c) for c in HUAWEI_COLD_START_COLUMNS}
        for lineno, row in rows:
            _number(p, lineno, "time", row[ix["time"]])
            name, user = row[ix["funcName"]].strip(), row[ix["userID"]].strip()
            if not name or not user:
                raise TraceFormatError(f"{p}:{lineno}: funcName and userID must not be empty")
            _pool_mb(p, lineno, row[ix["podID"]])
            fid = f"{name}---{user}---{_pool_name(row[ix['podID']])}"
            comp = np.array([_number(p, lineno, c, row[ix[c]]) for c in cols])
            total = _number(p, lineno, "totalCost_cold_start", row[ix["totalCost_cold_start"]])
            table.count[fid] = table.count.get(fid, 0) + 1
            table.sums[fid] = table.sums.get(fid, 0.0) + comp
            table.totals.append(total)
    return table


# -- instances from arrivals ----------------------------------------------------------------------------------
def _calibrated_cold(rng: np.random.Generator, mem_mb: float, region: str = "all") -> np.ndarray:
    reg = COLD_REGIONS[region]
    total = math.exp(math.log(reg["mean_s"]) - COLD_SIGMA ** 2 / 2 + COLD_SIGMA * rng.standard_normal())
    if mem_mb > LARGE_POOL_MB:
        total *= LARGE_POOL_COLD_FACTOR
    return total * rng.dirichlet(SHARE_CONCENTRATION * np.asarray(reg["shares"]))


def _build(path: Path, name: str, mem: list[float], trigger: list[int], comps: list[np.ndarray],
           times: list[np.ndarray], execs: list[np.ndarray], horizon: float, source: dict[str, Any],
           capacity_fraction: float, memory_weight: float) -> ServerlessInstance:
    keep = [i for i, t in enumerate(times) if len(t)]
    if not keep:
        raise TraceFormatError(f"{path}: no invocations in the trace")
    mem_a = np.array([mem[i] for i in keep])
    comp_a = np.round(np.array([comps[i] for i in keep]), 6)
    fn = np.concatenate([np.full(len(times[i]), k) for k, i in enumerate(keep)])
    t = np.concatenate([times[i] for i in keep])
    e = np.concatenate([execs[i] for i in keep])
    order = np.lexsort((fn, t))
    fn, t, e = fn[order], np.round(t[order], 6), np.round(e[order], 6)
    t = np.minimum(t, np.nextafter(horizon, 0))
    busy = busy_memory_bound(fn, t, e, comp_a.sum(axis=1), mem_a)
    capacity = max(math.ceil(capacity_fraction * float(mem_a.sum())), math.ceil(busy), int(mem_a.max()))
    source = {**source, "functions": [source["function_ids"][i] for i in keep]}
    source.pop("function_ids")
    try:
        return ServerlessInstance(mem_mb=mem_a, **{c: comp_a[:, i] for i, c in enumerate(COMPONENTS)},
                                  trigger=[trigger[i] for i in keep], inv_func=fn, inv_time=t, inv_exec=e,
                                  capacity_mb=float(capacity), memory_weight=float(memory_weight), horizon_s=horizon,
                                  name=name, source=source)
    except InvalidInstanceError as exc:
        raise TraceFormatError(f"{path}: the trace gives an impossible instance ({exc})") from None


def _name(path: Path, defaults: bool) -> str:
    # Only a load with default options is replayable from its file alone (sysgym.instance("serverless/file:...")).
    return f"serverless/file:{path}" if defaults else f"serverless/loaded:{path}"


def _spread(rng: np.random.Generator, minute_starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """`counts[i]` arrivals uniform within the minute starting at `minute_starts[i]`, sorted."""
    starts = np.repeat(minute_starts, counts.astype(np.int64))
    return np.sort(starts + rng.uniform(0.0, MINUTE, len(starts)))


def load_azure_invocations(path: str | os.PathLike, *, durations: str | os.PathLike | None = None,
                           memory: str | os.PathLike | None = None, max_functions: int | None = None, seed: int = 0,
                           capacity_fraction: float = 0.5, memory_weight: float = MEMORY_WEIGHT,
                           region: str = "all") -> ServerlessInstance:
    """An Azure Functions 2019 day: per-minute invocation counts (spread uniformly within each minute), execution
    times from the durations file (each invocation drawn from its function's percentiles of averages) and memory
    from the application memory file (its average allocated MB, rounded up to a Huawei pool), else calibrated
    draws; cold starts from the calibrated Huawei model."""
    path = Path(path)
    header, rows = _rows(path, AZURE_INVOCATION_COLUMNS, "Azure Functions 2019 invocations")
    minutes = [str(m) for m in range(1, 1441)]
    if header[:4] != list(AZURE_INVOCATION_COLUMNS) or header[4:] != minutes:
        raise TraceFormatError(f"{path}:1: expected the columns {', '.join(AZURE_INVOCATION_COLUMNS)}, 1..1440")
    rng = np.random.default_rng([int(seed), 0x415A55])  # "AZU"
    keys, trig, counts = [], [], []
    for lineno, row in rows:
        if max_functions is not None and len(keys) >= max_functions:
            break
        if not all(c.strip() for c in row[:3]):
            raise TraceFormatError(f"{path}:{lineno}: HashOwner, HashApp and HashFunction must not be empty")
        trigger = row[3].strip().lower()
        if trigger not in TRIGGERS:
            raise TraceFormatError(f"{path}:{lineno}: Trigger {row[3]!r} is not one of {', '.join(TRIGGERS)}")
        c = np.array([_number(path, lineno, f"minute {m + 1}", v, integer=True) for m, v in enumerate(row[4:])])
        if c.sum() == 0:
            continue
        keys.append(tuple(x.strip() for x in row[:3]))
        trig.append(TRIGGERS.index(trigger))
        counts.append(c)
    dur = _azure_durations(Path(durations)) if durations is not None else {}
    mem_app = _azure_memory(Path(memory)) if memory is not None else {}
    mem, comps, times, execs = [], [], [], []
    starts = MINUTE * np.arange(1440)
    for key, c in zip(keys, counts):
        arr = _spread(rng, starts, c)
        need = mem_app.get(key[:2])
        if need is None:
            need = _quantile(MEM_NEED_MB_QUANTILES, rng.random(), log=True)
        m = float(next((p for p in POOL_MB if p >= need), POOL_MB[-1]))
        pct = dur.get(key)
        if pct is None:
            mean = _quantile(EXEC_MEAN_S_QUANTILES, rng.random(), log=True)
            e = mean * np.exp(EXEC_SIGMA * rng.standard_normal(len(arr)) - EXEC_SIGMA ** 2 / 2)
        else:
            e = np.array([_quantile(pct, u, log=True) for u in rng.random(len(arr))])
        mem.append(m), comps.append(_calibrated_cold(rng, m, region)), times.append(arr), execs.append(e)
    defaults = durations is None and memory is None and max_functions is None and seed == 0 \
        and capacity_fraction == 0.5 and memory_weight == MEMORY_WEIGHT and region == "all"
    source = {"trace": "azure_functions_2019", "path": str(path), "durations": str(durations) if durations else None,
              "memory": str(memory) if memory else None, "seed": int(seed), "region": region,
              "function_ids": ["/".join(k) for k in keys]}
    return _build(path, _name(path, defaults), mem, trig, comps, times, execs, DAY, source, capacity_fraction,
                  memory_weight)


def _azure_durations(path: Path) -> dict[tuple[str, ...], tuple[tuple[float, float], ...]]:
    header, rows = _rows(path, AZURE_DURATION_COLUMNS, "Azure Functions 2019 durations")
    ix = {c: header.index(c) for c in AZURE_DURATION_COLUMNS}
    probs = (0.0, 0.01, 0.25, 0.50, 0.75, 0.99, 1.0)
    cols = AZURE_DURATION_COLUMNS[7:]
    out = {}
    for lineno, row in rows:
        key = tuple(row[ix[c]].strip() for c in AZURE_DURATION_COLUMNS[:3])
        vals = [max(_number(path, lineno, c, row[ix[c]]), 0.1) / 1000.0 for c in cols]  # ms -> s (>= 0.1 ms)
        if any(b < a for a, b in zip(vals, vals[1:])):
            raise TraceFormatError(f"{path}:{lineno}: the percentiles of {key[2]} are not non-decreasing")
        out[key] = tuple(zip(probs, vals))
    return out


def _azure_memory(path: Path) -> dict[tuple[str, str], float]:
    header, rows = _rows(path, AZURE_MEMORY_COLUMNS, "Azure Functions 2019 application memory")
    ix = {c: header.index(c) for c in AZURE_MEMORY_COLUMNS}
    out = {}
    for lineno, row in rows:
        out[(row[ix["HashOwner"]].strip(), row[ix["HashApp"]].strip())] = _number(
            path, lineno, "AverageAllocatedMb", row[ix["AverageAllocatedMb"]], minimum=1e-9)
    return out


def load_huawei_requests(path: str | os.PathLike, *, cold_starts: ColdStartTable | str | os.PathLike | None = None,
                         max_functions: int | None = None, seed: int = 0, capacity_fraction: float = 0.5,
                         memory_weight: float = MEMORY_WEIGHT, region: str = "all") -> ServerlessInstance:
    """A Huawei 2025 per-request table: every request's arrival (the frontend's timestamp, else the worker's) and
    execution time (`runtimeCost`, else `totalCost_worker`); memory from the pod's pool; cold-start components
    from the cold-start events (`cold_starts=`: a table or a path) per function, else the calibrated model."""
    path = Path(path)
    header, rows = _rows(path, HUAWEI_REQUEST_COLUMNS, "Huawei 2025 per-request table")
    time_col = next((c for c in ("time_frontend", "time_worker") if c in header), None)
    exec_col = next((c for c in ("runtimeCost", "totalCost_worker") if c in header), None)
    if time_col is None or exec_col is None:
        raise TraceFormatError(f"{path}:1: the per-request header needs time_frontend or time_worker, and "
                               "runtimeCost or totalCost_worker")
    if isinstance(cold_starts, (str, os.PathLike)):
        cold_starts = load_huawei_cold_starts(cold_starts)
    ix = {c: header.index(c) for c in (*HUAWEI_REQUEST_COLUMNS, time_col, exec_col)}
    per: dict[str, list[tuple[float, float]]] = {}
    mem_of: dict[str, float] = {}
    for lineno, row in rows:
        name, user = row[ix["funcName"]].strip(), row[ix["userID"]].strip()
        if not name or not user:
            raise TraceFormatError(f"{path}:{lineno}: funcName and userID must not be empty")
        mem = _pool_mb(path, lineno, row[ix["podID"]])
        fid = f"{name}---{user}---{_pool_name(row[ix['podID']])}"
        if fid not in per:
            if max_functions is not None and len(per) >= max_functions:
                continue
            per[fid] = []
            mem_of[fid] = mem
        per[fid].append((_number(path, lineno, time_col, row[ix[time_col]]),
                         _number(path, lineno, exec_col, row[ix[exec_col]])))
    if not per:
        raise TraceFormatError(f"{path}: no requests in the table")
    t0 = math.floor(min(t for reqs in per.values() for t, _ in reqs) / DAY) * DAY
    t_max = max(t for reqs in per.values() for t, _ in reqs) - t0
    horizon = math.floor(t_max / DAY + 1) * DAY
    rng = np.random.default_rng([int(seed), 0x485752])  # "HWR"
    ids = sorted(per, key=lambda k: min(t for t, _ in per[k]))
    mem, comps, times, execs, trig = [], [], [], [], []
    from_table = 0
    for fid in ids:
        reqs = sorted(per[fid])
        times.append(np.array([t - t0 for t, _ in reqs])), execs.append(np.array([e for _, e in reqs]))
        mem.append(mem_of[fid])
        trig.append(TRIGGERS.index("others"))
        c = cold_starts.components(fid) if cold_starts is not None else None
        from_table += c is not None
        comps.append(c if c is not None else _calibrated_cold(rng, mem_of[fid], region))
    defaults = cold_starts is None and max_functions is None and seed == 0 and capacity_fraction == 0.5 \
        and memory_weight == MEMORY_WEIGHT and region == "all"
    source = {"trace": "huawei_2025_requests", "path": str(path), "day_start_s": t0, "time_column": time_col,
              "exec_column": exec_col, "cold_starts": cold_starts.path if cold_starts is not None else None,
              "functions_with_cold_start_events": from_table, "seed": int(seed), "region": region,
              "function_ids": ids}
    return _build(path, _name(path, defaults), mem, trig, comps, times, execs, horizon, source, capacity_fraction,
                  memory_weight)


def _wide_minutes(path: Path, what: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """A Huawei per-minute file: (funcIDs, minute start times in seconds, values: minutes x functions, NaN for
    none), rows sorted by time."""
    header, rows = _rows(path, ("day", "time"), what)
    if header[:2] != ["day", "time"]:
        raise TraceFormatError(f"{path}:1: a per-minute file starts with the columns day, time")
    ids = header[2:]
    for i, fid in enumerate(ids):
        if not _FUNC_ID.match(fid):
            raise TraceFormatError(f"{path}:1: column {i + 3} is {fid!r}, not a funcID 'funcName---userID---poolName'")
    times, values = [], []
    for lineno, row in rows:
        _number(path, lineno, "day", row[0], integer=True)
        t = _number(path, lineno, "time", row[1])
        times.append(t)
        values.append([_number(path, lineno, ids[j], v, empty=math.nan) for j, v in enumerate(row[2:])])
    if not times:
        raise TraceFormatError(f"{path}: no rows")
    order = np.argsort(times, kind="stable")
    return ids, np.array(times)[order], np.array(values, float).reshape(len(times), len(ids))[order]


def load_huawei_per_minute(path: str | os.PathLike, *, exec_time: str | os.PathLike | None = None,
                           cold_starts: ColdStartTable | str | os.PathLike | None = None,
                           max_functions: int | None = None, seed: int = 0, capacity_fraction: float = 0.5,
                           memory_weight: float = MEMORY_WEIGHT, region: str = "all") -> ServerlessInstance:
    """A Huawei 2025 per-minute `requests` file (request counts per function and minute, spread uniformly within
    the minute). `exec_time=` a per-minute execution-time statistic of the same layout (e.g. the
    `runtimeCost_quantile_050` or `totalCost_avg` metric): each request runs for its minute's value (the function's
    mean over minutes where a minute has none), else calibrated draws."""
    path = Path(path)
    ids, minute_t, counts = _wide_minutes(path, "Huawei 2025 per-minute requests")
    bad = np.argwhere(np.isfinite(counts) & (counts != np.round(counts)))
    if len(bad):
        r, c = bad[0]
        raise TraceFormatError(f"{path}:{r + 2}: column {ids[c]!r} is {counts[r, c]}, not a whole request count")
    counts = np.nan_to_num(counts).astype(np.int64)
    ex = None
    if exec_time is not None:
        eids, et, ev = _wide_minutes(Path(exec_time), "Huawei 2025 per-minute execution time")
        if eids != ids or len(et) != len(minute_t) or (et != minute_t).any():
            raise TraceFormatError(f"{exec_time}: its functions and minutes must match {path}'s")
        ex = ev
    if isinstance(cold_starts, (str, os.PathLike)):
        cold_starts = load_huawei_cold_starts(cold_starts)
    t0 = math.floor(minute_t.min() / DAY) * DAY
    horizon = math.floor((minute_t.max() - t0) / DAY + 1) * DAY
    rng = np.random.default_rng([int(seed), 0x48574D])  # "HWM"
    mem, comps, times, execs, trig, kept = [], [], [], [], [], []
    for j, fid in enumerate(ids):
        if counts[:, j].sum() == 0:
            continue
        if max_functions is not None and len(kept) >= max_functions:
            break
        kept.append(fid)
        m = float(_POOL.match(_FUNC_ID.match(fid).group(3)).group(2))
        arr = _spread(rng, minute_t - t0, counts[:, j])  # sorted, so grouped by minute like np.repeat below
        if ex is not None and np.isfinite(ex[:, j]).any():
            col = ex[:, j]
            col = np.where(np.isfinite(col), col, np.nanmean(col))
            e = np.repeat(col, counts[:, j])
        else:
            mean = _quantile(EXEC_MEAN_S_QUANTILES, rng.random(), log=True)
            e = mean * np.exp(EXEC_SIGMA * rng.standard_normal(len(arr)) - EXEC_SIGMA ** 2 / 2)
        c = cold_starts.components(fid) if cold_starts is not None else None
        mem.append(m), times.append(arr), execs.append(e), trig.append(TRIGGERS.index("others"))
        comps.append(c if c is not None else _calibrated_cold(rng, m, region))
    defaults = exec_time is None and cold_starts is None and max_functions is None and seed == 0 \
        and capacity_fraction == 0.5 and memory_weight == MEMORY_WEIGHT and region == "all"
    source = {"trace": "huawei_2025_per_minute", "path": str(path), "day_start_s": t0,
              "exec_time": str(exec_time) if exec_time else None,
              "cold_starts": cold_starts.path if cold_starts is not None else None, "seed": int(seed),
              "region": region, "function_ids": kept}
    return _build(path, _name(path, defaults), mem, trig, comps, times, execs, horizon, source, capacity_fraction,
                  memory_weight)


def trace_kind(path: str | os.PathLike) -> str:
    """Which trace file this is, by its header: "azure_invocations", "huawei_cold_starts", "huawei_requests" or
    "huawei_per_minute"; anything else is a TraceFormatError."""
    path = Path(path)
    header, _ = _rows(path, (), "serverless trace")
    if header[:4] == list(AZURE_INVOCATION_COLUMNS):
        return "azure_invocations"
    if all(c in header for c in HUAWEI_COLD_START_COLUMNS):
        return "huawei_cold_starts"
    if all(c in header for c in HUAWEI_REQUEST_COLUMNS):
        return "huawei_requests"
    if header[:2] == ["day", "time"]:
        return "huawei_per_minute"
    raise TraceFormatError(f"{path}:1: not a known serverless trace (Azure Functions 2019 invocations, Huawei 2025 "
                           f"cold starts, per-request or per-minute requests); header starts {', '.join(header[:5])}")


def load_trace(path: str | os.PathLike) -> ServerlessInstance:
    """Build an instance from a trace file with default options, recognising it by its header."""
    kind = trace_kind(path)
    if kind == "huawei_cold_starts":
        raise TraceFormatError(f"{path}: a Huawei cold-start events table holds no invocations; pass it as "
                               "cold_starts= to load_huawei_requests or load_huawei_per_minute")
    return {"azure_invocations": load_azure_invocations, "huawei_requests": load_huawei_requests,
            "huawei_per_minute": load_huawei_per_minute}[kind](path)
