"""Trained agents as solvers: `<family>.agent` for every registered family with an env.

`sysgym.solvers.get("vm_resched.agent", path="runs/x/model.onnx").solve(instance)` loads the policy
(a run directory, SB3 zip, ONNX or TorchScript file: `sysgym.agents.load`), rolls it out greedily in the
family's env on that instance, and returns a `Solution` whose decisions the family's evaluator re-scores,
so a trained agent sits in sweeps and on the leaderboard beside heuristics and MILPs
(`sysgym run solver.name=vm_resched.agent +solver.params.path=...`).
"""
from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import numpy as np

from sysgym.registry import get_family, list_families
from sysgym.solution import Solution
from sysgym.solvers.base import Solver, register


@functools.lru_cache(maxsize=8)
def _cached_load(path: str, which: str, mtime: float):
    from sysgym.agents.policy import load

    return load(path, which=which)


class AgentSolver(Solver):
    """Roll a trained policy out on an instance; `kind = "learned"`."""

    kind = "learned"

    def __init__(self, path: str | None = None, which: str = "final"):
        super().__init__(path=path, which=which)
        if not path:
            raise ValueError(f"{self.name} needs path=<run dir | model.zip | policy.onnx | policy.pt>")
        self.path, self.which = str(path), which
        self.policy()  # load (and check the env version) now: a bad file fails here, and load time is not solve time

    def policy(self):
        p = Path(self.path)
        mtime = p.stat().st_mtime if p.exists() else 0.0
        return _cached_load(self.path, self.which, mtime)

    def solve(self, instance: Any, *, time_limit: float | None = None, seed: int = 0) -> Solution:
        from sysgym.agents.common import AgentError, check_layout
        from sysgym.agents.envs import EnvSetup, rollout_instance

        t0 = time.perf_counter()
        pol = self.policy()
        fam = get_family(self.family)
        if pol.meta.get("family") != self.family:
            raise AgentError(f"{self.path} is a policy for {pol.env_id} (family {pol.meta.get('family')}), "
                             f"not for {self.family}")
        setup = EnvSetup(env_id=pol.env_id, name=pol.env_id, family=self.family)
        env = setup.make_for_instance(instance, pol.meta.get("env_kwargs") or {})
        check_layout(pol.meta, env.observation_space, self.path)
        ro, joined = rollout_instance(pol, env, self.family, instance, seed=seed)
        env.close()
        wall = time.perf_counter() - t0
        claimed = None if joined else ro.info.get(fam.objective)
        if claimed is None:  # the env does not report the objective: the evaluator's number is the claim
            claimed = fam.evaluate(instance, Solution(ro.decisions, np.nan, "feasible", wall))[fam.objective]
        return Solution(decisions=ro.decisions, objective=float(claimed), status="feasible", wall_time_s=wall,
                        stats={"policy": str(self.path), "policy_format": pol.kind, "algo": pol.meta.get("algo"),
                               "steps": ro.steps, "decide_time_s": ro.decide_time_s, "episode_reward": ro.total_reward})


# vm_resched registers its own `.agent` (the shipped two-stage policy by default; SB3 files as here).
from sysgym.agents import vm_agent as _vm_agent  # noqa: E402,F401


def _register_all() -> None:
    """A `<family>.agent` for every family with an env whose rollouts its evaluator can score."""
    from sysgym.agents.envs import is_scorable
    from sysgym.registry import SOLVERS, env_class

    for fam_name in list_families():
        if f"{fam_name}.agent" in SOLVERS:
            continue  # the family registers its own `.agent`
        if not any(is_scorable(env_class(e)) for e in get_family(fam_name).env_ids):
            continue
        cls = type(f"{fam_name.title().replace('_', '')}Agent", (AgentSolver,),
                   {"name": f"{fam_name}.agent", "family": fam_name, "__module__": __name__,
                    "__doc__": f"A trained policy (sysgym.agents) rolled out in {fam_name}'s env; path=<policy file>."})
        register(cls)


from sysgym.agents import pretrained_job_sched  # noqa: E402,F401  registers job_sched.agent (Decima) first

_register_all()
