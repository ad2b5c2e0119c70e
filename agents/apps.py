"""The Hydra apps behind `sysgym train` and `sysgym tune-agent` (configs: pkg://sysgym.conf, `train.yaml`)."""
from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from rich.console import Console

console = Console()


def _task_overrides() -> list[str]:
    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:  # not under Hydra
        return []


def _fail(exc: Exception) -> None:
    console.print(f"[red]error:[/] {exc}")
    raise SystemExit(2)


@hydra.main(config_path="pkg://sysgym.conf", config_name="train", version_base="1.3")
def train_main(cfg: DictConfig) -> float | None:
    from sysgym.agents.training import train
    from sysgym.errors import SysgymError

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        res = train(cfg, run_dir, _task_overrides())
    except SysgymError as exc:  # bad input: say what is wrong, without a traceback
        _fail(exc)
    best = f"{res.best:.4f}" if res.best is not None else "n/a"
    console.print(f"[bold]trained[/] {res.timesteps} steps in {res.wall_time_s:.1f}s "
                  f"({res.steps_per_s:.0f} env steps/s); best held-out {res.metric}={best} -> {res.model_path}")
    return res.best


@hydra.main(config_path="pkg://sysgym.conf", config_name="train", version_base="1.3")
def tune_main(cfg: DictConfig) -> float | None:
    from sysgym.agents.tune import tune
    from sysgym.errors import SysgymError

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        res = tune(cfg, run_dir, _task_overrides())
    except SysgymError as exc:
        _fail(exc)
    console.print(f"[bold]study[/] {res.study_name}: {res.n_trials} trials ({res.n_pruned} pruned); best "
                  f"{res.metric}={res.best_value:.4f} with {res.best_params} -> {res.best_config}")
    return res.best_value
