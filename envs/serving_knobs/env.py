"""`sysgym/ServingKnobs-v0`: tune the serving engine's knobs on the LLM-serving simulator.

Action: Box(-1, 1, (6,)) over `serving.SERVING_KNOBS` (max_num_batched_tokens, max_num_seqs, chunk_size,
block_size, gpu_memory_utilization, scheduler); a = 2u - 1 for each knob's normalised coordinate u. Each step
runs the simulator on the instance's trace with that configuration (the family evaluator).

Observation: Box(0, 1, (6 + 7,)): the knobs' u, then SLO attainment, TTFT p99 / (TTFT p99 + SLO),
TPOT p99 / (TPOT p99 + SLO), KV utilisation, GPU busy fraction, goodput relative to the defaults (x / (1 + x))
and a crash flag. Reward: goodput / default goodput - 1; a crash (out of memory, an engine that refuses the
configuration) scores the worst goodput seen so far (OtterTune/LlamaTune) with `info["crashed"]` and its reason.
The simulator is deterministic: the same seed and actions give the same episode.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sysgym.errors import InvalidActionError

from .serving import ServingKnobInstance, evaluate_serving, generate_serving, serving_space


class ServingKnobsEnv(gym.Env):
    metadata = {"render_modes": ["ansi"]}

    def __init__(self, instance: ServingKnobInstance | None = None, preset: str = "serving-tiny",
                 episode_length: int = 5, invalid_action: str = "raise", render_mode: str | None = None,
                 **instance_params: Any):
        if invalid_action not in ("raise", "clip"):
            raise ValueError(f"invalid_action must be 'raise' or 'clip', got {invalid_action!r}")
        self.instance = instance if instance is not None else generate_serving(seed=0, preset=preset,
                                                                               **instance_params)
        self.space = serving_space()
        self.episode_length, self.invalid_action, self.render_mode = int(episode_length), invalid_action, render_mode
        n = len(self.space)
        self.action_space = spaces.Box(-1.0, 1.0, (n,), np.float32)
        self.observation_space = spaces.Box(0.0, 1.0, (n + 7,), np.float32)
        self._default: dict[str, Any] | None = None
        self._steps = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.action_space.seed(seed)  # seeded random actions (sysgym.testing's rollouts sample the space)
        if self._default is None:
            self._default = evaluate_serving(self.instance, self.space.defaults())
            if self._default["crashed"]:
                raise RuntimeError(f"the engine's default configuration fails: {self._default['error']}")
        self._g0 = float(self._default["objective"])
        self._worst = self._g0
        self._steps = 0
        obs = self._obs(self.space.to_unit(self.space.defaults()), self._default)
        return obs, {"goodput": self._g0, "config": self.space.defaults()}

    def step(self, action):
        if self._default is None:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != self.action_space.shape or not np.all(np.isfinite(a)) or np.any(np.abs(a) > 1.0 + 1e-6):
            if self.invalid_action == "raise":
                raise InvalidActionError(f"ServingKnobs: action must be {self.action_space.shape[0]} finite values "
                                         f"in [-1, 1], got {np.asarray(action).tolist()}")
            a = np.clip(np.nan_to_num(np.resize(a, self.action_space.shape), nan=0.0), -1.0, 1.0)
        config = self.space.from_unit((a + 1.0) / 2.0)
        m = evaluate_serving(self.instance, config)
        if m["crashed"]:
            goodput = self._worst
        else:
            goodput = float(m["objective"])
            self._worst = min(self._worst, goodput)
        self._steps += 1
        reward = goodput / self._g0 - 1.0 if self._g0 > 0 else goodput
        obs = self._obs(self.space.to_unit(config), m, goodput)
        info = {"goodput": goodput, "crashed": m["crashed"], "error": m["error"], "config": config,
                "slo_attainment": m.get("slo_attainment")}
        return obs, float(reward), False, self._steps >= self.episode_length, info

    def render(self):
        return f"step {self._steps}/{self.episode_length}" if self._default is not None else ""

    def _obs(self, u: np.ndarray, m: dict[str, Any], goodput: float | None = None) -> np.ndarray:
        goodput = self._g0 if goodput is None else goodput
        rel = goodput / self._g0 if self._g0 > 0 else 0.0
        if m["crashed"]:
            feats = [0.0, 1.0, 1.0, 0.0, 0.0, rel / (1 + rel), 1.0]
        else:
            ttft, tpot = float(m["ttft_p99"]), float(m["tpot_p99"])
            feats = [m["slo_attainment"], ttft / (ttft + m["slo_ttft_s"]), tpot / (tpot + m["slo_tpot_s"]),
                     m.get("kv_util_mean", 0.0), m.get("gpu_busy_frac", 0.0), rel / (1 + rel), 0.0]
        vec = np.concatenate([u, np.asarray(feats, dtype=float)])
        return np.clip(np.nan_to_num(vec, nan=0.0, posinf=1.0), 0.0, 1.0).astype(np.float32)
