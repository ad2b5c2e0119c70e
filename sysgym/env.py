"""The env contract: `SysgymEnv`, the base every family's Gymnasium env derives from.

What it owns, so no family writes it again:

* **Instance selection** at `reset`: `options["instance"]` if given, else the instance the env was built
  with (`instance=`), else a fresh one from the family's generator (`preset=`, `generator_params=`) seeded
  from the env's `np_random`, so the same `reset(seed=...)` gives the same instance. Instances of another
  family are refused (`FamilyMismatchError`) before any work.
* **Invalid actions**, one vocabulary for every env (`invalid_action=`):
  - `"penalise"` (default): the step changes nothing, its reward is `invalid_penalty` (-1), and
    `info["invalid_action"]` says why. Gymnasium's and stable-baselines3's checkers and unmasked agents,
    which sample actions outside the mask, run on every env as registered.
  - `"raise"`: `InvalidActionError` naming the action and the violated rule; the state is unchanged.
  - `"clip"` (Box actions only): finite values outside the box are clipped into it and the step goes on
    (`info["clipped_action"]`); NaN, infinite or wrong-shaped actions are still refused as in "penalise".
* **Decisions for the evaluator**: `decisions()` returns what the family's evaluator scores
  (`family.evaluate(instance, Solution(env.decisions(), ...))`), so any policy rolled out in any env is scored
  by the one scorer; `episodes(instance)` lists the reset options that together cover an instance (one
  episode for most families) and `combine(parts)` joins their decisions. `layout_kwargs()` gives the
  constructor keywords that fix the observation and action shapes (what a trained policy needs again).
* `snapshot()`: the decision state as arrays, so tests can check that a refused action changed nothing.

`info` may report progress, but a key named like the family's objective is read by `<family>.agent` as the
rollout's claimed objective (then checked against the evaluator): only put it there when it IS the evaluator's
value for `decisions()`, else give it another name.
"""
from __future__ import annotations

from typing import Any, ClassVar

import gymnasium
import numpy as np
from gymnasium import spaces

from sysgym import registry
from sysgym.errors import InvalidActionError, InvalidArgumentError, UnknownNameError

INVALID_ACTION_MODES = ("penalise", "raise", "clip")


def check_invalid_action_mode(mode: str, action_space: spaces.Space | None = None) -> str:
    if mode not in INVALID_ACTION_MODES:
        raise UnknownNameError("invalid_action mode", mode, INVALID_ACTION_MODES)
    if mode == "clip" and action_space is not None and not isinstance(action_space, spaces.Box):
        raise InvalidArgumentError(f"invalid_action='clip' needs a Box action space, not {action_space}")
    return mode


class SysgymEnv(gymnasium.Env):
    """Base of every sysgym env (see the module doc). Subclasses set `family`, build their spaces in
    `__init__` after calling `super().__init__(...)`, and implement `start`, `step` and `decisions`."""

    family: ClassVar[str] = ""
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"]}
    invalid_penalty: ClassVar[float] = -1.0
    # Steps of the conformance suite's random rollout; envs whose every step is a real measurement or a
    # whole simulation set fewer, and say why.
    check_steps: ClassVar[int] = 1000

    def __init__(self, *, instance: Any = None, preset: str | None = None, generator_params: dict | None = None,
                 invalid_action: str = "penalise", render_mode: str | None = None):
        fam = registry.get_family(self.family)
        if instance is not None:
            fam.check_instance(instance, type(self).__name__)
        elif preset is not None:
            fam.generator.check(preset=preset)
        self.invalid_action = check_invalid_action_mode(invalid_action)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise UnknownNameError("render_mode", render_mode, self.metadata["render_modes"])
        self.render_mode = render_mode
        self.fixed_instance = instance
        self.preset = preset
        self.gen_params = dict(generator_params or {})
        self.instance: Any = None

    # -- instances ------------------------------------------------------------------------------------------
    def next_instance(self, options: dict[str, Any]) -> Any:
        """The instance this episode runs on (see the module doc); called by `reset` after seeding."""
        fam = registry.get_family(self.family)
        if options.get("instance") is not None:
            return fam.check_instance(options["instance"], type(self).__name__)
        if self.fixed_instance is not None:
            return self.fixed_instance
        return fam.generator(seed=int(self.np_random.integers(2**31)), preset=self.preset, **self.gen_params)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        self.instance = self.next_instance(options)
        return self.start(self.instance, options)

    def start(self, instance: Any, options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """Begin an episode on `instance`; return (observation, info)."""
        raise NotImplementedError

    # -- invalid actions ------------------------------------------------------------------------------------
    def invalid(self, reason: str, observation: Any, info: dict[str, Any] | None = None, *,
                terminated: bool = False, truncated: bool = False):
        """The step result for a refused action: raise, or a no-op with the penalty (see the module doc)."""
        if self.invalid_action == "raise":
            raise InvalidActionError(f"{type(self).__name__}: {reason}")
        return observation, float(self.invalid_penalty), bool(terminated), bool(truncated), \
            {**(info or {}), "invalid_action": reason}

    def discrete_action(self, action: Any) -> tuple[int | None, str | None]:
        """For Discrete action spaces: (the action as an int, None), or (None, why it is refused) when it is not
        an integer or lies outside the space. The mask is the env's to check."""
        try:
            a = int(action)
        except (TypeError, ValueError):
            return None, f"action {action!r} is not an integer"
        if isinstance(action, (float, np.floating)) and float(action) != a:
            return None, f"action {action!r} is not an integer"
        space = self.action_space
        if not space.start <= a < space.start + space.n:
            return None, f"action {a} outside Discrete({space.n})"
        return a, None

    def box_action(self, action: Any) -> tuple[np.ndarray | None, str | None, bool]:
        """For Box action spaces: (action as an array or None, why it is refused or None, whether clipped)."""
        space = self.action_space
        try:
            arr = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError):
            return None, f"action {action!r} is not numeric", False
        if arr.shape != space.shape:
            return None, f"action has shape {arr.shape}, the action space {space.shape}", False
        if not np.isfinite(arr).all():
            return None, f"action has non-finite entries at {np.flatnonzero(~np.isfinite(arr.ravel())).tolist()}", False
        low, high = space.low.astype(np.float64), space.high.astype(np.float64)
        outside = (arr < low) | (arr > high)
        if outside.any():
            if self.invalid_action == "clip":
                return np.clip(arr, low, high), None, True
            return None, f"action entries {np.flatnonzero(outside.ravel()).tolist()} lie outside [low, high]", False
        return arr, None, False

    # -- the contract with evaluators and agents -----------------------------------------------------------
    def decisions(self) -> Any:
        """What the family's evaluator scores for the episode so far."""
        raise NotImplementedError

    @classmethod
    def episodes(cls, instance: Any) -> list[dict[str, Any]]:
        """Reset options of the episodes that together cover `instance`."""
        return [{"instance": instance}]

    @classmethod
    def combine(cls, parts: list[Any]) -> Any:
        """Join the decisions of `episodes(instance)`'s episodes into what the evaluator takes."""
        if len(parts) != 1:
            raise ValueError(f"{cls.__name__} covers an instance in one episode, got {len(parts)}")
        return parts[0]

    def layout_kwargs(self) -> dict[str, Any]:
        """Constructor keywords that fix the observation and action shapes (a trained policy needs them)."""
        return {}

    def snapshot(self) -> dict[str, np.ndarray]:
        """The decision state as arrays (default: the action mask and every array or number in `self.state`)."""
        out: dict[str, np.ndarray] = {}
        if hasattr(self, "action_masks"):
            out["mask"] = np.array(self.action_masks(), copy=True)
        state = getattr(self, "state", None)
        if state is not None:
            for key, value in vars(state).items():
                if isinstance(value, (np.ndarray, int, float, np.number)):
                    out[f"state.{key}"] = np.array(value, copy=True)
        return out

    def render(self):
        return ""
