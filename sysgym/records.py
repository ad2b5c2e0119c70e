"""Result records: one JSON line per run (DESIGN.md contract 5). The leaderboard reads only these."""
from __future__ import annotations

import datetime as _dt
import functools
import hashlib
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
from sysgym.fileio import write_text_atomic

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


def run_key(parts: dict[str, Any]) -> str:
    """What identifies a run for resuming a sweep (env config, method and options, seed, limits):
    same key, same work."""
    blob = json.dumps(_jsonable(parts), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


SOLUTION_INLINE_LIMIT = 256 * 1024  # bytes; larger solutions go to a side file


def attach_solution(record: dict[str, Any], solution: Any, results_dir: str | os.PathLike) -> None:
    """Store what `validate` needs to re-score the run: the decisions, inline or in `solutions/<run_id>.json`."""
    payload = {"decisions": _jsonable(solution.decisions), "objective": solution.objective,
               "status": solution.status, "bound": solution.bound}
    text = json.dumps(payload, sort_keys=True)
    if len(text) <= SOLUTION_INLINE_LIMIT:
        record["solution"] = payload
        return
    side = write_text_atomic(Path(results_dir) / "solutions" / f"{record['run_id']}.json", text)
    record["solution_file"] = str(side.relative_to(results_dir))


def load_solution(record: dict[str, Any], results_dir: str | os.PathLike) -> dict[str, Any] | None:
    if "solution" in record:
        return record["solution"]
    if "solution_file" in record:
        return json.loads((Path(results_dir) / record["solution_file"]).read_text())
    return None


def find_done(results_dir: str | os.PathLike, key: str) -> Path | None:
    """An intact record file of run `key` under `results_dir`, if one exists."""
    out = Path(results_dir)
    if not out.is_dir():
        return None
    for path in out.glob(f"*__{key}__*.jsonl"):
        text = path.read_text(encoding="utf-8")
        if text.endswith("\n"):
            try:
                json.loads(text)
                return path
            except json.JSONDecodeError:
                continue
    return None


def write_record(record: dict[str, Any], results_dir: str | os.PathLike, name: str | None = None) -> Path:
    """Write one record to a new `*.jsonl` file under `results_dir`; never overwrites an existing file.

    The line is written to a temporary file and then hard-linked into place, so a run killed midway leaves
    no partial record (only a `.tmp-*` file, which readers ignore) and an existing file is never replaced.
    """
    out = Path(results_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = name or f"{record['family']}__{record['method']}__seed{record['seed']}"
    stem = "".join(c if c.isalnum() or c in "._-" else "_" for c in stem)
    key = record.get("run_key", "nokey")
    path = out / f"{stem}__{key}__{record['run_id'][:12]}.jsonl"
    tmp = out / f".tmp-{record['run_id']}"
    with open(tmp, "x", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, path)  # fails if `path` exists: results already written are never clobbered
    finally:
        tmp.unlink()
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
                if not line.endswith("\n"):
                    raise TraceFormatError(f"{file}:{lineno}: torn last line (the writer was killed mid-write?); "
                                           "move the file away to use the other records")
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
