"""Which stable-baselines3 / sb3-contrib algorithm fits which env, and a clear refusal when one does not."""
from __future__ import annotations

from dataclasses import dataclass

import gymnasium
from gymnasium import spaces

from sysgym.agents.common import AgentError


@dataclass(frozen=True)
class AlgoSpec:
    name: str
    module: str
    cls: str
    action_spaces: tuple[type, ...]
    uses_masks: bool = False
    off_policy: bool = False

    def load_class(self):
        import importlib

        return getattr(importlib.import_module(self.module), self.cls)


_DISCRETE = (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
ALGOS: dict[str, AlgoSpec] = {
    "maskable_ppo": AlgoSpec("maskable_ppo", "sb3_contrib", "MaskablePPO", _DISCRETE, uses_masks=True),
    "ppo": AlgoSpec("ppo", "stable_baselines3", "PPO", (*_DISCRETE, spaces.Box)),
    "a2c": AlgoSpec("a2c", "stable_baselines3", "A2C", (*_DISCRETE, spaces.Box)),
    "dqn": AlgoSpec("dqn", "stable_baselines3", "DQN", (spaces.Discrete,), off_policy=True),
    "sac": AlgoSpec("sac", "stable_baselines3", "SAC", (spaces.Box,), off_policy=True),
    "td3": AlgoSpec("td3", "stable_baselines3", "TD3", (spaces.Box,), off_policy=True),
    "ddpg": AlgoSpec("ddpg", "stable_baselines3", "DDPG", (spaces.Box,), off_policy=True),
}


def has_masks(env: gymnasium.Env) -> bool:
    return hasattr(env.unwrapped, "action_masks")


def default_algo(env: gymnasium.Env) -> str:
    """MaskablePPO wherever the env has `action_masks()`, PPO for other discrete spaces, SAC for Box."""
    if isinstance(env.action_space, spaces.Box):
        return "sac"
    return "maskable_ppo" if has_masks(env) else "ppo"


def get_algo(name: str) -> AlgoSpec:
    if name not in ALGOS:
        from sysgym.errors import UnknownNameError

        raise UnknownNameError("agent algorithm", name, ALGOS)
    return ALGOS[name]


def check_compatible(algo: AlgoSpec, env: gymnasium.Env, env_id: str, env_kwargs: dict | None = None) -> None:
    """Raise AgentError with the reason when `algo` cannot be trained on `env`."""
    act = env.action_space
    if not isinstance(act, algo.action_spaces):
        fits = [a.name for a in ALGOS.values() if isinstance(act, a.action_spaces)]
        raise AgentError(f"agent {algo.name} cannot act in {env_id}: its action space is {act}, and "
                         f"{algo.name} handles only {', '.join(t.__name__ for t in algo.action_spaces)}; "
                         f"agents for this env: {', '.join(fits) or '(none)'}")
    if algo.uses_masks and not has_masks(env):
        raise AgentError(f"agent {algo.name} needs action masks, but {env_id} has no action_masks(); "
                         "use ppo, a2c or dqn")
    if has_masks(env) and not algo.uses_masks:
        mode = (env_kwargs or {}).get("invalid_action")
        if getattr(env.unwrapped, "invalid_action", None) == "raise" and mode != "penalise":
            raise AgentError(f"agent {algo.name} ignores action masks, and {env_id} raises on an action outside "
                             "its mask: use maskable_ppo, or train with env_kwargs.invalid_action=penalise")
