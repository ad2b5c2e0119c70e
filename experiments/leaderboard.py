"""The comparison table: reads only result records, groups by (family, env) and ranks methods."""
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

from sysgym.errors import UnknownNameError
from sysgym.records import read_records
from sysgym.registry import get_family


def _mean(xs: list[float]) -> float:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return float(np.mean(xs)) if xs else math.nan


def _std(xs: list[float]) -> float:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return float(np.std(xs)) if len(xs) > 1 else 0.0


def instance_group(spec: str) -> str:
    """The instance spec without its seed: runs on the same preset are one group."""
    return re.sub(r"(\?|&)seed=\d+", r"\1", spec).replace("?&", "?").rstrip("?&")


def summarise(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (family, env, method): mean objective (static and time-aware), wall time, rank."""
    groups: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for rec in records:
        env = rec.get("env") or instance_group(rec["instance"])
        groups[(rec["family"], env, rec["method"])].append(rec)
    rows = []
    for (family_name, env, method), recs in groups.items():
        try:
            fam = get_family(family_name)
            key, sense = fam.objective, fam.sense
            timed_key = fam.extra.get("timed_objective")
        except UnknownNameError:
            key, sense, timed_key = "objective", "min", None
        objs = [r["metrics"].get(key) for r in recs]
        timed = [r["metrics"].get(timed_key) for r in recs] if timed_key else []
        before = [r["metrics"].get(key + "_before") for r in recs]
        statuses = defaultdict(int)
        for r in recs:
            statuses[r.get("solver_stats", {}).get("status", "-")] += 1
        gaps = [r.get("solver_stats", {}).get("gap") for r in recs]
        rows.append({
            "family": family_name, "env": env, "method": method, "runs": len(recs),
            "seeds": sorted({r["seed"] for r in recs}), "objective_name": key, "sense": sense,
            "objective": _mean(objs), "objective_std": _std(objs), "objective_timed": _mean(timed),
            "objective_before": _mean(before), "wall_time_s": _mean([r["wall_time_s"] for r in recs]),
            "gap": _mean(gaps), "status": dict(statuses), "instances": sorted({r["instance"] for r in recs}),
        })
    for (family_name, env) in {(r["family"], r["env"]) for r in rows}:
        block = [r for r in rows if r["family"] == family_name and r["env"] == env]
        sign = 1 if block[0]["sense"] == "min" else -1
        for field in ("objective", "objective_timed"):
            ranked = sorted((r for r in block if math.isfinite(r[field])), key=lambda r: sign * r[field])
            for i, r in enumerate(ranked, 1):
                r["rank" if field == "objective" else "rank_timed"] = i
    rows.sort(key=lambda r: (r["family"], r["env"], r.get("rank", 1e9)))
    return rows


def make_console() -> Console:
    """Rich's 80 columns are too narrow for the table when output is not a terminal (CI logs, pipes)."""
    return Console(width=None if Console().is_terminal else 140)


def render(rows: list[dict[str, Any]], console: Console | None = None, fmt: str = "table") -> str | None:
    if fmt == "csv":
        cols = ["family", "env", "method", "runs", "objective_name", "objective", "objective_std",
                "objective_timed", "objective_before", "wall_time_s", "gap", "rank", "rank_timed"]
        lines = [",".join(cols)] + [",".join(str(r.get(c, "")) for c in cols) for r in rows]
        text = "\n".join(lines)
        (console or make_console()).print(text, markup=False, highlight=False, soft_wrap=True)
        return text
    console = console or make_console()
    for (family_name, env) in dict.fromkeys((r["family"], r["env"]) for r in rows):
        block = [r for r in rows if r["family"] == family_name and r["env"] == env]
        key = block[0]["objective_name"]
        arrow = "lower is better" if block[0]["sense"] == "min" else "higher is better"
        table = Table(title=f"{family_name} / {env}: {key} ({arrow}; before any action "
                            f"{_mean([r['objective_before'] for r in block]):.4f})")
        for col in ("rank", "method", "runs", key, "time-aware", "rank (time-aware)", "wall s", "gap", "status"):
            table.add_column(col, justify="left" if col in ("method", "status") else "right")
        for r in block:
            table.add_row(str(r.get("rank", "-")), r["method"].split(".", 1)[-1], str(r["runs"]),
                          f"{r['objective']:.4f}±{r['objective_std']:.4f}",
                          "-" if math.isnan(r["objective_timed"]) else f"{r['objective_timed']:.4f}",
                          str(r.get("rank_timed", "-")), f"{r['wall_time_s']:.3f}",
                          "-" if math.isnan(r["gap"]) else f"{r['gap']:.3f}",
                          ", ".join(f"{k}:{v}" for k, v in sorted(r["status"].items())))
        console.print(table)
        instance_sets = {tuple(r["instances"]) for r in block}
        if len(instance_sets) > 1:
            console.print("[yellow]warning:[/] methods in this table ran on different instances/seeds; "
                          "their means are not directly comparable")
    return None


def plot(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Grouped bars per env: each method's objective, static and time-aware."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = list(dict.fromkeys((r["family"], r["env"]) for r in rows))
    fig, axes = plt.subplots(1, len(envs), figsize=(5.5 * len(envs), 4), squeeze=False)
    for ax, (family_name, env) in zip(axes[0], envs):
        block = [r for r in rows if r["family"] == family_name and r["env"] == env]
        x = np.arange(len(block))
        ax.bar(x - 0.2, [r["objective"] for r in block], 0.4, yerr=[r["objective_std"] for r in block],
               label="static", capsize=3)
        if any(math.isfinite(r["objective_timed"]) for r in block):
            ax.bar(x + 0.2, [r["objective_timed"] for r in block], 0.4, label="time-aware")
        ax.axhline(block[0]["objective_before"], color="grey", ls="--", lw=1, label="before")
        ax.set_xticks(x, [r["method"].split(".", 1)[-1] for r in block], rotation=30, ha="right")
        ax.set_title(f"{env}")
        ax.set_ylabel(block[0]["objective_name"])
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def leaderboard(results: str | Path, fmt: str = "table", plot_path: str | Path | None = None,
                console: Console | None = None) -> list[dict[str, Any]]:
    rows = summarise(read_records(results))
    if not rows:
        raise FileNotFoundError(f"no result records (*.jsonl) under {results}")
    render(rows, console, fmt)
    if plot_path:
        plot(rows, plot_path)
    return rows
