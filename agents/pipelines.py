"""`sysgym train` for the two learned policies that are not stable-baselines3 agents: the recipes of the shipped
policies, as agent configs (`conf/agent/vm_two_stage.yaml`, `conf/agent/decima.yaml`), rl-baselines3-zoo style.

* `agent=vm_two_stage` (env family vm_resched): `pretrain: bc` clones expert plans (CP-SAT optima on tiny and
  small, LNS on medium-v1; `sysgym.agents.imitation`) into `<run dir>/bc/policy.pt`, then REINFORCE on the
  evaluator's FR (`sysgym.agents.vm_finetune`) writes `<run dir>/policy.pt`, which `solver=vm_resched.agent
  solver.params.path=<run dir>/policy.pt` runs. `pretrain: null` fine-tunes a freshly initialised policy.
* `agent=decima` / `agent=decima_plain` (env family job_sched): Decima's REINFORCE
  (`sysgym.agents.decima.train_reinforce`), warm-started by cloning the heuristic named in `pretrain` (null:
  none), into `<run dir>/decima.pt` + `decima.json` (`solver=job_sched.agent solver.params.path=<run dir>`).

The recipes fix their own instance presets (the env group only names the family); `agent.params.*` are the
trainers' own options and `seed` is the run's. `sysgym tune-agent` does not tune these (it drives SB3 learners).
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any

from sysgym.agents.common import AgentError

PIPELINES = {"vm_two_stage": "vm_resched", "decima": "job_sched"}  # algo -> the family it trains for
_KEYS = ("name", "algo", "pretrain", "params")
VM_PARAMS = {"tiny_seeds": 20, "small_seeds": 60, "medium_seeds": 8, "expert_time": 10.0, "lns_time": 5.0,
             "epochs": 40, "eval_every": 4, "threads": 1, "finetune_iterations": 2400, "finetune_samples": 8,
             "finetune_lr": 3e-4, "finetune_eval_every": 20}


def is_pipeline(agent: dict) -> bool:
    return agent.get("algo") in PIPELINES


def check(agent: dict, family: str | None) -> None:
    """Named errors before any work: unknown keys or parameters, another family's env, a bad `pretrain`."""
    algo = agent["algo"]
    unknown = sorted(set(agent) - set(_KEYS))
    if unknown:
        raise AgentError(f"agent {algo}: unknown key(s) {unknown}; known: {', '.join(_KEYS)}")
    if family != PIPELINES[algo]:
        raise AgentError(f"agent {algo} trains a {PIPELINES[algo]} policy, not one for env family {family!r} "
                         f"(use env={PIPELINES[algo]})")
    params = dict(agent.get("params") or {})
    if algo == "vm_two_stage":
        known = set(VM_PARAMS)
        if agent.get("pretrain") not in ("bc", None):
            raise AgentError(f"agent vm_two_stage: pretrain must be bc or null, got {agent.get('pretrain')!r}")
    else:
        from sysgym.agents.decima import TrainConfig

        known = {f.name for f in dataclasses.fields(TrainConfig)} - {"seed", "pretrain"}
        if agent.get("pretrain") is not None:
            from sysgym.envs.job_sched import policy_names

            if agent["pretrain"] not in policy_names():
                from sysgym.errors import UnknownNameError

                raise UnknownNameError("heuristic to clone (agent.pretrain)", agent["pretrain"], policy_names())
    bad = sorted(set(params) - known)
    if bad:
        raise AgentError(f"agent {algo}: unknown parameter(s) {bad}; known: {', '.join(sorted(known))}")
    if algo == "decima":  # the values too (a stay rule, limit mode, hint, ...), before the run folder exists
        TrainConfig(**params, pretrain=agent.get("pretrain"))


def train_pipeline(agent: dict, family: str | None, seed: int, run_dir: Path):
    """Run the recipe into `run_dir`; returns the training app's `TrainResult`."""
    from sysgym.agents.training import TrainResult

    check(agent, family)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "agent.json").write_text(json.dumps({**agent, "seed": seed}, indent=1))
    t0 = time.perf_counter()
    if agent["algo"] == "vm_two_stage":
        model, steps, history, best = _vm_two_stage(agent, seed, run_dir)
        metric = "val_fr_small"
    else:
        model, steps, history, best = _decima(agent, seed, run_dir)
        metric = "val_mean_jct_s"
    wall = time.perf_counter() - t0
    return TrainResult(run_dir, model, steps, wall, steps / max(wall, 1e-9), history, metric, best)


def _vm_two_stage(agent: dict, seed: int, run_dir: Path):
    from sysgym.agents import imitation, vm_finetune
    from sysgym.agents.vm_two_stage import TwoStagePolicy, load_policy, save_policy

    p = {**VM_PARAMS, **(agent.get("params") or {})}
    start = run_dir / "bc" / "policy.pt"
    if agent.get("pretrain") == "bc":
        imitation.main(["--out", str(start.parent), "--epochs", str(p["epochs"]), "--eval-every", str(p["eval_every"]),
                        "--tiny-seeds", str(p["tiny_seeds"]), "--small-seeds", str(p["small_seeds"]),
                        "--medium-seeds", str(p["medium_seeds"]), "--expert-time", str(p["expert_time"]),
                        "--lns-time", str(p["lns_time"]), "--seed", str(seed), "--threads", str(p["threads"])])
    else:
        import torch

        start = run_dir / "init" / "policy.pt"
        start.parent.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(seed)
        save_policy(TwoStagePolicy(), start, {"method": "random initialisation", "seed": seed})
    final = run_dir / "policy.pt"
    if int(p["finetune_iterations"]) > 0:
        vm_finetune.main(["--policy", str(start), "--out", str(run_dir), "--iterations", str(p["finetune_iterations"]),
                          "--samples", str(p["finetune_samples"]), "--lr", str(p["finetune_lr"]),
                          "--eval-every", str(p["finetune_eval_every"]), "--seed", str(seed)])
    else:
        for src in (start, start.with_suffix(".json")):  # the cloned (or initial) policy is the result
            if src.exists():
                shutil.copyfile(src, final.with_suffix(src.suffix))
    _, meta = load_policy(final)
    bc_curve = meta.get("curve") or []
    ft = meta.get("finetune") or {}
    steps = int(meta.get("gradient_steps") or 0) + int(ft.get("best", {}).get("iteration") or 0)
    history = [(int(r.get("gradient_steps", 0)), float(r["val_fr_small"])) for r in bc_curve if "val_fr_small" in r]
    history += [(int(meta.get("gradient_steps") or 0) + int(r["iteration"]), float(r["val_fr_small"]))
                for r in ft.get("curve") or []]
    best = min((v for _, v in history), default=None)
    return final, steps, history, best


def _decima(agent: dict, seed: int, run_dir: Path):
    from sysgym.agents.decima import TrainConfig, train_reinforce

    cfg = TrainConfig(**{**(agent.get("params") or {}), "seed": seed, "pretrain": agent.get("pretrain")})
    train_reinforce(cfg, run_dir, log=lambda m: print(m, flush=True))
    meta: dict[str, Any] = json.loads((run_dir / "decima.json").read_text())
    curve = meta.get("curve") or []
    history = [(int(r["env_steps"]), float(r["val_mean_jct_s"])) for r in curve if "val_mean_jct_s" in r]
    steps = int(curve[-1]["env_steps"]) if curve else 0
    return run_dir / "decima.pt", steps, history, meta.get("best_val_mean_jct_s")
