"""`sysgym/ParallelPlan-v0`: build a training plan one decision at a time.

Decisions, in order: tensor-parallel degree t, pipeline degree p (d follows from the GPU count), micro-batch
size b, interleaving v, sequence parallelism, recomputation (none / selective / full), optimizer sharding
(none / distributed optimizer / ZeRO-2 / ZeRO-3). Action k at a step picks the k-th candidate value of that
decision (Discrete(K), K = the largest candidate list). `action_masks()` (for sb3-contrib's MaskablePPO)
allows a value only when some legal plan that fits in memory completes the choices made so far, so every
masked episode ends with a feasible plan: the env enumerates the equal-stage plan space of the instance at
reset (vectorised, `space.py`) to know which prefixes can still be completed.

Reward: 0 until the last decision, then `best_time / iteration_time_s` of the plan as scored by
`estimate_training` (1.0 for the fastest plan of the space). `info` carries the plan and its metrics.

Observation (Box in [0, 1]): 6 instance features (log GPUs, log parameters, layers, log sequence length,
log global batch, memory budget), the step as one-hot (7), the values chosen so far (7, normalised by the
largest candidate) and the current mask (K).

Invalid actions: `invalid_action="raise"` (default) raises `InvalidActionError` naming the decision and the
value, leaving the state untouched; `"penalise"` makes the step a no-op with reward -1 and
`info["invalid_action"]` set, and truncates the episode after 3 x 7 steps (used for Gymnasium's checker).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sysgym.envs.parallel_plan.instance import PRESETS, PlanInstance, generate
from sysgym.envs.parallel_plan.space import evaluate_space, uniform_space
from sysgym.errors import InvalidActionError, InvalidInstanceError, UnknownNameError

DECISIONS = ("t", "p", "b", "v", "sp", "base", "opt")
LABELS = {"t": "tensor parallel", "p": "pipeline parallel", "b": "micro-batch", "v": "virtual stages",
          "sp": "sequence parallel", "base": "recompute", "opt": "optimizer sharding"}
N_FEATURES = 6


@dataclass
class PlanState:
    alive: np.ndarray  # rows of the space consistent with the choices so far (and feasible)
    chosen: np.ndarray  # candidate index per decision, -1 = not yet


class ParallelPlanEnv(gym.Env):
    metadata = {"render_modes": ["ansi"]}

    def __init__(self, instance: PlanInstance | None = None, preset: str = "tiny", invalid_action: str = "raise",
                 render_mode: str | None = None):
        if invalid_action not in ("raise", "penalise"):
            raise ValueError(f"invalid_action must be 'raise' or 'penalise', got {invalid_action!r}")
        if instance is None:
            if preset not in PRESETS:
                raise UnknownNameError("parallel_plan preset", preset, PRESETS)
            instance = generate(preset=preset)
        self.instance = instance
        self.invalid_action, self.render_mode = invalid_action, render_mode
        space = uniform_space(instance)
        out = evaluate_space(instance, space)
        feasible = out["feasible"]
        if not feasible.any():
            from sysgym.solvers.parallel_plan.common import infeasible_report

            raise InvalidInstanceError(f"{instance.name}: {infeasible_report(instance)['reason']}")
        self.space = space.subset(feasible)
        self.best_time = float(np.min(out["time"][feasible]))
        cfg = self.space.cfg
        opt_code = cfg["z"] * 2 + cfg["dopt"].astype(np.int64)
        self._columns = {"t": cfg["t"], "p": cfg["p"], "b": cfg["b"], "v": cfg["v"],
                         "sp": cfg["sp"].astype(np.int64), "base": cfg["base"], "opt": opt_code}
        self._cands = {k: np.unique(col) for k, col in self._columns.items()}
        # Column of candidate indices per decision, so a step is one comparison.
        self._col_idx = {k: np.searchsorted(self._cands[k], self._columns[k]) for k in DECISIONS}
        self.K = max(len(c) for c in self._cands.values())
        self.action_space = spaces.Discrete(self.K)
        self.observation_space = spaces.Box(0.0, 1.0, (N_FEATURES + 2 * len(DECISIONS) + self.K,), np.float32)
        self._features = self._instance_features()
        self.state: PlanState | None = None
        self.steps = 0

    def _instance_features(self) -> np.ndarray:
        inst = self.instance
        limit = inst.memory_limit_gib or inst.cluster.gpu.memory_gb
        f = [math.log2(inst.num_gpus) / 16, math.log10(inst.model.num_params()) / 13, inst.model.num_layers / 256,
             math.log2(inst.seq_len) / 20, math.log2(inst.global_batch) / 16, limit / 256]
        return np.clip(np.array(f, np.float32), 0.0, 1.0)

    # -- episode -----------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.state = PlanState(alive=np.ones(len(self.space), bool), chosen=np.full(len(DECISIONS), -1, np.int64))
        self.steps = 0
        return self._obs(), {"instance": self.instance.name, "best_time_s": self.best_time}

    @property
    def decision(self) -> int:
        return int(np.sum(self.state.chosen >= 0))

    def action_masks(self) -> np.ndarray:
        if self.state is None:
            raise RuntimeError("call reset() before action_masks()")
        mask = np.zeros(self.K, bool)
        k = self.decision
        if k >= len(DECISIONS):
            return mask
        col = self._col_idx[DECISIONS[k]][self.state.alive]
        mask[np.unique(col)] = True
        return mask

    def step(self, action):
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        k = self.decision
        if k >= len(DECISIONS):
            raise RuntimeError("episode is over (all decisions made); call reset()")
        a = int(action)
        name = DECISIONS[k]
        if not 0 <= a < self.K:
            return self._invalid(f"action {a} outside Discrete({self.K})")
        if not self.action_masks()[a]:
            if a >= len(self._cands[name]):
                why = f"{LABELS[name]} has only {len(self._cands[name])} candidate values"
            else:
                why = (f"{LABELS[name]} = {self._value(name, a)} has no legal plan that fits in memory with the "
                       f"choices made so far ({self._describe_prefix()})")
            return self._invalid(why)
        self.steps += 1
        self.state.alive &= self._col_idx[name] == a
        self.state.chosen[k] = a
        if k + 1 < len(DECISIONS):
            return self._obs(), 0.0, False, False, {}
        rows = np.flatnonzero(self.state.alive)
        plan = self.space.plan(int(rows[0]))
        est = self.instance.estimate(plan)
        reward = self.best_time / est.iteration_time_s
        info = {"plan": plan.to_dict(), "iteration_time_s": est.iteration_time_s, "feasible": est.feasible,
                "tflops_per_gpu": est.tflops_per_gpu, "memory_gib": est.memory_gib.total}
        return self._obs(), float(reward), True, False, info

    def current_plan(self):
        """The plan of a finished episode (None before all decisions are made)."""
        if self.state is None or self.decision < len(DECISIONS):
            return None
        return self.space.plan(int(np.flatnonzero(self.state.alive)[0]))

    def render(self):
        if self.state is None:
            return ""
        return f"decision {self.decision}/{len(DECISIONS)}: {self._describe_prefix() or '(none yet)'}"

    # -- internals -------------------------------------------------------------------------------------------
    def _value(self, name: str, idx: int):
        v = int(self._cands[name][idx])
        if name == "opt":
            return {0: "none", 1: "distributed optimizer", 4: "ZeRO-2", 6: "ZeRO-3"}.get(v, v)
        if name == "base":
            return ("none", "selective", "full")[v]
        if name == "sp":
            return bool(v)
        return v

    def _describe_prefix(self) -> str:
        return ", ".join(f"{LABELS[n]}={self._value(n, int(self.state.chosen[k]))}"
                         for k, n in enumerate(DECISIONS) if self.state.chosen[k] >= 0)

    def _invalid(self, reason: str):
        if self.invalid_action == "raise":
            raise InvalidActionError(f"ParallelPlan: {reason}")
        self.steps += 1
        return self._obs(), -1.0, False, self.steps >= 3 * len(DECISIONS), {"invalid_action": reason}

    def _obs(self) -> np.ndarray:
        k = self.decision
        step = np.zeros(len(DECISIONS), np.float32)
        if k < len(DECISIONS):
            step[k] = 1.0
        chosen = np.zeros(len(DECISIONS), np.float32)
        for j, name in enumerate(DECISIONS):
            if self.state.chosen[j] >= 0:
                vals = self._cands[name]
                chosen[j] = float(vals[self.state.chosen[j]]) / max(float(vals.max()), 1.0)
        mask = self.action_masks().astype(np.float32)
        return np.concatenate([self._features, step, chosen, mask]).astype(np.float32)
