"""The shipped Decima policy for job scheduling and the family's `job_sched.agent` solver.

* `pretrained("job_sched")` -> `DecimaPolicy`: the GNN trained by `sysgym.agents.decima` (weights
  `agents/weights/job_sched_decima.pt`, its training config, seed, steps, wall time and evaluation table in
  `job_sched_decima.json`), loaded with no training first; `job_sched_decima.onnx` is the same net exported
  to ONNX (`python -m sysgym.agents.decima_onnx agents/weights/job_sched_decima.pt`; a test checks they agree).
* The shipped net takes uwfq's choice as an input (`decima.TrainConfig.hint`); `PLAIN`
  (`job_sched_plain_decima.pt` + `.onnx`), the first shipped policy, has Decima's inputs only.
* `python -m sysgym.agents.pretrained_job_sched --run R --evaluation E ...` (`ship`) makes a run the shipped one.
* `job_sched.agent`: with no `path`, the shipped Decima policy; with a Decima run (a folder holding
  `decima.pt`, or that file, or a Decima ONNX graph), that one; with any other path (SB3 run dir, .zip, .onnx,
  .pt of `sysgym train`), the generic `<family>.agent` behaviour (`sysgym.agents.methods.AgentSolver`).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sysgym.agents.methods import AgentSolver
from sysgym.errors import UnknownNameError
from sysgym.solution import Solution
from sysgym.solver import Solver, register

WEIGHTS = Path(__file__).parent / "weights"
SHIPPED = {"job_sched": WEIGHTS / "job_sched_decima.pt"}
SHIPPED_ONNX = {"job_sched": WEIGHTS / "job_sched_decima.onnx"}  # the same net, exported (agents/decima_onnx.py)
# the first shipped policy: Decima's inputs only (no hint), 10 absolute levels, stay rule "stage"; kept so a pure
# Decima GNN runs without training (`solver.params.path=`), and as the pin of runs that record no actor options
PLAIN = WEIGHTS / "job_sched_plain_decima.pt"


@dataclass
class DecimaPolicy:
    """A trained Decima net and its metadata; `solve(instance)` rolls it out greedily in JobSched-v0."""

    net: Any
    meta: dict[str, Any] = field(default_factory=dict)
    path: str = ""

    def rollout(self, instance):
        """Greedy rollout: (the env's executed schedule, rollout stats)."""
        import torch

        from sysgym.agents.decima import DecimaActor, limit_mode_of, limits_of, make_env, stay_of

        mode = limit_mode_of(self.meta)  # the actor the net was trained behind (its stay rule, parallelism levels
        env = make_env(instance, limits_of(self.meta), mode)  # and limit mode, recorded in its decima.json or
        with torch.no_grad():  # ONNX metadata)
            stats = DecimaActor(self.net, env, stay=stay_of(self.meta), limit_mode=mode).run(instance)
        return env.decisions(), stats


def is_decima_run(path: str | Path) -> bool:
    """A Decima run folder, its `decima.pt` (with the JSON beside it), or a Decima ONNX graph."""
    p = Path(path)
    if p.suffix == ".onnx":
        return _is_decima_onnx(p)
    return (p / "decima.pt").is_file() if p.is_dir() else (p.suffix == ".pt" and p.with_suffix(".json").is_file()
                                                             and p.name.endswith("decima.pt"))


def _is_decima_onnx(p: Path) -> bool:
    if not p.is_file():
        return False
    try:
        import onnx

        props = {e.key: e.value for e in onnx.load(str(p), load_external_data=False).metadata_props}
    except Exception:  # not a readable ONNX file: the generic agent path reports it
        return False
    from sysgym.agents.decima_onnx import FORMAT

    try:
        return json.loads(props.get("sysgym", "{}")).get("format") == FORMAT
    except (ValueError, AttributeError):  # metadata that is not a JSON object: not ours
        return False


def load_decima(path: str | Path) -> DecimaPolicy:
    """A Decima policy from a run (torch) or from its ONNX export (`agents/decima_onnx.py`, onnxruntime)."""
    if Path(path).suffix == ".onnx":
        from sysgym.agents.decima_onnx import OnnxDecimaNet

        net = OnnxDecimaNet(path)
        return DecimaPolicy(net, net.meta, str(path))
    from sysgym.agents.decima import load_net

    net, meta = load_net(path)
    return DecimaPolicy(net, meta, str(path))


def pretrained(name: str) -> DecimaPolicy:
    """The policy shipped for `name` (here: "job_sched", Decima's GNN), loaded without training."""
    if name not in SHIPPED:
        raise UnknownNameError("pretrained policy", name, tuple(SHIPPED))
    return load_decima(SHIPPED[name])


@register
class JobSchedAgent(AgentSolver):
    """Decima's learned scheduler (the shipped one by default); path=<Decima run | any sysgym.agents policy>."""

    name = "job_sched.agent"
    family = "job_sched"

    def __init__(self, path: str | None = None, which: str = "final"):
        self.decima = path is None or is_decima_run(path)
        if not self.decima:
            super().__init__(path=path, which=which)
            return
        Solver.__init__(self, path=path, which=which)  # record the options (AgentSolver's needs a path)
        self.path, self.which = str(path or SHIPPED["job_sched"]), which
        self._policy = load_decima(self.path)

    def solve(self, instance: Any, *, time_limit: float | None = None, seed: int = 0) -> Solution:
        if not self.decima:
            return super().solve(instance, time_limit=time_limit, seed=seed)
        t0 = time.perf_counter()
        decisions, stats = self._policy.rollout(instance)
        return Solution(decisions=decisions, objective=float(stats["mean_jct_s"]), status="feasible",
                        wall_time_s=time.perf_counter() - t0,
                        stats={"policy": self.path,
                               "policy_format": "decima-onnx" if self.path.endswith(".onnx") else "decima",
                               "algo": "reinforce",
                               "steps": stats["env_steps"], "net_calls": stats["net_calls"]})


def _training_record(meta: dict[str, Any]) -> dict[str, Any]:
    """A run's training figures from its curve: the kept (best-validated) checkpoint's and the run's last."""
    curve = meta.get("curve") or []
    best = min(curve, key=lambda c: c["val_mean_jct_s"]) if curve else {}
    return {"kept": best, "run_stopped_at": curve[-1] if curve else {},
            "best_val_mean_jct_s": meta.get("best_val_mean_jct_s"), "config": meta.get("config")}


def _portable(meta: dict[str, Any], run: str | Path) -> dict[str, Any]:
    """`meta` with its config's warm start (`init`), when given as an absolute path, written relative to the folder
    that holds the run's folder (/home/me/runs/hint_rl's init /home/me/runs/hint_bc -> runs/hint_bc), as the
    training commands name runs: a shipped record names no folder of the machine it was made on."""
    cfg = meta.get("config") or {}
    init = cfg.get("init")
    if not init or not Path(init).is_absolute():
        return meta
    folder = Path(run).resolve()
    folder = folder if folder.is_dir() else folder.parent
    return {**meta, "config": {**cfg, "init": os.path.relpath(init, folder.parent.parent)}}


def ship(run: str | Path, evaluation: str | Path, command: str, machine: str,
         warm_start: str | Path | None = None, target: Path | None = None) -> Path:
    """Make a Decima run the shipped `job_sched` policy: its decima.pt and decima.json (config, curve), plus a
    `training` block computed from the curves (this run's and, when it started from another run with `init=`,
    that `warm_start` run's), the commands and machine, and `evaluation`, the JSON `job_sched_agent_bench.py
    --policy RUN --json FILE` wrote; then the ONNX export beside it. Nothing in the record is typed by hand but
    the commands and the machine's description."""
    import shutil

    from sysgym.agents.decima import load_net
    from sysgym.agents.decima_onnx import export_run
    from sysgym.errors import InvalidArgumentError

    # every input is read and checked before anything shipped is overwritten
    if not is_decima_run(run) or Path(run).suffix == ".onnx":
        raise InvalidArgumentError(f"{run}: not a Decima run (a folder with decima.pt and decima.json)")
    try:
        ev = json.loads(Path(evaluation).read_text())
    except (OSError, ValueError) as e:
        raise InvalidArgumentError(f"{evaluation}: not a readable JSON file ({e})") from None
    if not isinstance(ev, dict) or not {"seeds", "summary"} <= set(ev):
        raise InvalidArgumentError(f"{evaluation}: not the JSON `job_sched_agent_bench.py --json` writes "
                                   "(needs 'seeds' and 'summary')")
    net, meta = load_net(run)
    meta = _portable(meta, run)
    if warm_start is not None and not is_decima_run(warm_start):
        raise InvalidArgumentError(f"{warm_start}: not a Decima run (the warm start)")
    src = Path(run) / "decima.pt" if Path(run).is_dir() else Path(run)
    target = Path(target or SHIPPED["job_sched"])
    target.parent.mkdir(parents=True, exist_ok=True)
    training = {"run": _training_record(meta), "command": command, "machine": machine}
    if warm_start is not None:
        training["warm_start"] = _training_record(_portable(load_net(warm_start)[1], warm_start))
    meta = {**meta, "training": training, "evaluation": ev}
    shutil.copyfile(src, target)
    target.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    export_run(net, meta, target.with_suffix(".onnx"), target.name)
    return target


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="ship a Decima run as the package's job_sched policy")
    ap.add_argument("--run", required=True, help="the Decima run folder (decima.pt + decima.json)")
    ap.add_argument("--evaluation", required=True, help="job_sched_agent_bench.py --policy RUN --json FILE")
    ap.add_argument("--command", required=True, help="the command(s) that trained the run")
    ap.add_argument("--machine", required=True, help="where and how loaded it trained")
    ap.add_argument("--warm-start", default=None, help="the run it started from (init=), if any")
    a = ap.parse_args()
    print(ship(a.run, a.evaluation, a.command, a.machine, a.warm_start))
