"""`sysgym/ParallelPlan-v0`: build a training plan one decision at a time.

Decisions, in order: tensor-parallel degree t, context-parallel degree c, pipeline degree p (d follows from
the GPU count), placement (on a heterogeneous cluster: Megatron's rank order or an assignment of stages to node
groups), micro-batch size b, interleaving v, sequence parallelism, recomputation (none / selective / full),
optimizer sharding (none / distributed optimizer / ZeRO-2 / ZeRO-3). A decision with one candidate (c without
FlashAttention, the placement on a homogeneous cluster) still takes a step, its only action. Action k at a
step picks the k-th candidate value of that decision (Discrete(K), K = the largest candidate list, or
`max_candidates`). `action_masks()` (for sb3-contrib's MaskablePPO) allows a value only when some legal plan
that fits in memory completes the choices made so far, so every masked episode ends with a feasible plan: the
env enumerates the equal-stage plan space of the instance (vectorised, `space.py`) to know which prefixes can
still be completed.

The instance: `instance=`, else the generator's `preset=` (with `generator_params=`), made when the env is
built, because the spaces depend on it (K). `reset(options={"instance": other})` plays another instance of
the family whose candidate lists fit in K (the plan space is enumerated again for it).

Reward: 0 until the last decision, then `best_time / iteration_time_s` of the plan as scored by
`estimate_training` (1.0 for the fastest plan of the space). `info` carries the plan and its metrics.

Observation (Box in [0, 1]): 6 instance features (log GPUs, log parameters, layers, log sequence length,
log global batch, memory budget), the step as one-hot (9), the values chosen so far (9, normalised by the
largest candidate) and the current mask (K).

Invalid actions (the kit's vocabulary, `sysgym.env`): `invalid_action="penalise"` (default) makes the step a
no-op with reward -1 and `info["invalid_action"]` naming the decision and the value, and truncates the episode
after 3 x 9 steps; `"raise"` raises `InvalidActionError` with that message, leaving the state untouched.

`decisions()` is the finished plan as `TrainingPlan.to_dict()`, what `parallel_plan.evaluate` scores (None
before the last decision).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from sysgym.env import SysgymEnv, check_invalid_action_mode
from sysgym.envs.parallel_plan.generator import GENERATOR
from sysgym.envs.parallel_plan.instance import PlanInstance
from sysgym.envs.parallel_plan.space import evaluate_space, infeasible_report, uniform_space
from sysgym.errors import InvalidArgumentError, InvalidInstanceError, SysgymError

DECISIONS = ("t", "c", "p", "place", "b", "v", "sp", "base", "opt")
LABELS = {"t": "tensor parallel", "c": "context parallel", "p": "pipeline parallel", "place": "placement",
          "b": "micro-batch", "v": "virtual stages", "sp": "sequence parallel", "base": "recompute",
          "opt": "optimizer sharding"}
N_FEATURES = 6


@dataclass
class PlanState:
    alive: np.ndarray  # rows of the space consistent with the choices so far (and feasible)
    chosen: np.ndarray  # candidate index per decision, -1 = not yet


@dataclass
class _Table:
    """The feasible equal-stage plans of one instance, as the env's decisions see them."""

    instance: PlanInstance
    space: Any  # space.Space of the feasible plans
    best_time: float
    cands: dict[str, np.ndarray]  # candidate values per decision
    col_idx: dict[str, np.ndarray]  # per plan row, the index of its value among the decision's candidates

    @property
    def width(self) -> int:
        return max(len(c) for c in self.cands.values())


def plan_table(instance: PlanInstance) -> _Table:
    space = uniform_space(instance)
    out = evaluate_space(instance, space)
    feasible = out["feasible"]
    if not feasible.any():
        raise InvalidInstanceError(f"{instance.name}: {infeasible_report(instance)['reason']}")
    space = space.subset(feasible)
    cfg = space.cfg
    opt_code = cfg["z"] * 2 + cfg["dopt"].astype(np.int64)
    columns = {"t": cfg["t"], "c": cfg["c"], "p": cfg["p"], "place": cfg["pl"], "b": cfg["b"], "v": cfg["v"],
               "sp": cfg["sp"].astype(np.int64), "base": cfg["base"], "opt": opt_code}
    cands = {k: np.unique(col) for k, col in columns.items()}
    # Column of candidate indices per decision, so a step is one comparison.
    col_idx = {k: np.searchsorted(cands[k], columns[k]) for k in DECISIONS}
    return _Table(instance, space, float(np.min(out["time"][feasible])), cands, col_idx)


class ParallelPlanEnv(SysgymEnv):
    family = "parallel_plan"

    def __init__(self, instance: PlanInstance | None = None, preset: str = "tiny",
                 generator_params: dict | None = None, max_candidates: int | None = None,
                 invalid_action: str = "penalise", render_mode: str | None = None):
        super().__init__(instance=instance, preset=None if instance is not None else preset,
                         generator_params=generator_params, invalid_action=invalid_action, render_mode=render_mode)
        if instance is None:
            # The spaces depend on the instance, so it is made now and every reset plays it (the generator is
            # deterministic: the seed only names it).
            instance = GENERATOR(seed=0, preset=preset, **self.gen_params)
            self.fixed_instance = instance
        self.instance = instance
        self._table = plan_table(instance)
        width = self._table.width
        if max_candidates is not None and (isinstance(max_candidates, bool) or
                                           not hasattr(type(max_candidates), "__index__") or max_candidates < width):
            raise InvalidArgumentError(f"max_candidates={max_candidates!r}: {instance.name} needs an integer "
                                       f">= {width} (its longest candidate list)")
        self.K = int(max_candidates or width)
        self.action_space = spaces.Discrete(self.K)
        check_invalid_action_mode(self.invalid_action, self.action_space)  # "clip" has no meaning here
        self.observation_space = spaces.Box(0.0, 1.0, (N_FEATURES + 2 * len(DECISIONS) + self.K,), np.float32)
        self._features = self._instance_features()
        self.state: PlanState | None = None
        self.steps = 0

    # The plan space of the instance being played.
    @property
    def space(self):
        return self._table.space

    @property
    def best_time(self) -> float:
        return self._table.best_time

    def actions_for(self, k: int) -> list[int]:
        """The actions, one per decision, that build plan `k` of `space` (e.g. to follow a known plan)."""
        return [int(self._table.col_idx[name][k]) for name in DECISIONS]

    def _instance_features(self) -> np.ndarray:
        inst = self.instance
        limit = inst.memory_limit_gib or inst.cluster.gpu.memory_gb
        f = [math.log2(inst.num_gpus) / 16, math.log10(inst.model.num_params()) / 13, inst.model.num_layers / 256,
             math.log2(inst.seq_len) / 20, math.log2(inst.global_batch) / 16, limit / 256]
        return np.clip(np.array(f, np.float32), 0.0, 1.0)

    # -- episode -----------------------------------------------------------------------------------------------
    def start(self, instance: PlanInstance, options: dict[str, Any]):
        old = self._table.instance
        if instance is not old and instance.digest() != old.digest():
            try:
                table = plan_table(instance)
                if table.width > self.K:
                    raise InvalidArgumentError(f"{instance.name} has {table.width} candidate values for one "
                                               f"decision; this env has K={self.K} (build it with "
                                               f"max_candidates={table.width})")
            except SysgymError:
                self.instance = old  # the env keeps the instance it has
                raise
            self._table = table
            self._features = self._instance_features()
        self.state = PlanState(alive=np.ones(len(self.space), bool), chosen=np.full(len(DECISIONS), -1, np.int64))
        self.steps = 0
        return self._obs(), {"instance": instance.name, "best_time_s": self.best_time}

    def decisions(self) -> dict[str, Any] | None:
        plan = self.current_plan()
        return None if plan is None else plan.to_dict()

    def layout_kwargs(self) -> dict[str, Any]:
        return {"max_candidates": int(self.K)}

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
        col = self._table.col_idx[DECISIONS[k]][self.state.alive]
        mask[np.unique(col)] = True
        return mask

    def step(self, action):
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        k = self.decision
        if k >= len(DECISIONS):
            raise RuntimeError("episode is over (all decisions made); call reset()")
        a, why = self.discrete_action(action)
        if why is not None:
            return self._invalid(why)
        name = DECISIONS[k]
        if not self.action_masks()[a]:
            if a >= len(self._table.cands[name]):
                why = f"{LABELS[name]} has only {len(self._table.cands[name])} candidate values"
            else:
                why = (f"{LABELS[name]} = {self._value(name, a)} has no legal plan that fits in memory with the "
                       f"choices made so far ({self._describe_prefix()})")
            return self._invalid(why)
        self.steps += 1
        self.state.alive &= self._table.col_idx[name] == a
        self.state.chosen[k] = a
        if k + 1 < len(DECISIONS):
            return self._obs(), 0.0, False, False, {}
        plan = self.current_plan()
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
        v = int(self._table.cands[name][idx])
        if name == "opt":
            return {0: "none", 1: "distributed optimizer", 4: "ZeRO-2", 6: "ZeRO-3"}.get(v, v)
        if name == "base":
            return ("none", "selective", "full")[v]
        if name == "sp":
            return bool(v)
        if name == "place":
            place = self.space.placements[v]
            return "rank order" if place is None else "".join(map(str, place))
        return v

    def _describe_prefix(self) -> str:
        return ", ".join(f"{LABELS[n]}={self._value(n, int(self.state.chosen[k]))}"
                         for k, n in enumerate(DECISIONS) if self.state.chosen[k] >= 0)

    def _invalid(self, reason: str):
        # A refused action changes no choice but uses a step: 3 x 7 steps truncate an episode that does not end.
        if self.invalid_action != "raise":
            self.steps += 1
        return self.invalid(reason, self._obs(), truncated=self.steps >= 3 * len(DECISIONS))

    def _obs(self) -> np.ndarray:
        k = self.decision
        step = np.zeros(len(DECISIONS), np.float32)
        if k < len(DECISIONS):
            step[k] = 1.0
        chosen = np.zeros(len(DECISIONS), np.float32)
        for j, name in enumerate(DECISIONS):
            if self.state.chosen[j] >= 0:
                vals = self._table.cands[name]
                chosen[j] = (float(self.state.chosen[j]) if name == "place" else float(vals[self.state.chosen[j]])) \
                    / max(float(len(vals) - 1 if name == "place" else vals.max()), 1.0)
        mask = self.action_masks().astype(np.float32)
        return np.concatenate([self._features, step, chosen, mask]).astype(np.float32)
