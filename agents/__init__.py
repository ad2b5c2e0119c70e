"""sysgym.agents: learned methods -- SB3 agents, feature extractors, masking, training, export, loading.

* `sysgym train env=vm_resched agent=maskable_ppo seed=0` (Hydra app; `train(cfg, run_dir)` in Python)
* `sysgym.agents.load(path)` -> a policy with `act(observation, mask=None)` (run dir, .zip, .onnx, .pt)
* `sysgym export RUN_DIR --format onnx|torchscript` (`export(run_dir, fmt)`)
* `<family>.agent` solvers (`sysgym.agents.methods`): a trained policy in sweeps and on the leaderboard
* `sysgym.agents.pretrained("vm_resched")`: the shipped size-agnostic two-stage VM policy (`vm_two_stage.py`);
  `pretrained("job_sched")`: the shipped Decima GNN (`decima.py`)
* `sysgym tune-agent env=... agent=...`: Optuna (TPE + median pruner) over the agent's search space
"""
from __future__ import annotations

# The implementations live in `training.py` and `exporting.py`, not `train.py`/`export.py`: a submodule
# named like a package-level function replaces that function on the package when it is first imported.
from typing import Any

__all__ = ["export", "load", "pretrained", "train"]


def pretrained(family: str):
    """The policy shipped for `family`, loaded without training: `"vm_resched"` (the size-agnostic two-stage
    VM policy, `sysgym.agents.shipped`) or `"job_sched"` (Decima's GNN, `sysgym.agents.pretrained_job_sched`)."""
    from sysgym.agents.shipped import SHIPPED as _VM
    from sysgym.agents.shipped import pretrained as _vm

    if family == "job_sched":
        from sysgym.agents.pretrained_job_sched import pretrained as _decima

        return _decima(family)
    if family not in _VM:
        from sysgym.errors import UnknownNameError

        raise UnknownNameError("pretrained policy family", family, (*_VM, "job_sched"))
    return _vm(family)


def load(path: Any, *, which: str = "final", device: str = "cpu"):
    """Load a trained or exported policy (see `sysgym.agents.policy.load`)."""
    from sysgym.agents.policy import load as _load

    return _load(path, which=which, device=device)


def export(run: Any, fmt: str = "onnx", output: Any = None, *, which: str = "final"):
    """Export a run's policy to ONNX or TorchScript (see `sysgym.agents.exporting.export`)."""
    from sysgym.agents.exporting import export as _export

    return _export(run, fmt, output, which=which)


def train(cfg: Any, run_dir: Any, cli_overrides: Any = ()):
    """Train from a composed `train` config into `run_dir` (see `sysgym.agents.training.train`)."""
    from sysgym.agents.training import train as _train

    return _train(cfg, run_dir, cli_overrides)
