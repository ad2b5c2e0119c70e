"""`vec_env=ray`: a stable-baselines3 VecEnv whose sub-environments live in Ray actors.

Rollout workers on a Ray cluster, learning on the driver: each sub-env is built and stepped inside its own actor
(one CPU each, on whichever node has one), the driver sends the batch of actions and gathers the batch of
transitions, and the learner (PPO, MaskablePPO, ...) runs here as with any VecEnv, so checkpoints, evaluation and
the ONNX export are unchanged. Worth it when a step is expensive (serving simulation, job scheduling, a real
PostgreSQL per env): every step is one round trip per env (about a millisecond on one machine), so a
microsecond-cheap env is faster with `vec_env=dummy`.

Why not RLlib: RLlib brings its own learners, model catalogue and checkpoint format; the repository's agents are
SB3 models with its own feature extractors, evaluation and ONNX export. Moving only the env stepping onto Ray
keeps every trained policy the same kind of artefact (same seed, same transitions as `vec_env=dummy`).

The actor runs the same protocol as SB3's SubprocVecEnv worker (auto-reset, `terminal_observation`,
`TimeLimit.truncated`, reset infos), with Ray calls in place of pipes.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import CloudpickleWrapper, VecEnv, VecEnvIndices


class EnvWorker:
    """One sub-env inside a Ray actor (the body of SB3's SubprocVecEnv `_worker`, one method per command)."""

    def __init__(self, env_fn: CloudpickleWrapper):
        from stable_baselines3.common.vec_env.patch_gym import _patch_env

        self.env = _patch_env(env_fn.var())
        self.reset_info: dict[str, Any] = {}

    def step(self, action: Any) -> tuple:
        observation, reward, terminated, truncated, info = self.env.step(action)
        done = terminated or truncated
        info["TimeLimit.truncated"] = truncated and not terminated
        if done:  # keep the final observation where SB3 looks for it, then start the next episode
            info["terminal_observation"] = observation
            observation, self.reset_info = self.env.reset()
        return observation, reward, done, info, self.reset_info

    def reset(self, seed: int | None, options: dict | None) -> tuple:
        observation, self.reset_info = self.env.reset(seed=seed, **({"options": options} if options else {}))
        return observation, self.reset_info

    def spaces(self) -> tuple:
        return self.env.observation_space, self.env.action_space

    def render(self) -> Any:
        return self.env.render()

    def env_method(self, name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        return self.env.get_wrapper_attr(name)(*args, **kwargs)

    def get_attr(self, name: str) -> Any:
        return self.env.get_wrapper_attr(name)

    def has_attr(self, name: str) -> bool:
        try:
            self.env.get_wrapper_attr(name)
            return True
        except AttributeError:
            return False

    def set_attr(self, name: str, value: Any) -> None:
        setattr(self.env, name, value)

    def is_wrapped(self, wrapper_class: type) -> bool:
        from stable_baselines3.common.env_util import is_wrapped

        return is_wrapped(self.env, wrapper_class)

    def close(self) -> None:
        self.env.close()


class RayVecEnv(VecEnv):
    """`env_fns` as Ray actors (module doc). `address`: the cluster to join when Ray is not yet initialised
    (None: a local one); `num_cpus`: what each actor asks for."""

    def __init__(self, env_fns: list[Callable[[], gym.Env]], address: str | None = None, num_cpus: float = 1):
        import ray

        if not ray.is_initialized():
            ray.init(**({"address": address} if address else {}))
        actor = ray.remote(num_cpus=num_cpus)(EnvWorker)
        self._ray = ray
        self.actors = [actor.remote(CloudpickleWrapper(fn)) for fn in env_fns]
        self._pending: list[Any] | None = None
        self.closed = False
        observation_space, action_space = ray.get(self.actors[0].spaces.remote())
        super().__init__(len(env_fns), observation_space, action_space)

    def _call(self, name: str, *args: Any, indices: VecEnvIndices = None) -> list[Any]:
        actors = [self.actors[i] for i in self._get_indices(indices)]
        return self._ray.get([getattr(a, name).remote(*args) for a in actors])

    def step_async(self, actions: np.ndarray) -> None:
        self._pending = [a.step.remote(act) for a, act in zip(self.actors, actions)]

    def step_wait(self):
        results = self._ray.get(self._pending)
        self._pending = None
        obs, rews, dones, infos, self.reset_infos = zip(*results)
        return _stack(obs, self.observation_space), np.stack(rews), np.stack(dones), infos

    def reset(self):
        results = self._ray.get([a.reset.remote(self._seeds[i], self._options[i]) for i, a in enumerate(self.actors)])
        obs, self.reset_infos = zip(*results)
        self._reset_seeds()
        self._reset_options()
        return _stack(obs, self.observation_space)

    def close(self) -> None:
        if self.closed:
            return
        if self._pending is not None:
            self._ray.get(self._pending)
        self._ray.get([a.close.remote() for a in self.actors])
        for a in self.actors:
            self._ray.kill(a)
        self.closed = True

    def get_images(self) -> Sequence[np.ndarray | None]:
        return self._call("render")

    def has_attr(self, attr_name: str) -> bool:
        return all(self._call("has_attr", attr_name))

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return self._call("get_attr", attr_name, indices=indices)

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        self._call("set_attr", attr_name, value, indices=indices)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        return self._call("env_method", method_name, method_args, method_kwargs, indices=indices)

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return self._call("is_wrapped", wrapper_class, indices=indices)


def _stack(obs: Sequence[Any], space: gym.Space) -> Any:
    from stable_baselines3.common.vec_env.subproc_vec_env import _stack_obs

    return _stack_obs(list(obs), space)
