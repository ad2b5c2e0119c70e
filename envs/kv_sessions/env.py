"""`sysgym/SessionKv-v0`: when a turn ends, keep its KV in the retention pool for the session's next turn, or drop it.

An episode replays one multi-turn workload (`sysgym.envs.kv_sessions`, preset `small` unless given) through the
retention pool of `sysgym.envs.kv_sessions.simulator`. At every offer where the pool could hold the finished
turn's KV (`can_admit`: its session goes on and it fits), the agent chooses `1` (retain) or `0` (drop): the
admission decision of a retention policy. What happens to what is retained (its expiry and, when the pool
overflows, which entry leaves) follows the `pool` policy (default `lru`: no expiry, least recently retained
first); `pool` is a policy name (`lru`, `lfu`, `ttl`, `continuum`, `prefix`, `belady`, `none`) or object, found
through the registry, and `prefix` switches to 16-token blocks shared by a prefix group.

Observation (Box, 7 values in [0, 1]): the turn's context / capacity, pool use / capacity, entries (or blocks)
held / 32, whether the gap that follows is a tool call, its tool's mean duration / 60 s (0 for user think time),
turn index / 32, share of the episode's turns done. Reward: minus the recomputed context tokens / 1000 of the
turns that arrive before the next decision; `info["recompute_tokens"]` counts them all, and at the end it equals
the evaluator's `recompute_tokens` for `decisions()`, the episode's held items.

Invalid actions (the kit's vocabulary, `sysgym.env`): anything but 0 or 1 is refused with the penalty (default) or
`InvalidActionError` (`invalid_action="raise"`); an episode is truncated after 10 x turns steps.

`PolicyAgent(policy, env)` drives a named policy's admission decisions in this env: with `pool=` the same policy,
an episode's holdings and metrics equal the simulator's (`simulate(workload, policy)`).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from sysgym.env import SysgymEnv
from sysgym.envs.kv_sessions.generator import TOOLS
from sysgym.envs.kv_sessions.instance import SessionWorkload
from sysgym.envs.kv_sessions.simulator import Pool, RetentionPolicy, events, make_policy, make_pool
from sysgym.errors import InvalidInstanceError

OBS = 7


class SessionKvEnv(SysgymEnv):
    family = "kv_sessions"

    def __init__(self, instance: SessionWorkload | None = None, preset: str = "small", kind: str | None = None,
                 num_sessions: int | None = None, capacity: int | None = None, pool: str | RetentionPolicy = "lru",
                 generator_params: dict | None = None, invalid_action: str = "penalise",
                 render_mode: str | None = None):
        shape = {k: v for k, v in {"kind": kind, "num_sessions": num_sessions, "capacity": capacity}.items()
                 if v is not None}
        super().__init__(instance=instance, preset=None if instance is not None else preset,
                         generator_params={**(generator_params or {}), **shape}, invalid_action=invalid_action,
                         render_mode=render_mode)
        self.pool_policy = make_policy(pool)
        self.action_space = spaces.Discrete(2)
        self.observation_space = spaces.Box(0.0, 1.0, (OBS,), np.float32)
        self.pool: Pool | None = None
        self.pending: int | None = None

    # -- episode -----------------------------------------------------------------------------------
    def start(self, w: SessionWorkload, options: dict[str, Any]):
        self.w = w
        self.pool = make_pool(w, self.pool_policy.granularity)
        self.events = events(w)
        self.pos = 0
        self.done_turns = 0
        self.steps = 0
        self._advance()
        if self.pending is None:
            raise InvalidInstanceError(f"workload {w.name} asks for no retention decision (no turn's KV could be "
                                       "kept for later); use more sessions or a larger capacity")
        return self._obs(), self._info()

    def _advance(self) -> float:
        """Process events up to the next decision; returns the reward of the requests processed."""
        pool = self.pool
        reward = 0.0
        self.pending = None
        while self.pos < len(self.events):
            t, _, kind, i = self.events[self.pos]
            self.pos += 1
            if kind == "request":
                reuse = pool.request(i)
                self.done_turns += 1
                reward -= (int(self.w.ctx_before[i]) - reuse) / 1000.0
            else:
                pool.expire(t)
                if pool.can_admit(i):
                    self.pending = i
                    return reward
        return reward

    def step(self, action):
        if self.pool is None:
            raise RuntimeError("call reset() before step()")
        if self.pending is None:
            raise RuntimeError("episode is over; call reset()")
        a, why = self.discrete_action(action) if np.ndim(action) == 0 else (None, "not a scalar")
        if why is not None:
            if self.invalid_action != "raise":
                self.steps += 1
            return self.invalid(f"action {action!r} is not 0 (drop) or 1 (retain)", self._obs(), self._info(),
                                truncated=self.steps >= 10 * self.w.num_turns)
        self.steps += 1
        if a == 1:
            self.pool.admit(self.pending, self.pool_policy)
        reward = self._advance()
        terminated = self.pending is None
        return self._obs(), float(reward), terminated, False, self._info()

    def action_masks(self) -> np.ndarray:
        return np.ones(2, bool)

    def decisions(self) -> list[tuple[int, int, int, float, float]]:
        """The episode's held items (entries still held are closed as at the end of the workload)."""
        if self.pool is None:
            raise RuntimeError("call reset() before decisions()")
        return list(self.pool.held_items())

    def items(self) -> list:
        """The old name of `decisions()`."""
        return self.decisions()

    def snapshot(self) -> dict[str, np.ndarray]:
        pool = self.pool
        return {"mask": self.action_masks(), "pos": np.array(self.pos), "used": np.array(pool.used),
                "count": np.array(pool.count()), "reuse": pool.reuse.copy(), "items": np.array(len(pool.items)),
                "pending": np.array(-1 if self.pending is None else self.pending)}

    # -- internals ---------------------------------------------------------------------------------
    def _obs(self) -> np.ndarray:
        w, pool = self.w, self.pool
        o = np.zeros(OBS, np.float32)
        if self.pending is not None:
            i = self.pending
            kind = w.gap_kind[i]
            o[0] = w.ctx_after(i) / max(1, w.capacity)
            o[3] = float(kind in TOOLS)
            o[4] = min(1.0, TOOLS.get(kind, 0.0) / 60.0)
            o[5] = min(1.0, int(w.turn[i]) / 32.0)
        o[1] = pool.used / max(1, w.capacity)
        o[2] = min(1.0, pool.count() / 32.0)
        o[6] = self.done_turns / max(1, w.num_turns)
        return np.clip(o, 0.0, 1.0)

    def _info(self) -> dict[str, Any]:
        return {"recompute_tokens": self.pool.recompute_tokens(), "turns_done": self.done_turns,
                "pool_used": self.pool.used, "instance": self.w.name}

    def render(self):
        return "" if self.pool is None else (f"turns {self.done_turns}/{self.w.num_turns} pool "
                                             f"{self.pool.used}/{self.w.capacity} recompute "
                                             f"{self.pool.recompute_tokens()}")


class PolicyAgent:
    """A retention policy deciding `SessionKv-v0`'s admissions (`act(observation, mask) -> 0 | 1`): the same
    `admit` call the simulator makes, on the env's pool."""

    def __init__(self, policy: str | RetentionPolicy, env: Any):
        self.policy = make_policy(policy)
        self.env = env.unwrapped

    def act(self, observation: Any = None, mask: Any = None) -> int:
        env = self.env
        if env.pending is None:
            raise RuntimeError("the env awaits no decision; reset it")
        return int(bool(self.policy.admit(env.pending, env.pool)))
