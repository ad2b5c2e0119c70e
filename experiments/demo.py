"""`sysgym demo`: a small leaderboard sweep on embedded defaults (the README's main job)."""
from __future__ import annotations

import datetime as _dt
from importlib import resources
from pathlib import Path

import yaml
from hydra import compose, initialize_config_module
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sysgym.experiments.leaderboard import leaderboard, make_console
from sysgym.experiments.runner import run_from_config


def sweep_runs(sweep: str = "demo") -> list[list[str]]:
    text = resources.files("sysgym.conf").joinpath("sweeps", f"{sweep}.yaml").read_text()
    runs = []
    for block in yaml.safe_load(text)["blocks"]:
        limit = block.get("time_limit")  # none: the run's deterministic budgets (conf/config.yaml)
        for entry in block["solvers"]:
            solver, *extra = str(entry).split()
            for seed in block["seeds"]:
                runs.append([f"env={block['env']}", f"solver={solver}", f"seed={seed}", *extra,
                             *([f"time_limit={limit}"] if limit is not None else [])])
    return runs


def demo(results_dir: str | Path | None = None, sweep: str = "demo", console: Console | None = None) -> Path:
    console = console or make_console()
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(results_dir or "results") / f"{sweep}-{stamp}"
    runs = sweep_runs(sweep)
    with initialize_config_module("sysgym.conf", version_base="1.3"):
        cfgs = [compose("config", overrides=o + [f"results_dir={out}"]) for o in runs]  # all fail fast
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console) as progress:
            task = progress.add_task("sweep", total=len(cfgs))
            failed = []
            for cfg in cfgs:
                progress.update(task, description=f"{cfg.env.name} {cfg.solver.name} seed={cfg.seed}")
                try:
                    run_from_config(cfg)
                except Exception as exc:  # noqa: BLE001 - one broken run must not hide the others' results
                    failed.append(f"{cfg.env.name} {cfg.solver.name} seed={cfg.seed}: {type(exc).__name__}: {exc}")
                progress.advance(task)
    for line in failed:
        console.print(f"[red]run failed[/] {line}")
    plot_path = out / "leaderboard.png"
    leaderboard(out, plot_path=plot_path, console=console)
    console.print(f"records: {out}  table: {out / 'leaderboard.md'}  plot: {plot_path}")
    return out
