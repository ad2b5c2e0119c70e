"""Shared test helpers, shipped with the package (Jumanji's habit): every family's tests call these.

* `check_env(env_id, **kwargs)`: Gymnasium's checker, a long random masked rollout that never corrupts
  state, determinism under a seed, and an illegal action refused.
* `check_solver(name, instance, ...)`: the solver's claimed objective equals the family evaluator's.
"""
from __future__ import annotations

import copy
from typing import Any

import gymnasium
import numpy as np
from gymnasium.utils.env_checker import check_env as gym_check_env

from sysgym.errors import InvalidActionError
from sysgym.registry import env_family, get_family, make


def _flatten_obs(obs: Any) -> list[np.ndarray]:
    if isinstance(obs, dict):
        return [np.asarray(obs[k]) for k in sorted(obs)]
    return [np.asarray(obs)]


def _rollout(env: gymnasium.Env, seed: int, steps: int) -> tuple[list, list[float]]:
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)  # unmasked (e.g. Box) actions are sampled from the space: seed it too
    trace, rewards = [_flatten_obs(obs)], []
    for _ in range(steps):
        action = masked_random_action(env, rng)
        obs, reward, terminated, truncated, _ = env.step(action)
        assert env.observation_space.contains(obs), "observation left the observation space"
        assert np.isfinite(reward), f"non-finite reward {reward}"
        trace.append(_flatten_obs(obs))
        rewards.append(float(reward))
        if terminated or truncated:
            obs, _ = env.reset(seed=int(rng.integers(2**31)))
            trace.append(_flatten_obs(obs))
    return trace, rewards


def masked_random_action(env: gymnasium.Env, rng: np.random.Generator):
    """A uniformly random valid action (uses `action_masks()` when the env has one)."""
    base = env.unwrapped
    if hasattr(base, "action_masks"):
        valid = np.flatnonzero(base.action_masks())
        if len(valid) == 0:
            raise AssertionError("action mask has no valid action")
        return int(valid[rng.integers(len(valid))])
    return env.action_space.sample()


def check_env(env_id: str, *, rollout_steps: int = 500, seed: int = 0, checker_kwargs: dict | None = None,
              **env_kwargs: Any) -> None:
    """Raise AssertionError (or Gymnasium's error) when the env breaks the sysgym env contract."""
    # Gymnasium's checker samples unmasked actions, so envs that raise on masked actions are checked
    # in their documented "penalise" mode; the raise mode is checked below.
    env = make(env_id, **{**env_kwargs, **(checker_kwargs or {})})
    gym_check_env(env.unwrapped, skip_render_check=True)
    env.close()

    env = make(env_id, **env_kwargs)
    trace_a, rewards_a = _rollout(env, seed, rollout_steps)
    env_b = make(env_id, **env_kwargs)
    trace_b, rewards_b = _rollout(env_b, seed, rollout_steps)
    assert rewards_a == rewards_b, "same seed, different rewards: the env is not deterministic"
    for a, b in zip(trace_a, trace_b):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y, err_msg="same seed, different observations")

    base = env.unwrapped
    if hasattr(base, "action_masks"):
        env.reset(seed=seed)
        mask = np.asarray(base.action_masks())
        invalid = np.flatnonzero(~mask)
        if len(invalid):
            before = copy.deepcopy(_snapshot(base))
            try:
                env.step(int(invalid[0]))
            except InvalidActionError:
                pass
            else:
                raise AssertionError("an action outside the mask was accepted without InvalidActionError")
            after = _snapshot(base)
            for key in before:
                np.testing.assert_array_equal(before[key], after[key],
                                              err_msg=f"a refused action changed the env state ({key})")
    env.close()
    env_b.close()
    family = env_family(env_id)
    get_family(family)  # the env's family is registered


def _snapshot(base: Any) -> dict[str, np.ndarray]:
    state = getattr(base, "state", None)
    out = {"mask": np.array(base.action_masks(), copy=True)} if hasattr(base, "action_masks") else {}
    if state is not None:
        for key, value in vars(state).items():
            if isinstance(value, np.ndarray):
                out[f"state.{key}"] = value.copy()
    return out


def check_solver(name: str, instance: Any, *, time_limit: float | None = 30, seed: int = 0,
                 rel_tol: float = 1e-9, **config: Any):
    """Solve, re-score with the family's evaluator, and assert the claimed objective is the scored one.

    Returns (solution, metrics).
    """
    from sysgym import solvers

    solver = solvers.get(name, **config)
    family = get_family(solver.family)
    solution = solver.solve(instance, time_limit=time_limit, seed=seed)
    metrics = family.evaluate(instance, solution)
    assert metrics.get("feasible", True), f"{name}: evaluator found the solution infeasible: {metrics}"
    scored = metrics[family.objective]
    assert abs(scored - solution.objective) <= rel_tol * max(1.0, abs(scored)), (
        f"{name}: claims {family.objective}={solution.objective}, evaluator says {scored}")
    if solution.bound is not None:
        better = (lambda a, b: a >= b - 1e-9) if family.sense == "min" else (lambda a, b: a <= b + 1e-9)
        assert better(scored, solution.bound), f"{name}: objective {scored} beats its own bound {solution.bound}"
    return solution, metrics
