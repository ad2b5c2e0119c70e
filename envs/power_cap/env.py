"""`sysgym/PowerCap-v0`: set every server's GPU clock level once per control interval (POLCA's control loop).

A step sets one server's clock level for the coming control interval (`Discrete(num_levels)`: an index into
`instance.levels`, 0 = uncapped); servers are decided in order, and once the last one has its level the row runs
the interval (`instance.interval_s` of simulated time). One decision per step keeps the action space small and
works with every agent the kit trains (an episode is `num_intervals x num_servers` steps).

Observation (Dict, every entry in [0, 1]):
* `servers` (max_servers, 9): present, last interval's clock (fraction of maximum), average power / the server's
  TDP, busy share of the interval, queued requests (log10(1 + x) / 3), running requests / max_num_seqs, KV cache
  in use / capacity, the server being decided, the clock already chosen for the coming interval (0 if not yet).
  Padding rows are zero.
* `row` (4,): last interval's row power / budget / 2, the budget / nameplate, elapsed share of the horizon, the
  share of intervals so far over budget.

Reward (on the step that runs an interval; 0 on the others): minus the cost accrued in the interval:
`overbudget_weight / num_intervals` when the interval's row power exceeds the budget, and 1 / num_requests for
every request that finished this interval outside its SLOs; at the horizon every unfinished request counts as a
miss. The return is minus the evaluator's `cost`, and
`decisions()` is the cap schedule the evaluator replays. Invalid actions follow the kit (`penalise` by default).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

from sysgym.env import SysgymEnv
from sysgym.envs.power_cap.generator import LEVELS, PRESETS
from sysgym.envs.power_cap.instance import PowerCapInstance
from sysgym.envs.power_cap.simulator import Row
from sysgym.errors import InvalidArgumentError

SERVER_FEATURES, ROW_FEATURES = 9, 4


class PowerCapEnv(SysgymEnv):
    family = "power_cap"
    # Every num_servers-th step simulates one interval of every server's serving iterations (a few ms of CPU on
    # `tiny`), so the conformance rollout is shorter than the default thousand steps (7 whole tiny episodes).
    check_steps = 600

    def __init__(self, instance: PowerCapInstance | None = None, preset: str = "tiny",
                 max_servers: int | None = None, num_levels: int | None = None, generator_params: dict | None = None,
                 invalid_action: str = "penalise", render_mode: str | None = None):
        super().__init__(instance=instance, preset=None if instance is not None else preset,
                         generator_params=generator_params, invalid_action=invalid_action, render_mode=render_mode)
        if instance is not None:
            default_s, default_l = instance.num_servers, instance.num_levels
        else:
            params = {**PRESETS[preset], **self.gen_params}
            default_s, default_l = int(params["num_servers"]), len(params.get("levels", LEVELS))
        self.max_servers = int(max_servers or default_s)
        self.num_levels = int(num_levels or default_l)
        if self.max_servers <= 0 or self.num_levels <= 0:
            raise InvalidArgumentError(f"max_servers and num_levels must be positive, got {self.max_servers}, "
                                       f"{self.num_levels}")
        self.action_space = spaces.Discrete(self.num_levels)
        self.observation_space = spaces.Dict({
            "servers": spaces.Box(0.0, 1.0, (self.max_servers, SERVER_FEATURES), np.float32),
            "row": spaces.Box(0.0, 1.0, (ROW_FEATURES,), np.float32),
        })
        self.row: Row | None = None

    # -- episode ------------------------------------------------------------------------------------------
    def start(self, inst: PowerCapInstance, options: dict[str, Any]):
        if inst.num_servers > self.max_servers or inst.num_levels != self.num_levels:
            raise InvalidArgumentError(f"instance {inst.name} has {inst.num_servers} servers and {inst.num_levels} "
                                       f"levels; this env is sized for at most {self.max_servers} servers and "
                                       f"{self.num_levels} levels (max_servers=, num_levels=)")
        self.row = Row(inst)
        self.server = 0  # the server being decided
        self.pending = np.zeros(inst.num_servers, np.int64)
        self._cost_seen = 0.0
        return self._obs(), self._info()

    def cost_so_far(self) -> float:
        """The evaluator's cost of what is decided so far (unfinished requests count once the horizon is over)."""
        row, inst = self.row, self.instance
        k = row.interval
        over = int((row.power[:k].sum(axis=1) > inst.budget_w).sum())
        _, finish = row.request_times()
        decided = np.isfinite(finish) if not row.done else np.ones(inst.num_requests, bool)
        misses = int((decided & ~row.slo_met()).sum())
        return misses / max(inst.num_requests, 1) + inst.overbudget_weight * over / inst.num_intervals

    def step(self, action):
        if self.row is None:
            raise RuntimeError("call reset() before step()")
        if self.row.done:
            raise RuntimeError("the episode is over; call reset()")
        a, why = self.discrete_action(action)
        if why is not None:
            return self.invalid(why, self._obs(), self._info())
        self.pending[self.server] = a
        self.server += 1
        if self.server < self.instance.num_servers:
            return self._obs(), 0.0, False, False, self._info()
        self.row.step(self.pending)
        self.server = 0
        self.pending = np.zeros_like(self.pending)
        cost = self.cost_so_far()
        reward = -(cost - self._cost_seen)
        self._cost_seen = cost
        return self._obs(), float(reward), self.row.done, False, self._info()

    # -- the contract with evaluators and agents ----------------------------------------------------------
    def decisions(self) -> list[list[int]]:
        """The cap schedule so far: one level per interval and server."""
        return [] if self.row is None else self.row.levels[:self.row.interval].tolist()

    def layout_kwargs(self) -> dict[str, Any]:
        return {"max_servers": int(self.max_servers), "num_levels": int(self.num_levels)}

    def snapshot(self) -> dict[str, np.ndarray]:
        row = self.row
        return {"interval": np.array(row.interval), "levels": row.levels.copy(), "power": row.power.copy(),
                "server": np.array(self.server), "pending": self.pending.copy(),
                "t": np.array([s.t for s in row.servers]),
                "generated": np.concatenate([s.generated for s in row.servers])}

    # -- observation --------------------------------------------------------------------------------------
    def _obs(self) -> dict[str, np.ndarray]:
        row, inst = self.row, self.instance
        k = row.interval
        srv = np.zeros((self.max_servers, SERVER_FEATURES), np.float32)
        cap = inst.kv_capacity_tokens()
        levels = np.asarray(inst.levels)
        for s, server in enumerate(row.servers):
            srv[s, 0] = 1.0
            srv[s, 1] = levels[row.levels[k - 1, s]] if k else 1.0
            srv[s, 2] = row.power[k - 1, s] / inst.server_tdp_w if k else 0.0
            srv[s, 3] = row.busy[k - 1, s] if k else 0.0
            srv[s, 4] = math.log10(1.0 + server.queued) / 3.0
            srv[s, 5] = server.running / inst.max_num_seqs
            srv[s, 6] = server.kv_used / cap
            srv[s, 8] = levels[self.pending[s]] if s < self.server else 0.0
        srv[self.server, 7] = 1.0
        row_power = row.power[k - 1].sum() if k else 0.0
        over = (row.power[:k].sum(axis=1) > inst.budget_w).mean() if k else 0.0
        feats = np.array([row_power / inst.budget_w / 2.0, inst.budget_w / inst.nameplate_w,
                          k / inst.num_intervals, over], np.float32)
        return {"servers": np.clip(srv, 0, 1), "row": np.clip(feats, 0, 1)}

    def _info(self) -> dict[str, Any]:
        row = self.row
        k = row.interval
        return {"interval": k, "row_power_w": float(row.power[k - 1].sum()) if k else 0.0,
                "budget_w": self.instance.budget_w, "cost_so_far": self._cost_seen, "instance": self.instance.name}

    def render(self):
        if self.row is None:
            return ""
        info = self._info()
        return (f"interval {info['interval']}/{self.instance.num_intervals} row {info['row_power_w']:.0f} W of "
                f"{info['budget_w']:.0f} W budget, cost so far {info['cost_so_far']:.4f}")
