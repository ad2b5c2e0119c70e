"""Building training/evaluation envs from a config, and rolling a policy out on a family instance.

A family env is built from the `env` config group (`id`, `family`, `preset`, `params`); a plain Gymnasium
env (e.g. `CartPole-v1`) from `env_id=...`. Evaluation envs are built per held-out instance
(`make(id, instance=inst, **layout_kwargs)`) so the family's evaluator can score the rollout's decisions.

Everything family-specific comes from the env through the kit's contract (`sysgym.env.SysgymEnv`):
`layout_kwargs()` (what fixes the observation/action shapes), `decisions()` (what the evaluator scores),
`episodes(instance)` and `combine(parts)` (families whose instance spans several episodes).
"""
from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from typing import Any

import gymnasium
import numpy as np

from sysgym.agents.common import AgentError
from sysgym.env import SysgymEnv
from sysgym.registry import env_class as _registered_class


def is_scorable(env_cls: Any) -> bool:
    """Whether rollouts in envs of this class give decisions the family's evaluator takes."""
    return inspect.isclass(env_cls) and issubclass(env_cls, SysgymEnv) and \
        env_cls.decisions is not SysgymEnv.decisions


def can_score(setup: EnvSetup) -> bool:
    """Whether rollouts in this env can be scored by the family's evaluator."""
    return setup.family is not None and is_scorable(env_class(setup.env_id))


def env_class(env_id: str):
    return _registered_class(env_id)


def accepted_kwargs(env_id: str) -> set[str] | None:
    """Constructor keywords of the env (None: it takes **kwargs)."""
    cls = env_class(env_id)
    sig = inspect.signature(cls.__init__ if inspect.isclass(cls) else cls)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return {n for n in sig.parameters if n != "self"}


@dataclass
class EnvSetup:
    """Everything needed to rebuild an env: id, family, generator preset/params and extra env kwargs."""

    env_id: str
    name: str
    family: str | None = None
    preset: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    instance_seed: int = 0  # for envs that take no preset: they train on the preset's instance of this seed

    def train_kwargs(self) -> dict[str, Any]:
        kw = dict(self.env_kwargs)
        acc = accepted_kwargs(self.env_id)
        if self.preset is not None:
            if acc is not None and "preset" not in acc:
                if "instance" not in acc or not self.family:
                    raise AgentError(f"{self.env_id} takes neither a preset nor an instance; drop env.preset")
                kw["instance"] = self.instance(self.instance_seed)
                return kw
            kw["preset"] = self.preset
        if self.params:
            if acc is None or "generator_params" in acc:
                kw["generator_params"] = dict(self.params)
            else:
                bad = [k for k in self.params if k not in acc]
                if bad:
                    raise AgentError(f"{self.env_id} accepts neither generator_params nor {bad}; "
                                     f"its options: {sorted(acc)}")
                kw.update(self.params)
        return kw

    def make(self, **extra: Any) -> gymnasium.Env:
        import sysgym  # noqa: F401  (registers sysgym envs)

        return gymnasium.make(self.env_id, **{**self.train_kwargs(), **extra})

    def make_for_instance(self, instance: Any, layout_kwargs: dict[str, Any]) -> gymnasium.Env:
        import sysgym  # noqa: F401

        return gymnasium.make(self.env_id, instance=instance, **{**self.env_kwargs, **layout_kwargs})

    def instance(self, seed: int) -> Any:
        from sysgym.registry import get_family

        fam = get_family(self.family)
        return fam.generate(seed=int(seed), preset=self.preset, **self.params)

    def to_dict(self) -> dict[str, Any]:
        return {"env_id": self.env_id, "name": self.name, "family": self.family, "preset": self.preset,
                "params": self.params, "env_kwargs": self.env_kwargs, "instance_seed": self.instance_seed}


def setup_from_config(cfg: Any) -> EnvSetup:
    """`env_id=CartPole-v1` (plain Gymnasium) wins over the `env` group (a sysgym family env)."""
    from omegaconf import OmegaConf

    def plain(x):
        return OmegaConf.to_container(x, resolve=True) if OmegaConf.is_config(x) else dict(x or {})

    env_kwargs = plain(cfg.get("env_kwargs"))
    if cfg.get("env_id"):
        env_id = str(cfg.env_id)
        import sysgym  # noqa: F401

        if env_id not in gymnasium.registry:
            from sysgym.errors import UnknownNameError

            raise UnknownNameError("Gymnasium env", env_id, gymnasium.registry)
        from sysgym.registry import ENVS

        family = ENVS.get(env_id)
        return EnvSetup(env_id=env_id, name=env_id, family=family, env_kwargs=env_kwargs)
    env = cfg.env
    return EnvSetup(env_id=str(env.id), name=str(env.name), family=env.get("family"), preset=env.get("preset"),
                    params=plain(env.get("params")), env_kwargs=env_kwargs,
                    instance_seed=int(env.get("instance_seed", cfg.get("seed", 0)) or 0))


@dataclass
class Rollout:
    decisions: Any
    info: dict[str, Any]
    steps: int
    total_reward: float
    decide_time_s: float  # time spent inside policy.act


def rollout(policy: Any, env: gymnasium.Env, family: str | None, *, seed: int = 0,
            max_steps: int = 1_000_000, options: dict[str, Any] | None = None) -> Rollout:
    """One greedy episode; `policy.act(obs, mask)`; decisions from the env's `decisions()`."""
    base = env.unwrapped
    obs, info = env.reset(seed=seed, options=options)
    masked = hasattr(base, "action_masks")
    total, steps, think = 0.0, 0, 0.0
    for _ in range(max_steps):
        mask = np.asarray(base.action_masks(), bool) if masked else None
        t0 = time.perf_counter()
        action = policy.act(obs, mask)
        think += time.perf_counter() - t0
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        steps += 1
        if terminated or truncated:
            break
    decisions = base.decisions() if family and isinstance(base, SysgymEnv) else None
    return Rollout(decisions, dict(info), steps, total, think)


def rollout_instance(policy: Any, env: gymnasium.Env, family: str, instance: Any, *, seed: int = 0,
                     max_steps: int = 1_000_000) -> tuple[Rollout, bool]:
    """Greedy rollout(s) covering a whole instance (the env's `episodes(instance)`), decisions joined by its
    `combine`. Returns (rollout with the joined decisions, whether several episodes were joined)."""
    base = env.unwrapped
    if not isinstance(base, SysgymEnv):
        raise AgentError(f"{type(base).__name__} is not a sysgym env: its rollouts cannot be scored")
    parts = [rollout(policy, env, family, seed=seed, max_steps=max_steps, options=o) for o in base.episodes(instance)]
    if len(parts) == 1:
        return parts[0], False
    joined = base.combine([p.decisions for p in parts])
    return Rollout(joined, parts[-1].info, sum(p.steps for p in parts), sum(p.total_reward for p in parts),
                   sum(p.decide_time_s for p in parts)), True
