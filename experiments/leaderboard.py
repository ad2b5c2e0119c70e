"""The comparison table: reads only result records, counts only validated ones, ranks methods per env.

Per results folder (a sweep writes one; folders are ranked separately unless `merge`), per (family, env) and
method: mean and interquartile mean (IQM) of the family objective with stratified-bootstrap 95 % confidence
intervals across seeds and instances (rliable's estimators, Agarwal et al., NeurIPS'21), the time-aware
objective where the family has one, the gap to the best proven bound on the same instances (exact solvers'
bounds), and wall time. Methods of kind "bound" (a clairvoyant optimum of an online problem, ...) are listed
as bounds under the table, never ranked. Per family, an aggregate across its envs: each run's objective
normalised per instance (1 = the best any ranked method reached on that instance, 0 = the worst), then mean
and IQM with stratified-bootstrap CIs over instances (rliable).

What is counted is said: records whose current content (record and solution side file) was validated, one
per run key (a second record of the same config is a duplicate, listed and not counted); files that are not
records (torn, foreign) are listed and skipped, never fatal.
"""
from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from sysgym.errors import InvalidSpecError, UnknownNameError
from sysgym.fileio import writable_dir, write_text_atomic
from sysgym.plotting import save_figure
from sysgym.records import Stored, record_key, scan
from sysgym.registry import get_family, resolve_family_alias, solver_class
from sysgym.specs import parse

BOOTSTRAP_REPS = 2000


def _finite(xs: Iterable[Any]) -> list[float]:
    return [float(x) for x in xs if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)]


def _mean(xs: Iterable[Any]) -> float:
    xs = _finite(xs)
    return float(np.mean(xs)) if xs else math.nan


def _std(xs: Iterable[Any]) -> float:
    xs = _finite(xs)
    return float(np.std(xs)) if len(xs) > 1 else 0.0


def instance_group(spec: str) -> str:
    """The instance spec without its seed: runs on the same preset are one group."""
    return re.sub(r"(\?|&)seed=\d+", r"\1", spec).replace("?&", "?").rstrip("?&")


def method_kind(record: dict[str, Any]) -> str:
    """The kind of the record's method (`sysgym.solver.KINDS`): stored in the record, else the registry's."""
    if record.get("method_kind"):
        return str(record["method_kind"])
    try:
        return solver_class(record["method"]).kind
    except UnknownNameError:
        return "unknown"


def interval_estimates(scores: dict[str, list[list[float]]], seed: int = 0) -> dict[str, dict[str, float]]:
    """Mean and IQM with stratified-bootstrap 95 % CIs (rliable). `scores[method]` is a list of strata, each
    a list of runs; strata of unequal size are padded by cycling so rliable gets a (runs x strata) matrix."""
    from rliable import library as rly
    from rliable import metrics

    matrices = {}
    for method, strata in scores.items():
        strata = [s for s in strata if s]
        if not strata:
            continue
        width = max(len(s) for s in strata)
        # rliable wants (runs x tasks); instances are the tasks, seeds the runs. Uneven run counts are
        # filled deterministically by cycling a stratum's runs (no new information, no bias in the mean).
        cols = [[s[i % len(s)] for i in range(width)] for s in strata]
        matrices[method] = np.array(cols, float).T
    if not matrices:
        return {}
    agg = lambda x: np.array([metrics.aggregate_mean(x), metrics.aggregate_iqm(x)])  # noqa: E731
    np.random.seed(seed)  # rliable's bootstrap draws from NumPy's global generator
    point, ci = rly.get_interval_estimates(matrices, agg, reps=BOOTSTRAP_REPS)
    return {m: {"mean": float(point[m][0]), "iqm": float(point[m][1]), "mean_lo": float(ci[m][0, 0]),
                "mean_hi": float(ci[m][1, 0]), "iqm_lo": float(ci[m][0, 1]), "iqm_hi": float(ci[m][1, 1])}
            for m in matrices}


def _family_of(family_name: str, instance: str) -> str:
    """A record's family; an old name that became an alias (`knob_tuning`) resolves by the instance's preset."""
    try:
        preset = parse(instance).preset
    except InvalidSpecError:
        preset = None
    return resolve_family_alias(family_name, preset)


def _objective_of(family_name: str, instance: str) -> tuple[str, str, str | None]:
    try:
        fam = get_family(_family_of(family_name, instance))
        return fam.objective, fam.sense, fam.timed_objective
    except UnknownNameError:
        return "objective", "min", None


def summarise(records: Iterable[dict[str, Any]], *, bootstrap: bool = True, group: str = ".") -> list[dict[str, Any]]:
    """One row per (family, env, method); methods of kind "bound" get `kind == "bound"` and no rank."""
    groups: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for rec in records:
        env = rec.get("env") or instance_group(rec["instance"])
        groups[(rec["family"], env, rec["method"])].append(rec)
    best_bound: dict[tuple[str, str], float] = {}
    rows = []
    for (family_name, env, method), recs in groups.items():
        key, sense, timed_key = _objective_of(family_name, recs[0]["instance"])
        for r in recs:
            bound = (r.get("solver_stats") or {}).get("bound")
            if isinstance(bound, (int, float)) and math.isfinite(bound):
                k = (family_name, r["instance"])
                best = best_bound.get(k)
                best_bound[k] = bound if best is None else (max(best, bound) if sense == "min" else min(best, bound))
        statuses: dict[str, int] = defaultdict(int)
        for r in recs:
            statuses[(r.get("solver_stats") or {}).get("status", "-")] += 1
        suite = recs[0].get("suite") if isinstance(recs[0].get("suite"), dict) else {}
        rows.append({
            "group": group, "family": family_name, "env": env, "method": method, "kind": method_kind(recs[0]),
            "tier": suite.get("tier"),
            "runs": len(recs), "seeds": sorted({r["seed"] for r in recs}),
            "instances": sorted({r["instance"] for r in recs}),
            "objective_name": key, "sense": sense,
            "objective": _mean(r["metrics"].get(key) for r in recs),
            "objective_std": _std(r["metrics"].get(key) for r in recs),
            "objective_timed": _mean(r["metrics"].get(timed_key) for r in recs) if timed_key else math.nan,
            "objective_before": _mean(r["metrics"].get(key + "_before") for r in recs),
            "bound": _mean((r.get("solver_stats") or {}).get("bound") for r in recs),
            "wall_time_s": _mean(r["wall_time_s"] for r in recs),
            "status": dict(statuses), "_records": recs,
        })
    for row in rows:
        key, recs = row["objective_name"], row.pop("_records")
        row["scored_runs"] = len(_finite(r["metrics"].get(key) for r in recs))
        gaps = []
        for r in recs:
            bound, value = best_bound.get((row["family"], r["instance"])), r["metrics"].get(key)
            if bound is not None and isinstance(value, (int, float)):
                gaps.append(abs(value - bound) / max(abs(value), 1e-9))
        row["gap_to_best_bound"] = _mean(gaps)
        # Seeds usually draw different instances (instance_seed follows seed), so the runs of one env block
        # are one stratum and the bootstrap resamples (instance, seed) pairs; where several seeds share an
        # instance, instances are the strata.
        by_instance: dict[str, list[float]] = defaultdict(list)
        for r in recs:
            value = r["metrics"].get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                by_instance[r["instance"]].append(float(value))
        if by_instance and all(len(v) == 1 for v in by_instance.values()):
            by_instance = {"all": [v[0] for v in by_instance.values()]}
        row["_strata"] = by_instance
    for (family_name, env) in {(r["family"], r["env"]) for r in rows}:
        block = [r for r in rows if r["family"] == family_name and r["env"] == env and r["kind"] != "bound"]
        if not block:
            continue
        if bootstrap:
            scored = {r["method"]: list(r["_strata"].values()) for r in block if r["_strata"]}
            if scored:
                for method, est in interval_estimates(scored).items():
                    next(r for r in block if r["method"] == method).update(est)
        sign = 1 if block[0]["sense"] == "min" else -1
        for fld, rank in (("objective", "rank"), ("objective_timed", "rank_timed")):
            # Ties (common: several methods reach the optimum) go to the faster method.
            # A method that found no solution on some runs ranks after those that solved every run (its mean
            # covers only the runs it solved).
            ranked = sorted((r for r in block if math.isfinite(r[fld])),
                            key=lambda r: (r["scored_runs"] < r["runs"], sign * r[fld], r["wall_time_s"]))
            for i, r in enumerate(ranked, 1):
                r[rank] = i
    for r in rows:
        r.pop("_strata", None)
    tiers = {"tiny": 0, "standard": 1, "large": 2}  # a benchmark suite's envs in tier order
    env_order = {(r["family"], r["env"]): tiers.get(r["tier"], 3) for r in rows}
    rows.sort(key=lambda r: (r["family"], env_order[(r["family"], r["env"])], r["env"], r["kind"] == "bound",
                             r.get("rank", 1e9), r["method"]))
    return rows


def aggregate(records: Iterable[dict[str, Any]], *, group: str = ".") -> list[dict[str, Any]]:
    """Per family with two or more envs: each ranked method's normalised score across them (see module doc)."""
    by_family: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        if method_kind(r) != "bound":
            by_family[r["family"]].append(r)
    rows = []
    for family_name, recs in sorted(by_family.items()):
        key, sense, _ = _objective_of(family_name, recs[0]["instance"])
        values: dict[tuple[str, str], dict[str, list[float | None]]] = defaultdict(lambda: defaultdict(list))
        envs: dict[str, set[str]] = defaultdict(set)
        for r in recs:
            v = r["metrics"].get(key)
            env = r.get("env") or instance_group(r["instance"])
            finite = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            values[(env, r["instance"])][r["method"]].append(float(v) if finite else None)
            envs[r["method"]].add(env)
        if len({env for env, _ in values}) < 2:
            continue  # one env: its own table says it all
        strata: dict[str, list[list[float]]] = defaultdict(list)
        for per in values.values():
            means = [float(np.mean(f)) for f in ([x for x in v if x is not None] for v in per.values()) if f]
            if not means:
                continue  # no method solved this instance: nothing to normalise against
            best, worst = (min(means), max(means)) if sense == "min" else (max(means), min(means))
            for m, vals in per.items():
                # a run without a solution scores 0, as the worst method on that instance does
                strata[m].append([0.0 if v is None else 1.0 if best == worst else (worst - v) / (worst - best)
                                  for v in vals])
        methods = sorted(strata)
        if not methods:
            continue
        # One run per instance (the usual suite): resample instances, as the per-env tables do; with several
        # seeds per instance, instances are the strata (stratified bootstrap).
        boot = {m: ([[x[0] for x in st]] if all(len(x) == 1 for x in st) else st) for m, st in strata.items()}
        est = interval_estimates(boot)
        wall = {m: _mean(r["wall_time_s"] for r in recs if r["method"] == m) for m in methods}
        for m in methods:
            rows.append({"group": group, "family": family_name, "method": m, "instances": len(strata[m]),
                         "envs": sorted(envs[m]), "runs": sum(len(s) for s in strata[m]), "wall_time_s": wall[m],
                         **est.get(m, {})})
        fam_rows = [r for r in rows if r["family"] == family_name and "iqm" in r]
        # Ties go to the faster method, as in the per-env tables.
        order = sorted(fam_rows, key=lambda r: (-r["iqm"], -r["mean"], r["wall_time_s"], r["method"]))
        for i, r in enumerate(order, 1):
            r["rank"] = i
        coverage = {r["instances"] for r in rows if r["family"] == family_name}
        for r in rows:
            if r["family"] == family_name:
                r["same_instances"] = len(coverage) == 1
    rows.sort(key=lambda r: (r["family"], r.get("rank", 1e9)))
    return rows


def make_console() -> Console:
    """Rich's 80 columns are too narrow for the table when output is not a terminal (CI logs, pipes)."""
    return Console(width=None if Console().is_terminal else 200)


def _num(x: float) -> str:
    return "0" if abs(x) < 1e-12 else f"{x:.4g}"  # bootstrap round-off (2e-15) is zero


def _ci(r: dict, key: str) -> str:
    if f"{key}_lo" not in r:
        return "-"
    lo, hi = r[key + "_lo"], r[key + "_hi"]
    if abs(hi - lo) <= 1e-12 * max(1.0, abs(r[key])):  # one run, or all equal: no interval to show
        return _num(r[key])
    return f"{_num(r[key])} [{_num(lo)},{_num(hi)}]"


COLUMNS = ("rank", "method", "runs", "mean [95% CI]", "IQM [95% CI]", "time-aware", "rank (time-aware)",
           "gap to best bound", "wall s", "status")
AGG_COLUMNS = ("rank", "method", "envs", "instances", "runs", "normalised mean [95% CI]", "normalised IQM [95% CI]")


def _columns(block: list[dict]) -> list[str]:
    """The columns worth showing for a block: no time-aware or gap columns where nothing has them."""
    cols = list(COLUMNS)
    if not any(math.isfinite(r["objective_timed"]) for r in block):
        cols.remove("time-aware")
        cols.remove("rank (time-aware)")
    if not any(math.isfinite(r["gap_to_best_bound"]) for r in block):
        cols.remove("gap to best bound")
    return cols


def _cells(r: dict, cols: list[str] | tuple[str, ...] = COLUMNS) -> list[str]:
    values = {
        "rank": str(r.get("rank", "-")), "method": r["method"],
        "runs": str(r["runs"]) if r.get("scored_runs", r["runs"]) == r["runs"] else
        f"{r['runs']} ({r['runs'] - r['scored_runs']} without a solution)",
        "mean [95% CI]": _ci(r, "mean") if "mean_lo" in r else
        ("-" if math.isnan(r["objective"]) else f"{r['objective']:.4g}"),
        "IQM [95% CI]": _ci(r, "iqm"),
        "time-aware": "-" if math.isnan(r["objective_timed"]) else f"{r['objective_timed']:.4g}",
        "rank (time-aware)": str(r.get("rank_timed", "-")),
        "gap to best bound": "-" if math.isnan(r["gap_to_best_bound"]) else f"{r['gap_to_best_bound']:.3f}",
        "wall s": f"{r['wall_time_s']:.3f}",
        "status": ", ".join(f"{k}:{v}" for k, v in sorted(r["status"].items())),
    }
    return [values[c] for c in cols]


def _agg_cells(r: dict) -> list[str]:
    return [str(r.get("rank", "-")), r["method"], ", ".join(r["envs"]), str(r["instances"]), str(r["runs"]),
            _ci(r, "mean"), _ci(r, "iqm")]


def _bound_line(r: dict) -> str:
    bound = "-" if math.isnan(r["bound"]) else f"{r['bound']:.4g}"
    value = "-" if math.isnan(r["objective"]) else f"{r['objective']:.4g}"
    return (f"{r['method']} ({r['runs']} runs): mean bound {bound}, mean {r['objective_name']} of its decisions "
            f"{value} (a bound, not ranked)")


def _blocks(rows):
    for key in dict.fromkeys((r.get("group", "."), r["family"], r["env"]) for r in rows):
        yield key[1], key[2], [r for r in rows if (r.get("group", "."), r["family"], r["env"]) == key]


def _title(family_name: str, env: str, block: list[dict]) -> str:
    key = block[0]["objective_name"]
    arrow = "lower is better" if block[0]["sense"] == "min" else "higher is better"
    before = _mean(r["objective_before"] for r in block)
    return f"{family_name} / {env}: {key} ({arrow}" + (f"; before any action {before:.4f})" if math.isfinite(before)
                                                        else ")")


def _agg_title(family_name: str, block: list[dict]) -> str:
    return f"{family_name}: aggregate over its envs (normalised per instance: 1 = best method, 0 = worst)"


def render(rows: list[dict[str, Any]], console: Console | None = None,
           aggregates: list[dict[str, Any]] | None = None) -> None:
    console = console or make_console()
    families_done: set[tuple[str, str]] = set()
    blocks = list(_blocks(rows))
    for i, (family_name, env, block) in enumerate(blocks):
        ranked = [r for r in block if r["kind"] != "bound"]
        if ranked:
            table = Table(title=_title(family_name, env, block))
            cols = _columns(ranked)
            for col in cols:
                table.add_column(col, justify="left" if col in ("method", "status") else "right",
                                 no_wrap=col != "status")
            for r in ranked:
                table.add_row(*_cells(r, cols))
            console.print(table)
        else:
            console.print(f"[bold]{_title(family_name, env, block)}[/]")
        for r in block:
            if r["kind"] == "bound":
                console.print(f"  bound: {_bound_line(r)}", highlight=False)
        if len({tuple(r["instances"]) for r in ranked}) > 1:
            console.print("[yellow]warning:[/] methods in this table ran on different instances/seeds; "
                          "their means are not directly comparable")
        group = block[0].get("group", ".")
        last_of_family = i + 1 == len(blocks) or blocks[i + 1][0] != family_name \
            or blocks[i + 1][2][0].get("group", ".") != group
        if aggregates and last_of_family and (group, family_name) not in families_done:
            families_done.add((group, family_name))
            agg = [a for a in aggregates if a["family"] == family_name and a.get("group", ".") == group]
            if agg:
                table = Table(title=_agg_title(family_name, agg))
                for col in AGG_COLUMNS:
                    table.add_column(col, justify="left" if col in ("method", "envs") else "right")
                for a in agg:
                    table.add_row(*_agg_cells(a))
                console.print(table)
                if not agg[0].get("same_instances", True):
                    console.print("[yellow]warning:[/] methods ran on different numbers of instances (see "
                                  "'instances'); each aggregate covers its own", highlight=False)


def to_markdown(rows: list[dict[str, Any]], aggregates: list[dict[str, Any]] | None = None,
                header: str = "") -> str:
    out = [header] if header else []
    groups = list(dict.fromkeys(r.get("group", ".") for r in rows))
    for group in groups:
        if len(groups) > 1 or group != ".":
            out.append(f"## results folder `{group}`\n")
        mine = [r for r in rows if r.get("group", ".") == group]
        families = list(dict.fromkeys(r["family"] for r in mine))
        for family_name in families:
            for _, env, block in _blocks([r for r in mine if r["family"] == family_name]):
                ranked = [r for r in block if r["kind"] != "bound"]
                out.append(f"### {_title(family_name, env, block)}\n")
                if ranked:
                    cols = _columns(ranked)
                    out.append("| " + " | ".join(cols) + " |")
                    out.append("|" + "---|" * len(cols))
                    out += ["| " + " | ".join(_cells(r, cols)) + " |" for r in ranked]
                bounds = [r for r in block if r["kind"] == "bound"]
                if bounds:
                    out.append("")
                    out += [f"Bound: {_bound_line(r)}" for r in bounds]
                out.append("")
            agg = [a for a in aggregates or () if a["family"] == family_name and a.get("group", ".") == group]
            if agg:
                out.append(f"### {_agg_title(family_name, agg)}\n")
                out.append("| " + " | ".join(AGG_COLUMNS) + " |")
                out.append("|" + "---|" * len(AGG_COLUMNS))
                out += ["| " + " | ".join(_agg_cells(a)) + " |" for a in agg]
                out.append("")
    return "\n".join(out)


CSV_COLUMNS = ["group", "family", "env", "tier", "method", "kind", "runs", "objective_name", "objective",
               "objective_std", "mean_lo", "mean_hi", "iqm", "iqm_lo", "iqm_hi", "objective_timed", "objective_before",
               "bound", "gap_to_best_bound", "wall_time_s", "rank", "rank_timed"]


def to_csv(rows: list[dict[str, Any]]) -> str:
    return "\n".join([",".join(CSV_COLUMNS)] + [",".join(str(r.get(c, "")) for c in CSV_COLUMNS) for r in rows]) + "\n"


def plot(rows: list[dict[str, Any]], path: str | Path, records: list[dict] | None = None) -> Path:
    """Per env: bars of each method's objective (static and time-aware) with 95 % CIs; with the records,
    a performance profile (share of runs at or better than tau)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r.get("kind") != "bound"]
    blocks = list(_blocks(rows))
    n_rows = 2 if records else 1
    fig, axes = plt.subplots(n_rows, max(len(blocks), 1), figsize=(6 * max(len(blocks), 1), 4.2 * n_rows),
                             squeeze=False)
    for col, (family_name, env, block) in enumerate(blocks):
        ax = axes[0][col]
        x = np.arange(len(block))
        err = None
        if all("mean_lo" in r for r in block):
            err = np.array([[r["objective"] - r["mean_lo"] for r in block],
                            [r["mean_hi"] - r["objective"] for r in block]])
        ax.bar(x - 0.2, [r["objective"] for r in block], 0.4, yerr=err, label="static (95% CI)", capsize=3)
        if any(math.isfinite(r["objective_timed"]) for r in block):
            ax.bar(x + 0.2, [r["objective_timed"] for r in block], 0.4, label="time-aware")
        before = _mean(r["objective_before"] for r in block)
        if math.isfinite(before):
            ax.axhline(before, color="grey", ls="--", lw=1, label="before")
        ax.set_xticks(x, [r["method"].split(".", 1)[-1] for r in block], rotation=30, ha="right")
        group = block[0].get("group", ".")
        ax.set_title(env if group == "." else f"{group}: {env}")
        ax.set_ylabel(block[0]["objective_name"])
        ax.legend(fontsize=8)
        if records:
            ax = axes[1][col]
            key, sense = block[0]["objective_name"], block[0]["sense"]
            mine = [r for r in records if r["family"] == family_name and r.get("_group", ".") == group
                    and (r.get("env") or instance_group(r["instance"])) == env]
            values = _finite(r["metrics"].get(key) for r in mine)
            if values:
                taus = np.linspace(min(values), max(values), 200)
                for row in block:
                    vals = np.array(_finite(r["metrics"].get(key) for r in mine if r["method"] == row["method"]))
                    if len(vals):
                        frac = [(vals <= t).mean() if sense == "min" else (vals >= t).mean() for t in taus]
                        ax.plot(taus, frac, label=row["method"].split(".", 1)[-1])
                ax.set_xlabel(f"{key} threshold tau")
                ax.set_ylabel("fraction of runs at least as good")
                ax.set_title(f"{env}: performance profile")
                ax.legend(fontsize=7)
    return save_figure(fig, path, dpi=110)


def _group_of(stored: Stored, root: Path, merge: bool) -> str:
    if merge:
        return "all"
    base = root if root.is_dir() else root.parent
    try:
        rel = stored.folder.relative_to(base)
    except ValueError:
        return str(stored.folder)
    return rel.as_posix() or "."


def collect(results: str | Path, *, validated_only: bool = True, merge: bool = False, out: str | Path | None = None,
            progress: bool = True) -> dict[str, Any]:
    """What the leaderboard counts, and why the rest is not: {'counted': [(group, record)], 'not_counted':
    [(stored, status, detail)], 'problems': [Problem], 'groups': [...], 'note': str}."""
    root = Path(results)
    if validated_only:
        from sysgym.experiments.validate import COUNTED, check

        report = check(root, progress=progress, out=out)
        checked, problems, note = report.checked, report.problems, report.note
    else:
        found = scan(root)
        COUNTED = ("unchecked",)  # noqa: N806
        checked = [(s, {"status": "unchecked", "detail": ""}) for s in found.records]
        problems, note = found.problems, ""
    not_counted: list[tuple[Stored, str, str]] = []
    candidates: dict[tuple[str, str], list[Stored]] = defaultdict(list)
    for stored, verdict in checked:
        if verdict["status"] not in COUNTED:
            not_counted.append((stored, verdict["status"], verdict["detail"]))
            continue
        candidates[(_group_of(stored, root, merge), record_key(stored.record))].append(stored)
    counted: list[tuple[str, dict]] = []
    for (group, key), items in candidates.items():
        items.sort(key=lambda s: (str(s.record.get("created_utc", "")), str(s.record.get("run_id", "")), str(s.path)))
        keep = items[0]
        counted.append((group, keep.record))
        for dup in items[1:]:
            same = "same run id" if dup.record.get("run_id") == keep.record.get("run_id") else "new run id"
            not_counted.append((dup, "duplicate", f"run key {key} ({same}) was already counted from {keep.path.name}"))
    groups = sorted({g for g, _ in counted})
    return {"counted": counted, "not_counted": not_counted, "problems": problems, "groups": groups, "note": note}


def leaderboard(results: str | Path, *, plot_path: str | Path | None = None, console: Console | None = None,
                validated_only: bool = True, write: bool = True, fmt: str = "table", out: str | Path | None = None,
                merge: bool = False) -> list[dict[str, Any]]:
    """Print the tables; with `write`, also `leaderboard.md` and `leaderboard.csv` in `out` (default: the results
    folder; a read-only folder is reported, not written). Returns the rows (each with its `group`)."""
    console = console or make_console()
    found = collect(results, validated_only=validated_only, merge=merge, out=out,
                    progress=fmt == "table")
    for problem in found["problems"]:
        console.print(f"[yellow]skipped[/] {problem}", highlight=False)
    for stored, status, detail in found["not_counted"]:
        r = stored.record
        console.print(f"[yellow]not counted[/] ({status}): {r['method']} on {r['instance']} seed {r['seed']}"
                      f"{': ' + detail if detail else ''} [{stored.path.name}]", highlight=False)
    if found["note"]:
        console.print(f"[yellow]note:[/] {found['note']}", highlight=False)
    if not found["counted"]:
        what = "validated records" if validated_only else "result records"
        raise FileNotFoundError(f"no {what} (*.jsonl) under {results}")
    groups = found["groups"]
    rows: list[dict[str, Any]] = []
    aggregates: list[dict[str, Any]] = []
    records_for_plot: list[dict] = []
    for group in groups:
        recs = [r for g, r in found["counted"] if g == group]
        rows += summarise(recs, group=group)
        aggregates += aggregate(recs, group=group)
        records_for_plot += [{**r, "_group": group} for r in recs]
    what = "validated records" if validated_only else "records (unvalidated: --all)"
    if len(groups) == 1:
        scope = f"{len(found['counted'])} {what}, one per run key, from results folder '{groups[0]}'"
    else:
        scope = (f"{len(found['counted'])} {what}, one per run key, from results folders "
                 f"{', '.join(repr(g) for g in groups)}, ranked separately (pass --merge to pool them)")
    if merge:
        scope = f"{len(found['counted'])} {what}, one per run key, pooled from every folder under {results} (--merge)"
    if fmt == "csv":
        console.print(to_csv(rows), markup=False, highlight=False, soft_wrap=True, end="")
    elif fmt == "markdown":
        console.print(to_markdown(rows, aggregates, header=f"{scope}\n").rstrip("\n"), markup=False,
                      highlight=False, soft_wrap=True)
    else:
        console.print(f"[bold]counted:[/] {scope}", highlight=False)
        for group in groups:
            if len(groups) > 1:
                console.print(f"[bold]results folder {group!r}[/]", highlight=False)
            render([r for r in rows if r["group"] == group], console,
                   [a for a in aggregates if a["group"] == group])
    root = Path(results) if Path(results).is_dir() else Path(results).parent
    target = Path(out) if out is not None else root
    if write:
        if writable_dir(target):
            write_text_atomic(target / "leaderboard.md", to_markdown(rows, aggregates, header=f"{scope}\n"))
            write_text_atomic(target / "leaderboard.csv", to_csv(rows))
        else:
            console.print(f"[yellow]note:[/] {target} is not writable: leaderboard.md/.csv not written "
                          "(pass --out DIR)", highlight=False)
    if plot_path:
        plot(rows, plot_path, records_for_plot)
    return rows
