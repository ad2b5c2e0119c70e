"""Knob spaces: which PostgreSQL knobs a tuner may set, with ranges, read from the running server.

A knob's type, unit, hard range, enum values and context (restart vs reload) come from the server's own
`pg_settings`; a named subset picks the knobs and may narrow their ranges. Subsets:

* `llamatune-pg13`: LlamaTune's 112-knob PostgreSQL 13 space (Kanellis et al., PVLDB 15(11) 2022),
  shipped as `data/llamatune_pg13.csv` with its source. Knobs PostgreSQL 18 renamed or removed are
  reported in `KnobSpace.missing` (with the rename when known), never dropped silently. Note that this
  space leaves out durability knobs (`synchronous_commit`, `fsync`, `wal_sync_method`).
* `pgbench-core`: ten knobs that matter for pgbench's TPC-B-like write path (commit/WAL/checkpoint/buffer
  knobs; OtterTune's and CDBTune's top-ranked PostgreSQL knobs plus `synchronous_commit`).
* `tiny`: three of them, for tests and quick demos.

`Knob` and `KnobSpace` (normalised coordinates u in [0, 1]) are shared with the serving-knob family:
`sysgym.envs.knob_space`.
"""
from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path
from typing import Any

from sysgym.envs.knob_space import Knob, KnobSpace, bool_text
from sysgym.errors import TraceFormatError, UnknownNameError

LLAMATUNE_CSV = "llamatune_pg13.csv"

# Knobs of LlamaTune's PG13 space that later PostgreSQL releases renamed or removed
# (PostgreSQL 14-18 release notes, "Migration" sections).
RENAMED_OR_REMOVED = {
    "vacuum_cleanup_index_scale_factor": "removed in PostgreSQL 14 (release notes E.x: no longer used)",
    "operator_precedence_warning": "removed in PostgreSQL 14",
    "wal_keep_segments": "renamed to wal_keep_size in PostgreSQL 13",
    "autovacuum_vacuum_cost_delay": "type changed to real (ms) in PostgreSQL 12",
    "force_parallel_mode": "renamed to debug_parallel_query in PostgreSQL 16",
    "replacement_sort_tuples": "removed in PostgreSQL 11",
    "old_snapshot_threshold": "removed in PostgreSQL 17",
    "trace_recovery_messages": "removed in PostgreSQL 17",
    "db_user_namespace": "removed in PostgreSQL 17",
    "vacuum_defer_cleanup_age": "removed in PostgreSQL 16",
    "promote_trigger_file": "removed in PostgreSQL 16",
    "stats_temp_directory": "removed in PostgreSQL 15 (statistics moved to shared memory)",
}

# name -> (min, max) in the knob's own unit, or None for the server's own range (enum/bool).
# Ranges follow LlamaTune's PG13 space where it has the knob; shared_buffers is capped at 1 GiB
# (131072 x 8 kB) so a tuner on a shared 24 GiB machine cannot take all its memory.
PGBENCH_CORE: dict[str, tuple[float, float] | None] = {
    "synchronous_commit": None,
    "shared_buffers": (16, 131072),
    "wal_buffers": (-1, 262143),
    "commit_delay": (0, 4096),
    "commit_siblings": (0, 20),
    "max_wal_size": (2, 4096),
    "checkpoint_timeout": (30, 3600),
    "checkpoint_completion_target": (0.0, 1.0),
    "wal_writer_delay": (1, 10000),
    "bgwriter_lru_maxpages": (0, 1000),
}
TINY = {k: PGBENCH_CORE[k] for k in ("synchronous_commit", "shared_buffers", "commit_delay")}


def llamatune_csv_path() -> Path:
    return Path(str(resources.files("sysgym.envs.pg_knobs") / "data" / LLAMATUNE_CSV))


def load_knob_csv(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read a knob-space CSV (columns name,type,default,min,max,choices); bad rows name the line."""
    path = Path(path)
    out: dict[str, dict[str, Any]] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        need = {"name", "type", "default", "min", "max", "choices"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise TraceFormatError(f"{path}: header must contain {sorted(need)}, got {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            name, typ = row["name"].strip(), row["type"].strip()
            if typ not in ("integer", "real", "enum"):
                raise TraceFormatError(f"{path}:{line}: knob {name!r} has type {typ!r}, expected integer/real/enum")
            if typ == "enum":
                choices = [c for c in row["choices"].split("|") if c]
                if not choices:
                    raise TraceFormatError(f"{path}:{line}: enum knob {name!r} lists no choices")
                out[name] = {"type": typ, "default": row["default"], "choices": choices}
            else:
                try:
                    lo, hi = float(row["min"]), float(row["max"])
                except ValueError:
                    raise TraceFormatError(f"{path}:{line}: knob {name!r} has a non-numeric range "
                                           f"{row['min']!r}..{row['max']!r}") from None
                if lo > hi:
                    raise TraceFormatError(f"{path}:{line}: knob {name!r} has min {lo} > max {hi}")
                out[name] = {"type": typ, "default": row["default"], "min": lo, "max": hi}
    return out


def subset_bounds(subset: str, csv_path: str | Path | None = None) -> dict[str, tuple[float, float] | None]:
    """The knobs of a named subset with their ranges (None: the server's own range)."""
    if subset == "llamatune-pg13":
        rows = load_knob_csv(csv_path or llamatune_csv_path())
        return {n: (None if r["type"] == "enum" else (r["min"], r["max"])) for n, r in rows.items()}
    if subset == "pgbench-core":
        return dict(PGBENCH_CORE)
    if subset == "tiny":
        return dict(TINY)
    raise UnknownNameError("knob subset", subset, SUBSETS)


SUBSETS = ("llamatune-pg13", "pgbench-core", "tiny")


def resolve_space(settings: dict[str, dict[str, Any]], subset: str = "pgbench-core", *,
                  csv_path: str | Path | None = None, server_version: str = "") -> KnobSpace:
    """Build a KnobSpace from a server's `pg_settings` (see `PostgresServer.settings()`) and a subset."""
    wanted = subset_bounds(subset, csv_path)
    knobs, missing = [], {}
    for name, bounds in wanted.items():
        meta = settings.get(name)
        if meta is None:
            missing[name] = RENAMED_OR_REMOVED.get(name, "not a setting of this server")
            continue
        vartype = meta["vartype"]
        if vartype == "string":
            missing[name] = "string setting: not tunable as a number or a choice"
            continue
        default = meta["boot_val"]
        if vartype == "bool":
            knobs.append(Knob(name, "bool", None, meta["context"], bool_text(default), choices=("off", "on")))
            continue
        if vartype == "enum":
            knobs.append(Knob(name, "enum", None, meta["context"], default, choices=tuple(meta["enumvals"])))
            continue
        lo, hi = meta["min"], meta["max"]
        if bounds is not None:
            lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
        if lo > hi:
            missing[name] = f"subset range {bounds} does not meet the server's range [{meta['min']}, {meta['max']}]"
            continue
        default_num = float(default) if default not in (None, "") else lo
        lo, hi = min(lo, default_num), max(hi, default_num)  # the defaults are always a valid configuration
        log = (hi - lo) > 1000 and hi / max(abs(lo), 1.0) > 1000
        knobs.append(Knob(name, vartype, meta["unit"], meta["context"],
                          int(default_num) if vartype == "integer" else default_num, lo, hi, log=log))
    return KnobSpace(subset, tuple(knobs), missing, server_version)
