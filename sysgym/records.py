"""Result records: one JSON line per run (DESIGN.md contract 5). The leaderboard reads only these.

A record names what ran (family, env, instance spec and digest, method and options, seed, limits), what came
out (the evaluator's metrics, solver statistics, the solution inline or in a side file next to the record),
and where it came from (`versions`, and `git_commit`: the commit sysgym itself was built from, never the
repository the user happens to run it in; see `build_info`).

Readers: `read_records` (strict: a torn or foreign file is an error naming its line) and `scan` (tolerant:
every readable record with its file, plus a list of the files and lines it could not use, so one bad file
never hides the others).
"""
from __future__ import annotations

import contextlib
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
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from sysgym.errors import InvalidArgumentError, TraceFormatError
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


def _package_root() -> Path:
    """The folder holding the `sysgym` package: the repository root for an editable install."""
    return Path(__file__).resolve().parents[1]


def _git(root: Path, *args: str) -> str:
    # GIT_DIR / GIT_WORK_TREE set by a user's hook or shell would point git at the user's repository.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=5, check=True,
                          env=env).stdout.strip()


def _own_checkout_commit(root: Path) -> str | None:
    """The commit of sysgym's own git checkout at `root` (editable installs), or None.

    Only a checkout whose top level IS `root` and whose pyproject names the sysgym project counts: a wheel
    installed into a virtualenv inside somebody else's repository must not report that repository's commit.
    """
    try:
        if 'name = "sysgym"' not in (root / "pyproject.toml").read_text(encoding="utf-8"):
            return None
        if Path(_git(root, "rev-parse", "--show-toplevel")).resolve() != root.resolve():
            return None
        sha = _git(root, "rev-parse", "HEAD")
        dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
    except (OSError, UnicodeDecodeError, subprocess.SubprocessError):
        return None
    return sha + ("+dirty" if dirty else "")


@functools.lru_cache(maxsize=1)
def build_info() -> dict[str, str]:
    """{'version', 'commit', 'source'}: what sysgym itself was built from.

    `source` is "build" (a wheel or sdist: `sysgym/_build_info.py`, written by setup.py at build time),
    "checkout" (an editable install: its own git repository, never the current directory's) or "unknown".
    """
    from sysgym import __version__

    try:
        from sysgym import _build_info  # type: ignore[attr-defined]

        return {"version": str(getattr(_build_info, "VERSION", __version__)),
                "commit": str(getattr(_build_info, "COMMIT", "unknown")), "source": "build"}
    except ImportError:
        pass
    commit = _own_checkout_commit(_package_root())
    return {"version": __version__, "commit": commit or "unknown", "source": "checkout" if commit else "unknown"}


def git_commit() -> str:
    """The commit sysgym was built from (`+dirty` for an editable checkout with local changes), or 'unknown'."""
    return build_info()["commit"]


def make_record(*, family: str, instance: str, method: str, method_config: dict[str, Any], seed: int,
                metrics: dict[str, Any], wall_time_s: float, solver_stats: dict[str, Any] | None = None,
                env: str | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    info = build_info()
    return {
        "record_version": RECORD_VERSION,
        "run_id": uuid.uuid4().hex,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds"),
        "family": family,
        "env": env,
        "instance": instance,
        "method": method,
        "method_config": method_config,
        "seed": int(seed),
        "metrics": jsonable(metrics),
        "solver_stats": jsonable(solver_stats or {}),
        "wall_time_s": float(wall_time_s),
        "versions": package_versions(),
        "git_commit": info["commit"],
        "sysgym_build": info,
        "host": platform.node(),
        **(extra or {}),
    }


def run_key(parts: dict[str, Any]) -> str:
    """What identifies a run for resuming a sweep (env config, method and options, seed, limits):
    same key, same work."""
    blob = json.dumps(jsonable(parts), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def record_key(record: dict[str, Any]) -> str:
    """The run key of a stored record: its `run_key`, or for records without one (hand-made, older) a key of
    what defines the run (family, env, instance, method, options, seed, limits)."""
    if record.get("run_key"):
        return str(record["run_key"])
    return "derived-" + run_key({k: record.get(k) for k in ("family", "env", "instance", "method", "method_config",
                                                              "seed", "time_limit", "time_aware")})


SOLUTION_INLINE_LIMIT = 256 * 1024  # bytes; larger solutions go to a side file


def attach_solution(record: dict[str, Any], solution: Any, results_dir: str | os.PathLike) -> None:
    """Store what `validate` needs to re-score the run: the decisions, inline or in `solutions/<run_id>.json`
    (a path relative to the folder the record file is written to: `results_dir`)."""
    payload = {"decisions": jsonable(solution.decisions), "objective": solution.objective,
               "status": solution.status, "bound": solution.bound}
    text = json.dumps(payload, sort_keys=True)
    if len(text) <= SOLUTION_INLINE_LIMIT:
        record["solution"] = payload
        return
    relative = f"solutions/{record['run_id']}.json"
    if _capture is not None:  # a remote job: the side file travels back with the record (see `capture`)
        _capture.side_files[relative] = text
    else:
        write_text_atomic(Path(results_dir) / relative, text)
    record["solution_file"] = relative


def side_file(record: dict[str, Any], record_dir: str | os.PathLike) -> Path | None:
    """The record's solution side file, resolved against the folder holding the record file."""
    name = record.get("solution_file")
    if not name:
        return None
    path = Path(name)
    return path if path.is_absolute() else Path(record_dir) / path


def load_solution(record: dict[str, Any], record_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The stored solution; a side file is looked up relative to `record_dir`, the folder of the record file."""
    if "solution" in record:
        return record["solution"]
    path = side_file(record, record_dir)
    if path is not None:
        return json.loads(path.read_text(encoding="utf-8"))
    return None


def content_hash(record: dict[str, Any], record_dir: str | os.PathLike | None = None) -> str:
    """A hash of everything a verdict depends on: the record (canonical JSON) and its solution side file's bytes
    (or the fact that it is missing). Editing either gives a new hash, so a cached verdict no longer applies."""
    h = hashlib.sha256(json.dumps(record, sort_keys=True, separators=(",", ":")).encode())
    side = side_file(record, record_dir) if record_dir is not None else None
    if side is not None:
        h.update(b"\0side\0")
        try:
            h.update(side.read_bytes())
        except OSError as exc:
            h.update(f"unreadable:{type(exc).__name__}".encode())
    return h.hexdigest()


def find_done(results_dir: str | os.PathLike, key: str) -> Path | None:
    """An intact, successful record file of run `key` under `results_dir`, if one exists (a record of a crashed
    run does not count: a resumed sweep runs it again)."""
    out = Path(results_dir)
    if not out.is_dir():
        return None
    for path in sorted(out.glob(f"*__{key}__*.jsonl")):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if text.endswith("\n"):
            try:
                record = json.loads(text)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and not record.get("failure"):
                return path
    return None


def check_writable(results_dir: str | os.PathLike) -> Path:
    """Create `results_dir` if needed and make sure a record can be written there (before any work is done)."""
    out = Path(results_dir)
    if out.exists() and not out.is_dir():
        raise InvalidArgumentError(f"results_dir {out} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".tmp-probe-{uuid.uuid4().hex}"
        with open(probe, "x", encoding="utf-8") as fh:
            fh.write("")
        probe.unlink()
    except OSError as exc:
        raise InvalidArgumentError(f"results_dir {out} is not writable ({exc.strerror or exc}); choose another "
                                   "with results_dir=PATH") from None
    return out


def write_record(record: dict[str, Any], results_dir: str | os.PathLike, name: str | None = None) -> Path:
    """Write one record to a new `*.jsonl` file under `results_dir`; never overwrites an existing file.

    The line is written to a temporary file and then hard-linked into place, so a run killed midway leaves
    no partial record (only a `.tmp-*` file, which readers ignore) and an existing file is never replaced.
    Inside `capture()` nothing is written: the record is kept for the driver, and the path returned is where
    the driver will write it.
    """
    out = Path(results_dir)
    if _capture is not None:
        _capture.records.append({"record": record, "name": name})
        return out / "(sent to the driver)"
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


@dataclass
class Captured:
    """What a job wrote while `capture()` was on: its records (with the file names asked for) and the solution
    side files (paths relative to results_dir -> text). Plain data, so it travels as a task's return value."""

    records: list[dict[str, Any]] = field(default_factory=list)
    side_files: dict[str, str] = field(default_factory=dict)

    def write(self, results_dir: str | os.PathLike) -> list[Path]:
        """Write everything under `results_dir` with the same writers as a local run (side files first, so a
        record never points at a missing file); returns the record files."""
        for relative, text in self.side_files.items():
            write_text_atomic(Path(results_dir) / relative, text)
        return [write_record(item["record"], results_dir, name=item["name"]) for item in self.records]


_capture: Captured | None = None


@contextlib.contextmanager
def capture() -> Iterator[Captured]:
    """Keep the records and side files this process would write, instead of writing them: a job running on
    another machine (a Ray task) returns them, and the driver writes them into its own results_dir."""
    global _capture
    outer, _capture = _capture, Captured()
    try:
        yield _capture
    finally:
        _capture = outer


def capturing() -> bool:
    """Whether records are being kept for a driver (the local results_dir is then not this run's)."""
    return _capture is not None


@dataclass
class Stored:
    """A record as found on disk: the record, its file and line."""

    record: dict[str, Any]
    path: Path
    line: int

    @property
    def folder(self) -> Path:
        return self.path.parent

    def hash(self) -> str:
        return content_hash(self.record, self.folder)


@dataclass
class Problem:
    """A file or line the readers could not use: `kind` is torn, not_json, not_utf8, foreign or unreadable."""

    path: Path
    line: int | None
    kind: str
    detail: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.detail}"


@dataclass
class Scan:
    records: list[Stored] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _record_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    # Hydra's own folders (.hydra/) hold configs and logs, never records.
    return sorted(p for p in root.rglob("*.jsonl") if not any(part.startswith(".") for part in
                                                                 p.relative_to(root).parts[:-1]))


def _parse_file(file: Path) -> Iterator[Stored | Problem]:
    try:
        raw = file.read_bytes()
    except OSError as exc:
        yield Problem(file, None, "unreadable", f"cannot read ({exc.strerror or exc})")
        return
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        yield Problem(file, None, "not_utf8", f"not UTF-8 text (byte {exc.start}): not a sysgym record file")
        return
    lines = text.split("\n")
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        last = lineno == len(lines)  # text after the final newline: the writer died mid-line
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if last:
                yield Problem(file, lineno, "torn", "torn last line (the writer was killed mid-write?); move the "
                                                    "file away to use the other records")
            else:
                yield Problem(file, lineno, "not_json", f"not a JSON record ({exc.msg})")
            continue
        if last:
            yield Problem(file, lineno, "torn", "torn last line (no final newline: the writer was killed "
                                                "mid-write?); move the file away to use the other records")
            continue
        if not isinstance(record, dict):
            yield Problem(file, lineno, "foreign", f"a JSON {type(record).__name__}, not a sysgym record")
            continue
        missing = [k for k in REQUIRED_FIELDS if k not in record]
        if missing:
            yield Problem(file, lineno, "foreign", f"record lacks field(s) {', '.join(missing)}")
            continue
        yield Stored(record, file, lineno)


def scan(path: str | os.PathLike) -> Scan:
    """Every record under a file or folder (recursively, `*.jsonl`), and every file or line that is not one:
    torn, not JSON, not UTF-8 or foreign files are listed in `problems` instead of stopping the reader."""
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"no results at {root}")
    out = Scan()
    for file in _record_files(root):
        for item in _parse_file(file):
            (out.records if isinstance(item, Stored) else out.problems).append(item)
    return out


def read_records(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Every record under a file or directory (recursively, `*.jsonl`); the first torn, malformed or foreign
    file raises `TraceFormatError` naming its file and line (`scan` reports them and goes on)."""
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"no results at {root}")
    for file in _record_files(root):
        for item in _parse_file(file):
            if isinstance(item, Problem):
                raise TraceFormatError(str(item))
            yield item.record


def jsonable(value: Any) -> Any:
    """numpy scalars/arrays and non-finite floats into plain JSON (NaN/inf become None): what a record stores."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


_jsonable = jsonable  # the old private name
