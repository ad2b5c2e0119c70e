"""`sysgym validate RESULTS`: re-score every record's stored solution with its family's evaluator.

CompilerGym's idea: a number on the leaderboard must be reproducible from what the record holds. Each
record's instance is rebuilt from its spec (and checked against its digest), its solution re-checked by the
evaluator, and every stored metric compared. Verdicts are cached in `RESULTS/validation.json` by run id.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from sysgym.errors import GeneratorVersionError, InfeasibleSolutionError
from sysgym.fileio import write_json_atomic
from sysgym.instances import from_spec
from sysgym.records import load_solution, read_records
from sysgym.registry import get_family, resolve_family_alias
from sysgym.solution import Solution
from sysgym.specs import parse

CACHE = "validation.json"
COUNTED = ("ok", "measured")  # verdicts the leaderboard counts
REL_TOL = 1e-6


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float)) or \
            not isinstance(b, (int, float)):
        return a == b
    if a is None or b is None:
        return a is b
    if not (math.isfinite(a) and math.isfinite(b)):
        return a == b
    return abs(a - b) <= REL_TOL * max(1.0, abs(a), abs(b))


def validate_record(record: dict[str, Any], results_dir: str | os.PathLike) -> dict[str, Any]:
    """{'status': 'ok'|'measured'|'mismatch'|'infeasible'|'unverifiable', 'detail': str}."""
    try:
        spec = parse(record["instance"])
        family = get_family(resolve_family_alias(record["family"], spec.preset))
        if spec.preset in family.nondeterministic_presets:
            # A real measurement (e.g. pgbench on a live PostgreSQL): re-scoring would re-measure, and two
            # measurements agree only up to noise, so such records are accepted as measured, not re-run.
            return {"status": "measured", "detail": "real measurement; not re-run"}
        payload = load_solution(record, results_dir)
        if record["metrics"].get("no_solution"):
            why = record["metrics"]["no_solution"]
            return {"status": "no_solution", "detail": f"the method found no solution ({why})"}
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
    wrong = [k for k, v in record["metrics"].items() if k in metrics and not _close(v, _plain(metrics[k]))]
    if wrong:
        shown = ", ".join(f"{k}: stored {record['metrics'][k]!r}, evaluator {_plain(metrics[k])!r}" for k in wrong[:5])
        return {"status": "mismatch", "detail": shown}
    return {"status": "ok", "detail": ""}


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def validate(results: str | os.PathLike, *, use_cache: bool = True, progress: bool = True) -> dict[str, dict]:
    """Verdicts for every record under `results` (a directory), keyed by run id."""
    root = Path(results)
    records = list(read_records(root))
    cache_path = root / CACHE if root.is_dir() else root.parent / CACHE
    cache = json.loads(cache_path.read_text()) if use_cache and cache_path.exists() else {}
    verdicts: dict[str, dict] = {}
    todo = [r for r in records if r["run_id"] not in cache]
    iterator = todo
    if progress and len(todo) > 3:
        from rich.progress import track

        iterator = track(todo, description="validating")
    for rec in iterator:
        cache[rec["run_id"]] = validate_record(rec, cache_path.parent)
    for rec in records:
        verdicts[rec["run_id"]] = cache[rec["run_id"]]
    write_json_atomic(cache_path, cache, indent=1, sort_keys=True)
    return verdicts
