"""The Hydra app behind `sysgym run` (configs ship inside the package: pkg://sysgym.conf)."""
from __future__ import annotations

import hydra
from omegaconf import DictConfig

from sysgym.errors import SysgymError
from sysgym.experiments.runner import run_from_config


# The decorated name shadows the task function, so process launchers (joblib, submitit) pickle it by value:
# it must not close over unpicklable globals such as a rich Console (it holds a lock).
@hydra.main(config_path="pkg://sysgym.conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    from rich.console import Console

    console = Console()
    try:
        result = run_from_config(cfg)
    except SysgymError as exc:  # a bad instance file, policy path, option...: named, nothing was written
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # a sweep's launcher reports the failed job
        from rich.text import Text

        Console(stderr=True).print("[red]error:[/]", Text(str(exc)), soft_wrap=True)
        raise SystemExit(2) from None
    if result.skipped:
        console.print(f"[yellow]skipped[/]: {result.skipped}", soft_wrap=True, highlight=False)
        return None
    from sysgym.registry import get_family

    rec = result.record
    if rec.get("failure"):
        console.print(f"[red]run failed[/] {rec['env']} {rec['method']} seed={rec['seed']}: "
                      f"{rec['failure']['detail']} (recorded) -> {result.path}", soft_wrap=True, highlight=False)
        return None
    metrics = rec["metrics"]
    family = get_family(rec["family"])
    key = family.objective
    value = metrics.get(key)
    timed = metrics.get(family.timed_objective) if family.timed_objective else None
    shown = f"{value:.4f}" if isinstance(value, (int, float)) else str(value)
    console.print(f"[bold]{rec['env']}[/] {rec['method']} seed={rec['seed']}: {key}={shown}"
                  + (f" (time-aware {timed:.4f})" if isinstance(timed, (int, float)) else "")
                  + f" status={rec['solver_stats'].get('status')} wall={rec['wall_time_s']:.2f}s -> {result.path}",
                  soft_wrap=True, highlight=False)
    return value if isinstance(value, (int, float)) else None


if __name__ == "__main__":
    from sysgym.experiments.isolate import mark_sweep

    mark_sweep()
    main()
