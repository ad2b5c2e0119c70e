"""The env shape both knob-tuning families share (`sysgym/PgKnobs-v0`, `sysgym/ServingKnobs-v0`).

Action: Box(-1, 1, (n,)) over a knob space (`sysgym.envs.knob_space`); a = 2u - 1 for each knob's normalised
coordinate u. Each step measures the whole configuration through the family's evaluator (`measure_step`, the
family's part: its observation, reward and info). Invalid actions follow the kit (`sysgym.env`): NaN, infinite
or wrong-shaped actions and, by default, values outside [-1, 1] are refused (`invalid_action="penalise"`:
reward -1, nothing measured, the step still counts toward `episode_length`; `"raise"`: `InvalidActionError`);
`invalid_action="clip"` clips finite out-of-range values (`info["clipped_action"]`).

`decisions()` is the best configuration the episode measured (the defaults until a step beats them): what a
tuner returns and what the family's evaluator scores; `info[objective]` is its measured value.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from sysgym.env import SysgymEnv
from sysgym.envs.knob_space import KnobSpace
from sysgym.errors import InvalidArgumentError


class KnobEnv(SysgymEnv):
    """Base of the knob-tuning envs (see the module doc). A subclass calls `setup_knobs` in `__init__`,
    `begin` at the end of `start`, and implements `measure_step`."""

    objective: ClassVar[str] = ""  # the family's objective (what info reports for decisions())

    def setup_knobs(self, space: KnobSpace, episode_length: int, features: int) -> None:
        """Spaces for `space`: the action, and an observation of the knobs' u plus `features` values in [0, 1]."""
        if int(episode_length) < 1:
            raise InvalidArgumentError(f"episode_length must be >= 1, got {episode_length}")
        self.space, self.episode_length = space, int(episode_length)
        n = len(space)
        self.action_space = spaces.Box(-1.0, 1.0, (n,), np.float32)
        self.observation_space = spaces.Box(0.0, 1.0, (n + features,), np.float32)
        self._steps = 0
        self._ready = False  # an episode has started

    def begin(self, default_value: float, observation: np.ndarray) -> None:
        """The episode starts on the defaults, whose measured objective is `default_value`."""
        self._best_config, self._best = self.space.defaults(), float(default_value)
        self._u = self.space.to_unit(self.space.defaults())
        self._steps = 0
        self._last_obs = observation
        self._ready = True

    def measure_step(self, config: dict[str, Any]) -> tuple[np.ndarray, float, float | None, dict[str, Any]]:
        """Measure `config`: (observation, reward, its objective or None for a crash, info)."""
        raise NotImplementedError

    def step(self, action):
        if not self._ready:
            raise RuntimeError("call reset() before step()")
        a, why, clipped = self.box_action(action)
        if why is not None:
            if self.invalid_action != "raise":
                self._steps += 1  # a refused action measures nothing but uses a step
            return self.invalid(why, self._last_obs.copy(), {self.objective: self._best},
                                truncated=self._steps >= self.episode_length)
        config = self.space.from_unit((a + 1.0) / 2.0)
        self._steps += 1
        obs, reward, value, info = self.measure_step(config)
        if value is not None and value > self._best:
            self._best_config, self._best = dict(config), float(value)
        self._u = self.space.to_unit(config)
        self._last_obs = obs
        info = {**info, "config": config, self.objective: self._best}
        if clipped:
            info["clipped_action"] = a.tolist()
        return obs.copy(), float(reward), False, self._steps >= self.episode_length, info

    def decisions(self) -> dict[str, Any]:
        """The best configuration measured in this episode (the defaults until a step beats them)."""
        return dict(self._best_config)

    def snapshot(self) -> dict[str, np.ndarray]:
        return {"u": np.array(self._u, copy=True), "best_u": self.space.to_unit(self._best_config)}
