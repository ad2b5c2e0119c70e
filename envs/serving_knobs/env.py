"""`sysgym/ServingKnobs-v0`: tune the serving engine's knobs on the LLM-serving simulator.

Action: Box(-1, 1, (6,)) over `knobs.SERVING_KNOBS` (max_num_batched_tokens, max_num_seqs, chunk_size,
block_size, gpu_memory_utilization, scheduler); a = 2u - 1 for each knob's normalised coordinate u. Each step
runs the simulator on the instance's trace with that configuration (the family evaluator).

Observation: Box(0, 1, (6 + 7,)): the knobs' u, then SLO attainment, TTFT p99 / (TTFT p99 + SLO),
TPOT p99 / (TPOT p99 + SLO), KV utilisation, GPU busy fraction, goodput relative to the defaults (x / (1 + x))
and a crash flag. Reward: goodput / default goodput - 1; a crash (out of memory, an engine that refuses the
configuration) scores the worst goodput seen so far (OtterTune/LlamaTune) with `info["crashed"]` and its reason.

`decisions()` is the best configuration the episode simulated (the defaults until a step beats them): what a
tuner returns and what `serving_knobs.evaluate` scores; `info["slo_goodput_rps"]` is its goodput,
`info["goodput"]` this step's (the reward's). Invalid actions, as in `sysgym.envs.knob_env`: refused (reward -1,
the step still counts) unless `invalid_action="clip"` clips finite out-of-range values. The simulator is
deterministic: the same seed and actions give the same episode.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from sysgym.envs.knob_env import KnobEnv
from sysgym.errors import InvalidInstanceError

from .evaluate import evaluate
from .instance import ServingKnobInstance
from .knobs import serving_space


class ServingKnobsEnv(KnobEnv):
    family = "serving_knobs"
    objective = "slo_goodput_rps"
    # Every step is one run of the serving simulator on the whole trace (tens of milliseconds on `tiny`), so
    # the conformance suite's random rollout takes 200 steps, not 1,000.
    check_steps = 200

    def __init__(self, instance: ServingKnobInstance | None = None, preset: str = "tiny", episode_length: int = 5,
                 invalid_action: str = "penalise", generator_params: dict | None = None,
                 render_mode: str | None = None, **instance_params: Any):
        super().__init__(instance=instance, preset=None if instance is not None else preset,
                         generator_params={**(generator_params or {}), **instance_params},
                         invalid_action=invalid_action, render_mode=render_mode)
        self.setup_knobs(serving_space(), episode_length, 7)
        self._defaults: dict[str, dict[str, Any]] = {}  # instance digest -> the defaults' metrics

    def start(self, instance: ServingKnobInstance, options: dict[str, Any]):
        self._ready = False
        key = instance.digest()
        if key not in self._defaults:
            m = evaluate(instance, self.space.defaults())
            if m["crashed"]:
                raise InvalidInstanceError(f"{instance.name}: the engine's default configuration fails: {m['error']}")
            self._defaults = {key: m}  # one workload at a time: instances change at every seedless reset
        default = self._defaults[key]
        self._g0 = float(default["slo_goodput_rps"])
        self._worst = self._g0
        self.begin(self._g0, self._obs(self.space.to_unit(self.space.defaults()), default))
        return self._last_obs.copy(), {"goodput": self._g0, "slo_goodput_rps": self._g0,
                                       "config": self.space.defaults()}

    def measure_step(self, config: dict[str, Any]):
        m = evaluate(self.instance, config)
        if m["crashed"]:
            goodput = self._worst
        else:
            goodput = float(m["slo_goodput_rps"])
            self._worst = min(self._worst, goodput)
        reward = goodput / self._g0 - 1.0 if self._g0 > 0 else goodput
        info = {"goodput": goodput, "crashed": m["crashed"], "error": m["error"],
                "slo_attainment": m.get("slo_attainment")}
        obs = self._obs(self.space.to_unit(config), m, goodput)
        return obs, reward, None if m["crashed"] else goodput, info

    def render(self):
        return f"step {self._steps}/{self.episode_length}" if self._ready else ""

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
