"""Result records: one JSON line per run (DESIGN.md contract 5). The leaderboard reads only these."""
from __future__ import annotations

import datetime as _dt
import functools
import json
import math
import os
import platform
import subprocess
import uuid
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from sysgym.errors import TraceFormatError

RECORD_VERSION = 1
REQUIRED_FIELDS = ("family", "instance", "method", "seed", "metrics", "wall_time_s", "versions", "git_commit")
_TRACKED_PACKAGES = ("sysgym", "numpy", "gymnasium", "stable-baselines3", "sb3-contrib", "torch", "ortools",
                     "optuna", "hydra-core")


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the sysgym checkout (with `+dirty` when it has local changes), or 'unknown'."""
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def make_record(*, family: str, instance: str, method: str, method_config: dict[str, Any], seed: int,
                metrics: dict[str, Any], wall_time_s: float, solver_stats: dict[str, Any] | None = None,
                env: str | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "record_version": RECORD_VERSION,
        "run_id": uuid.uuid4().hex,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "family": family,
        "env": env,
        "instance": instance,
        "method": method,
        "method_config": method_config,
        "seed": int(seed),
        "metrics": _jsonable(metrics),
        "solver_stats": _jsonable(solver_stats or {}),
        "wall_time_s": float(wall_time_s),
        "versions": package_versions(),
        "git_commit": git_commit(),
        "host": platform.node(),
        **(extra or {}),
    }


def write_record(record: dict[str, Any], results_dir: str | os.PathLike, name: str | None = None) -> Path:
    """Write one record to a new `*.jsonl` file under `results_dir`; never overwrites an existing file."""
    out = Path(results_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = name or f"{record['family']}__{record['method']}__seed{record['seed']}"
    stem = "".join(c if c.isalnum() or c in "._-" else "_" for c in stem)
    path = out / f"{stem}__{record['run_id'][:12]}.jsonl"
    # "x" refuses to open an existing file: results already written can never be clobbered.
    with open(path, "x", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")
    return path


def read_records(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Every record under a file or directory (recursively, `*.jsonl`), validated."""
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"no results at {root}")
    files = [root] if root.is_file() else sorted(root.rglob("*.jsonl"))
    for file in files:
        with open(file, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise TraceFormatError(f"{file}:{lineno}: not a JSON record ({exc.msg})") from None
                missing = [k for k in REQUIRED_FIELDS if k not in record]
                if missing:
                    raise TraceFormatError(f"{file}:{lineno}: record lacks field(s) {', '.join(missing)}")
                yield record


def _jsonable(value: Any) -> Any:
    """numpy scalars/arrays and non-finite floats into plain JSON (NaN/inf become None)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
