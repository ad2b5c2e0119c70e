"""Building training/evaluation envs from a config, and rolling a policy out on a family instance.

A family env is built from the `env` config group (`id`, `family`, `preset`, `params`); a plain Gymnasium
env (e.g. `CartPole-v1`) from `env_id=...`. Evaluation envs are built per held-out instance
(`make(id, instance=inst, **layout_kwargs)`) so the family's evaluator can score the rollout's decisions.

*Adapters* say, per family, which env kwargs fix the observation layout (VmResched-v0 pads VMs up to
`max_vms`) and how to read the decisions an episode made (VmResched-v0: `env.history`). A family without
an adapter works when its env exposes `decisions()` (or `solution()`).
"""
from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium
import numpy as np

from sysgym.agents.common import AgentError


@dataclass(frozen=True)
class Adapter:
    layout_kwargs: Callable[[Any], dict[str, Any]]  # unwrapped env -> kwargs that fix obs/action shapes
    decisions: Callable[[Any], Any]  # unwrapped env after an episode -> the family's decisions
    # families whose instance spans several episodes: reset options of each, and how to join their decisions
    episodes: Callable[[Any], list[dict[str, Any]]] | None = None
    combine: Callable[[list[Any]], Any] | None = None


DECISION_METHODS = ("decisions", "solution", "records", "schedule")  # what an env may offer its evaluator


def _generic_decisions(base: Any) -> Any:
    for name in DECISION_METHODS:
        fn = getattr(base, name, None)
        if callable(fn):
            return fn()
    raise AgentError(f"{type(base).__name__} exposes none of {', '.join(DECISION_METHODS)}() and sysgym.agents has no "
                     "adapter for its family, so a rollout cannot be scored by the family's evaluator")


def _kv_combine(parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"evict_step": np.concatenate([p["evict_step"] for p in parts], axis=0),
            "granularity": parts[0].get("granularity", "sequence")}


ADAPTERS: dict[str, Adapter] = {
    "vm_resched": Adapter(layout_kwargs=lambda e: {"max_vms": int(e.max_vms)},
                          decisions=lambda e: [tuple(int(x) for x in m) for m in e.history]),
    # KvEviction-v0: one episode per sequence of the instance; the evaluator takes all sequences' schedules
    "kv_eviction": Adapter(layout_kwargs=lambda e: {}, decisions=lambda e: e.schedule(),
                           episodes=lambda inst: [{"sequence": i} for i in range(int(inst.num_sequences))],
                           combine=_kv_combine),
}


def adapter(family: str | None) -> Adapter:
    return ADAPTERS.get(family or "", Adapter(layout_kwargs=lambda e: {}, decisions=_generic_decisions))


def can_score(setup: EnvSetup) -> bool:
    """Whether rollouts in this env can be scored by the family's evaluator (an adapter or decisions())."""
    if setup.family in ADAPTERS:
        return True
    cls = env_class(setup.env_id)
    return any(callable(getattr(cls, n, None)) for n in DECISION_METHODS)


def env_class(env_id: str):
    spec = gymnasium.spec(env_id)
    ep = spec.entry_point
    if callable(ep):
        return ep
    from gymnasium.envs.registration import load_env_creator

    return load_env_creator(ep)


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
        family = None
        from sysgym.registry import _ENVS

        family = _ENVS.get(env_id)
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
    """One greedy episode; `policy.act(obs, mask)`; decisions read through the family's adapter."""
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
    decisions = adapter(family).decisions(base) if family else None
    return Rollout(decisions, dict(info), steps, total, think)


def rollout_instance(policy: Any, env: gymnasium.Env, family: str, instance: Any, *, seed: int = 0,
                     max_steps: int = 1_000_000) -> tuple[Rollout, bool]:
    """Greedy rollout(s) covering a whole instance (several episodes where the family's adapter says so).

    Returns (rollout with the joined decisions, whether several episodes were joined)."""
    ad = adapter(family)
    if ad.episodes is None:
        return rollout(policy, env, family, seed=seed, max_steps=max_steps), False
    parts = [rollout(policy, env, family, seed=seed, max_steps=max_steps, options=o) for o in ad.episodes(instance)]
    joined = ad.combine([p.decisions for p in parts])
    return Rollout(joined, parts[-1].info, sum(p.steps for p in parts), sum(p.total_reward for p in parts),
                   sum(p.decide_time_s for p in parts)), True
