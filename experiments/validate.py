"""`sysgym validate RESULTS`: re-score every record's stored solution with its family's evaluator.

CompilerGym's idea: a number on the leaderboard must be reproducible from what the record holds. Each
record's instance is rebuilt from its spec (and checked against its digest), its solution re-checked by the
evaluator, and the stored metrics compared with the evaluator's: a changed value, a metric the evaluator
produces that the record lacks (its objective above all) or one the evaluator does not produce is a
`mismatch`.

Verdicts are cached in `validation.json` keyed by a hash of each record's content and of its solution side
file (`sysgym.records.content_hash`) and by the sysgym build that judged them: a record edited after it was
validated has a new hash and is validated again. The cache lives beside the records, or in `out` (a
read-only results folder is validated without writing to it).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sysgym.errors import GeneratorVersionError, InfeasibleSolutionError
from sysgym.fileio import writable_dir, write_json_atomic
from sysgym.instances import from_spec
from sysgym.records import Problem, Stored, build_info, jsonable, load_solution, scan
from sysgym.registry import get_family, resolve_family_alias
from sysgym.solution import Solution
from sysgym.specs import parse

CACHE = "validation.json"
CACHE_FORMAT = 2
# Verdicts the leaderboard counts: re-scored and equal, a real measurement, or a checked record of a method that
# found no solution (it ranks as the worst on that instance; hiding it would flatter the method).
COUNTED = ("ok", "measured", "no_solution")
REL_TOL = 1e-6
IGNORED_METRICS = ("no_solution",)  # written by the runner, not by an evaluator
# Records written under a family name that was later split (knob_tuning -> pg_knobs + serving_knobs) carry
# metrics the old evaluator wrote and the new one does not: the old `objective` copy of the family objective
# (re-checked against it below) and `objective_runs` (one entry per repetition of a deterministic simulation).
LEGACY_METRICS = {"knob_tuning": ("objective", "objective_runs")}


def _close(a: Any, b: Any) -> bool:
    """Equal, numbers within REL_TOL, recursively through lists and dicts (JSON data on both sides)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float)) or \
            not isinstance(b, (int, float)):
        return a == b
    if not (math.isfinite(a) and math.isfinite(b)):
        return a == b
    return abs(a - b) <= REL_TOL * max(1.0, abs(a), abs(b))


def compare_metrics(stored: dict[str, Any], produced: dict[str, Any], objective: str) -> str:
    """'' when the stored metrics are exactly what the evaluator produced, else what differs."""
    produced = jsonable(produced)
    if not isinstance(stored, dict):
        return f"metrics is a {type(stored).__name__}, not an object"
    out = []
    missing = [k for k in produced if k not in stored]
    if objective in missing:
        out.append(f"the objective {objective!r} is missing")
        missing.remove(objective)
    if missing:
        out.append(f"missing metric(s) the evaluator produces: {', '.join(missing[:8])}")
    extra = [k for k in stored if k not in produced and k not in IGNORED_METRICS]
    if extra:
        out.append(f"metric(s) the evaluator does not produce: {', '.join(extra[:8])}")
    wrong = [k for k in stored if k in produced and not _close(stored[k], produced[k])]
    if wrong:
        out.append(", ".join(f"{k}: stored {stored[k]!r}, evaluator {produced[k]!r}" for k in wrong[:5]))
    return "; ".join(out)


def validate_record(record: dict[str, Any], record_dir: str | os.PathLike) -> dict[str, Any]:
    """{'status': 'ok'|'measured'|'mismatch'|'infeasible'|'unverifiable'|'no_solution'|'failed'|
    'generator_version', 'detail': str}. `record_dir` is the folder of the record file (side files are
    relative to it)."""
    try:
        if record.get("failure"):
            failure = record["failure"]
            detail = failure.get("detail") if isinstance(failure, dict) else str(failure)
            return {"status": "failed", "detail": f"the run failed: {detail}"}
        spec = parse(record["instance"])
        family = get_family(resolve_family_alias(record["family"], spec.preset))
        if spec.preset in family.nondeterministic_presets:
            # A real measurement (e.g. pgbench on a live PostgreSQL): re-scoring would re-measure, and two
            # measurements agree only up to noise, so such records are accepted as measured, not re-run.
            return {"status": "measured", "detail": "real measurement; not re-run"}
        if isinstance(record["metrics"], dict) and record["metrics"].get("no_solution"):
            why = record["metrics"]["no_solution"]
            return {"status": "no_solution", "detail": f"the method found no solution ({why})"}
        try:
            payload = load_solution(record, record_dir)
        except FileNotFoundError:
            return {"status": "unverifiable", "detail": f"solution file {record.get('solution_file')} is missing "
                                                        f"(looked in {record_dir})"}
        if payload is None:
            return {"status": "unverifiable", "detail": "the record stores no solution"}
        try:
            instance = from_spec(record["instance"])
        except GeneratorVersionError as exc:
            return {"status": "generator_version", "detail": f"generator version changed: {record['instance']} "
                                                             f"was made by a generator this sysgym lacks ({exc})"}
        if record.get("instance_digest") and instance.digest() != record["instance_digest"]:
            return {"status": "unverifiable",
                    "detail": f"instance {record['instance']} no longer rebuilds to digest {record['instance_digest']}"
                              f" (got {instance.digest()}): generator v{spec.version} of {family.name} changed "
                              "without a new version"}
        solution = Solution(decisions=payload["decisions"], objective=payload["objective"],
                            status=payload.get("status", "feasible"), wall_time_s=record["wall_time_s"],
                            bound=payload.get("bound"))
        kwargs = {"wall_time_s": record["wall_time_s"]} if record.get("time_aware") else {}
        metrics = family.evaluate(instance, solution, **kwargs)
    except InfeasibleSolutionError as exc:
        return {"status": "infeasible", "detail": str(exc)}
    except Exception as exc:  # noqa: BLE001 - any failure to re-score is a verdict, not a crash
        return {"status": "unverifiable", "detail": f"{type(exc).__name__}: {exc}"}
    stored = record["metrics"]
    legacy = LEGACY_METRICS.get(record["family"], ()) if record["family"] != family.name else ()
    if legacy and isinstance(stored, dict):
        if "objective" in legacy and "objective" in stored and not _close(stored["objective"],
                                                                         metrics.get(family.objective)):
            return {"status": "mismatch", "detail": f"objective: stored {stored['objective']!r}, evaluator "
                                                    f"{metrics.get(family.objective)!r}"}
        stored = {k: v for k, v in stored.items() if k not in legacy}
    detail = compare_metrics(stored, metrics, family.objective)
    if detail:
        return {"status": "mismatch", "detail": detail}
    return {"status": "ok", "detail": ""}


def validator_id() -> str:
    """Who judged: verdicts of another sysgym build (another evaluator) are not reused."""
    info = build_info()
    return f"sysgym {info['version']} {info['commit']}"


@dataclass
class Report:
    """The verdict of every record found, the files that are not records, and where the verdicts went."""

    checked: list[tuple[Stored, dict[str, Any]]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    cache_path: Path | None = None  # where verdicts were written; None when they could not be
    note: str = ""  # why they were not written
    reused: int = 0  # verdicts taken from the cache

    def by_run_id(self) -> dict[str, dict[str, Any]]:
        return {s.record.get("run_id", f"{s.path}:{s.line}"): v for s, v in self.checked}

    @property
    def bad(self) -> list[tuple[Stored, dict[str, Any]]]:
        return [(s, v) for s, v in self.checked if v["status"] not in COUNTED]


def _cache_dir(root: Path, out: str | os.PathLike | None) -> Path:
    if out is not None:
        return Path(out)
    return root if root.is_dir() else root.parent


def _read_cache(path: Path) -> dict[str, dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or data.get("validator") != validator_id():
        return {}  # an older cache (keyed by run id only) or another build's verdicts: judge again
    verdicts = data.get("verdicts")
    return verdicts if isinstance(verdicts, dict) else {}


def check(results: str | os.PathLike, *, use_cache: bool = True, progress: bool = True,
          out: str | os.PathLike | None = None) -> Report:
    """Validate every record under `results` (a folder or one `*.jsonl` file); see the module doc."""
    root = Path(results)
    found = scan(root)
    cache_dir = _cache_dir(root, out)
    cache_path = cache_dir / CACHE
    cache = _read_cache(cache_path) if use_cache else {}
    report = Report(problems=found.problems)
    hashes = [s.hash() for s in found.records]
    todo = [i for i, h in enumerate(hashes) if h not in cache]
    report.reused = len(found.records) - len(todo)
    iterator: Any = todo
    if progress and len(todo) > 3:
        from rich.console import Console
        from rich.progress import track

        err = Console(stderr=True)
        if err.is_terminal:
            iterator = track(todo, description="validating", console=err)
    for i in iterator:
        stored = found.records[i]
        verdict = validate_record(stored.record, stored.folder)
        cache[hashes[i]] = {**verdict, "run_id": stored.record.get("run_id"), "file": str(stored.path)}
    for stored, h in zip(found.records, hashes):
        report.checked.append((stored, {"status": cache[h]["status"], "detail": cache[h]["detail"]}))
    if writable_dir(cache_dir):
        keep = {h: cache[h] for h in hashes}
        write_json_atomic(cache_path, {"format": CACHE_FORMAT, "validator": validator_id(), "verdicts": keep},
                          indent=1, sort_keys=True)
        report.cache_path = cache_path
    else:
        report.note = (f"{cache_dir} is not writable: verdicts were not cached (pass --out DIR to keep them "
                       "elsewhere)")
    return report


def validate(results: str | os.PathLike, *, use_cache: bool = True, progress: bool = True,
             out: str | os.PathLike | None = None) -> dict[str, dict]:
    """Verdicts for every record under `results`, keyed by run id (see `check` for the full report)."""
    return check(results, use_cache=use_cache, progress=progress, out=out).by_run_id()
