"""The Hydra launcher class; the work is in `sysgym.experiments.ray_sweep` (configs:
conf/hydra/launcher/sysgym_ray.yaml)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class SysgymRayLauncher(Launcher):
    def __init__(self, address: str | None = None, init: dict[str, Any] | None = None, num_cpus: float = 1,
                 solver_cpus: dict[str, float] | None = None, cpus_from_params: Sequence[str] = (),
                 max_retries: int = 1) -> None:
        self.address, self.init = address, dict(init or {})
        self.num_cpus, self.solver_cpus = num_cpus, dict(solver_cpus or {})
        self.cpus_from_params, self.max_retries = list(cpus_from_params or ()), int(max_retries)
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from sysgym.experiments.ray_sweep import launch

        return launch(self, job_overrides, initial_job_idx)
