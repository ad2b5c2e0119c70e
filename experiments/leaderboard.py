"""The comparison table: reads only result records, counts only validated ones, ranks methods per env.

Per (family, env) and method: mean and interquartile mean (IQM) of the family objective with
stratified-bootstrap 95 % confidence intervals across seeds and instances (rliable's estimators, Agarwal
et al., NeurIPS'21), the time-aware objective where the family has one, the gap to the best proven bound
on the same instances (exact solvers' bounds), and wall time.
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
from sysgym.records import read_records
from sysgym.registry import get_family, resolve_family_alias
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


def interval_estimates(scores: dict[str, list[list[float]]], seed: int = 0) -> dict[str, dict[str, float]]:
    """Mean and IQM with stratified-bootstrap 95 % CIs (rliable). `scores[method]` is a list of strata, each
    a list of runs; strata of unequal size are padded by cycling so rliable gets a (runs x strata) matrix."""
    from rliable import library as rly
    from rliable import metrics

    matrices = {}
    for method, strata in scores.items():
        strata = [s for s in strata if s]
        width = max(len(s) for s in strata)
        # rliable wants (runs x tasks); instances are the tasks, seeds the runs. Uneven run counts are
        # filled deterministically by cycling a stratum's runs (no new information, no bias in the mean).
        cols = [[s[i % len(s)] for i in range(width)] for s in strata]
        matrices[method] = np.array(cols, float).T
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


def summarise(records: Iterable[dict[str, Any]], *, bootstrap: bool = True) -> list[dict[str, Any]]:
    """One row per (family, env, method)."""
    groups: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for rec in records:
        env = rec.get("env") or instance_group(rec["instance"])
        groups[(rec["family"], env, rec["method"])].append(rec)
    best_bound: dict[tuple[str, str], float] = {}
    senses: dict[str, str] = {}
    rows = []
    for (family_name, env, method), recs in groups.items():
        try:
            fam = get_family(_family_of(family_name, recs[0]["instance"]))
            key, sense, timed_key = fam.objective, fam.sense, fam.timed_objective
        except UnknownNameError:
            key, sense, timed_key = "objective", "min", None
        senses[family_name] = sense
        for r in recs:
            bound = (r.get("solver_stats") or {}).get("bound")
            if isinstance(bound, (int, float)) and math.isfinite(bound):
                k = (family_name, r["instance"])
                best = best_bound.get(k)
                best_bound[k] = bound if best is None else (max(best, bound) if sense == "min" else min(best, bound))
        statuses: dict[str, int] = defaultdict(int)
        for r in recs:
            statuses[(r.get("solver_stats") or {}).get("status", "-")] += 1
        rows.append({
            "family": family_name, "env": env, "method": method, "runs": len(recs),
            "seeds": sorted({r["seed"] for r in recs}), "instances": sorted({r["instance"] for r in recs}),
            "objective_name": key, "sense": sense,
            "objective": _mean(r["metrics"].get(key) for r in recs),
            "objective_std": _std(r["metrics"].get(key) for r in recs),
            "objective_timed": _mean(r["metrics"].get(timed_key) for r in recs) if timed_key else math.nan,
            "objective_before": _mean(r["metrics"].get(key + "_before") for r in recs),
            "wall_time_s": _mean(r["wall_time_s"] for r in recs),
            "status": dict(statuses), "_records": recs,
        })
    for row in rows:
        key, recs = row["objective_name"], row.pop("_records")
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
            if isinstance(value, (int, float)) and math.isfinite(value):
                by_instance[r["instance"]].append(float(value))
        if by_instance and all(len(v) == 1 for v in by_instance.values()):
            by_instance = {"all": [v[0] for v in by_instance.values()]}
        row["_strata"] = by_instance
    for (family_name, env) in {(r["family"], r["env"]) for r in rows}:
        block = [r for r in rows if r["family"] == family_name and r["env"] == env]
        if bootstrap:
            scored = {r["method"]: list(r["_strata"].values()) for r in block if r["_strata"]}
            if scored:
                for method, est in interval_estimates(scored).items():
                    next(r for r in block if r["method"] == method).update(est)
        sign = 1 if block[0]["sense"] == "min" else -1
        for field, rank in (("objective", "rank"), ("objective_timed", "rank_timed")):
            # Ties (common: several methods reach the optimum) go to the faster method.
            ranked = sorted((r for r in block if math.isfinite(r[field])),
                            key=lambda r: (sign * r[field], r["wall_time_s"]))
            for i, r in enumerate(ranked, 1):
                r[rank] = i
    for r in rows:
        r.pop("_strata", None)
    rows.sort(key=lambda r: (r["family"], r["env"], r.get("rank", 1e9)))
    return rows


def make_console() -> Console:
    """Rich's 80 columns are too narrow for the table when output is not a terminal (CI logs, pipes)."""
    return Console(width=None if Console().is_terminal else 160)


def _ci(r: dict, key: str) -> str:
    if f"{key}_lo" not in r:
        return "-"
    if r[key + "_lo"] == r[key + "_hi"]:  # one run: no interval to show
        return f"{r[key]:.4g}"
    return f"{r[key]:.4g} [{r[key + '_lo']:.4g},{r[key + '_hi']:.4g}]"


COLUMNS = ("rank", "method", "runs", "mean [95% CI]", "IQM [95% CI]", "time-aware", "rank (time-aware)",
           "gap to best bound", "wall s", "status")


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
        "rank": str(r.get("rank", "-")), "method": r["method"], "runs": str(r["runs"]),
        "mean [95% CI]": _ci(r, "mean") if "mean_lo" in r else f"{r['objective']:.4g}",
        "IQM [95% CI]": _ci(r, "iqm"),
        "time-aware": "-" if math.isnan(r["objective_timed"]) else f"{r['objective_timed']:.4g}",
        "rank (time-aware)": str(r.get("rank_timed", "-")),
        "gap to best bound": "-" if math.isnan(r["gap_to_best_bound"]) else f"{r['gap_to_best_bound']:.3f}",
        "wall s": f"{r['wall_time_s']:.3f}",
        "status": ", ".join(f"{k}:{v}" for k, v in sorted(r["status"].items())),
    }
    return [values[c] for c in cols]


def _blocks(rows):
    for family_name, env in dict.fromkeys((r["family"], r["env"]) for r in rows):
        yield family_name, env, [r for r in rows if r["family"] == family_name and r["env"] == env]


def _title(family_name: str, env: str, block: list[dict]) -> str:
    key = block[0]["objective_name"]
    arrow = "lower is better" if block[0]["sense"] == "min" else "higher is better"
    before = _mean(r["objective_before"] for r in block)
    return f"{family_name} / {env}: {key} ({arrow}" + (f"; before any action {before:.4f})" if math.isfinite(before)
                                                        else ")")


def render(rows: list[dict[str, Any]], console: Console | None = None) -> None:
    console = console or make_console()
    for family_name, env, block in _blocks(rows):
        table = Table(title=_title(family_name, env, block))
        cols = _columns(block)
        for col in cols:
            table.add_column(col, justify="left" if col in ("method", "status") else "right",
                             no_wrap=col != "status")
        for r in block:
            table.add_row(*_cells(r, cols))
        console.print(table)
        if len({tuple(r["instances"]) for r in block}) > 1:
            console.print("[yellow]warning:[/] methods in this table ran on different instances/seeds; "
                          "their means are not directly comparable")


def to_markdown(rows: list[dict[str, Any]]) -> str:
    out = []
    for family_name, env, block in _blocks(rows):
        out.append(f"### {_title(family_name, env, block)}\n")
        cols = _columns(block)
        out.append("| " + " | ".join(cols) + " |")
        out.append("|" + "---|" * len(cols))
        out += ["| " + " | ".join(_cells(r, cols)) + " |" for r in block]
        out.append("")
    return "\n".join(out)


CSV_COLUMNS = ["family", "env", "method", "runs", "objective_name", "objective", "objective_std", "mean_lo", "mean_hi",
               "iqm", "iqm_lo", "iqm_hi", "objective_timed", "objective_before", "gap_to_best_bound", "wall_time_s",
               "rank", "rank_timed"]


def to_csv(rows: list[dict[str, Any]]) -> str:
    return "\n".join([",".join(CSV_COLUMNS)] + [",".join(str(r.get(c, "")) for c in CSV_COLUMNS) for r in rows]) + "\n"


def plot(rows: list[dict[str, Any]], path: str | Path, records: list[dict] | None = None) -> Path:
    """Per env: bars of each method's objective (static and time-aware) with 95 % CIs; with the records,
    a performance profile (share of runs at or better than tau) and gap-to-bound vs wall time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = list(dict.fromkeys((r["family"], r["env"]) for r in rows))
    n_rows = 2 if records else 1
    fig, axes = plt.subplots(n_rows, len(envs), figsize=(6 * len(envs), 4.2 * n_rows), squeeze=False)
    for col, (family_name, env) in enumerate(envs):
        block = [r for r in rows if r["family"] == family_name and r["env"] == env]
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
        ax.set_title(env)
        ax.set_ylabel(block[0]["objective_name"])
        ax.legend(fontsize=8)
        if records:
            ax = axes[1][col]
            key, sense = block[0]["objective_name"], block[0]["sense"]
            mine = [r for r in records if r["family"] == family_name and (r.get("env") or instance_group(
                r["instance"])) == env]
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
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def leaderboard(results: str | Path, *, plot_path: str | Path | None = None, console: Console | None = None,
                validated_only: bool = True, write: bool = True, fmt: str = "table") -> list[dict[str, Any]]:
    """Print the table; with `write`, also `leaderboard.md` and `leaderboard.csv` beside the records."""
    records = list(read_records(results))
    if not records:
        raise FileNotFoundError(f"no result records (*.jsonl) under {results}")
    console = console or make_console()
    if validated_only:
        from sysgym.experiments.validate import COUNTED, validate

        verdicts = validate(results, progress=False)
        rejected = [r for r in records if verdicts[r["run_id"]]["status"] not in COUNTED]
        for r in rejected:
            v = verdicts[r["run_id"]]
            console.print(f"[yellow]not counted[/] ({v['status']}): {r['method']} on {r['instance']} "
                          f"seed {r['seed']}: {v['detail']}")
        records = [r for r in records if verdicts[r["run_id"]]["status"] in COUNTED]
        if not records:
            raise FileNotFoundError(f"no validated records under {results}")
    rows = summarise(records)
    if fmt == "csv":
        console.print(to_csv(rows), markup=False, highlight=False, soft_wrap=True)
    elif fmt == "markdown":
        console.print(to_markdown(rows), markup=False, highlight=False, soft_wrap=True)
    else:
        render(rows, console)
    root = Path(results) if Path(results).is_dir() else Path(results).parent
    if write:
        (root / "leaderboard.md").write_text(to_markdown(rows))
        (root / "leaderboard.csv").write_text(to_csv(rows))
    if plot_path:
        plot(rows, plot_path, records)
    return rows
