"""`sysgym/SessionKv-v0`: at each turn end, keep the session's KV in the retention pool or drop it.

An episode replays one seeded multi-turn workload (`sysgym.envs.kv_eviction.sessions`). At the end of
every turn that has a next turn (and fits the pool), the agent chooses `1` (retain; least recently
retained entries are evicted to make room) or `0` (drop). Observation (Box, 7 values in [0, 1]): entry
size / capacity, pool use / capacity, entries held / 32, the gap that follows is a tool call, its tool's
mean duration / 60 s (0 for user think time), turn index / 32, share of the episode's turns done.
Reward: minus the recompute tokens / 1000 of the turns that arrive before the next decision (a missed
context is prefilled again). `items()` returns the holdings for `evaluate_sessions`, whose
`recompute_tokens` equals `info["recompute_tokens"]` at the end (minus the return x 1000 covers the turns
after the first decision).
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sysgym.envs.kv_eviction.sessions import TOOLS, _EntryCache, _events, generate_sessions
from sysgym.errors import InvalidActionError


class SessionKvEnv(gym.Env):
    metadata = {"render_modes": ["ansi"]}

    def __init__(self, kind: str = "agent", num_sessions: int = 8, capacity: int = 8000,
                 invalid_action: str = "raise", render_mode: str | None = None, **workload: Any):
        if invalid_action not in ("raise", "penalise"):
            raise ValueError(f"invalid_action must be 'raise' or 'penalise', got {invalid_action!r}")
        self.kind, self.num_sessions, self.capacity = kind, num_sessions, capacity
        self.workload_params = workload
        self.invalid_action, self.render_mode = invalid_action, render_mode
        self.action_space = spaces.Discrete(2)
        self.observation_space = spaces.Box(0.0, 1.0, (7,), np.float32)
        self.cache: _EntryCache | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        if "workload" in options:
            w = options["workload"]
        else:
            w = generate_sessions(seed=int(self.np_random.integers(2**31)), kind=self.kind,
                                  num_sessions=self.num_sessions, capacity=self.capacity, **self.workload_params)
        self.w = w
        self.cache = _EntryCache(w, "lru", np.inf, 1.0)
        self.events = _events(w)
        self.nxt = w.next_turn()
        self.pos = 0
        self.recompute = 0
        self.done_turns = 0
        self.steps = 0
        self.pending: int | None = None
        self._advance()
        if self.pending is None:
            raise ValueError(f"workload {w.name} asks for no retention decision (no session has two turns that "
                             "fit the pool); use more sessions or a larger capacity")
        return self._obs(), self._info()

    def _advance(self) -> float:
        """Process events up to the next decision; returns the reward of the requests processed."""
        w, c = self.w, self.cache
        reward = 0.0
        self.pending = None
        while self.pos < len(self.events):
            _, _, kind, i = self.events[self.pos]
            self.pos += 1
            if kind == "request":
                s = int(w.session[i])
                reuse = c.entries[s]["size"] if s in c.entries else 0
                c.request(i)
                miss = int(w.ctx_before[i]) - reuse
                self.recompute += miss
                self.done_turns += 1
                reward -= miss / 1000.0
            else:
                c._expire(float(w.end[i]))
                if self.nxt[i] >= 0 and w.ctx_after(i) <= w.capacity:
                    self.pending = i
                    return reward
        return reward

    def step(self, action):
        if self.cache is None:
            raise RuntimeError("call reset() before step()")
        if self.pending is None:
            raise RuntimeError("episode is over; call reset()")
        a = int(action) if np.ndim(action) == 0 else -1
        self.steps += 1
        if a not in (0, 1):
            if self.invalid_action == "raise":
                raise InvalidActionError(f"SessionKv: action {action!r} is not 0 (drop) or 1 (retain)")
            return self._obs(), -1.0, False, self.steps >= 10 * self.w.num_turns, {**self._info(),
                                                                                  "invalid_action": str(action)}
        if a == 1:
            self.cache.offer(self.pending)
        reward = self._advance()
        terminated = self.pending is None
        return self._obs(), float(reward), terminated, False, self._info()

    def action_masks(self) -> np.ndarray:
        return np.ones(2, bool)

    def items(self) -> list:
        """The episode's holdings (call at the end of the episode)."""
        return self.cache.finish()

    def _obs(self) -> np.ndarray:
        w, c = self.w, self.cache
        o = np.zeros(7, np.float32)
        if self.pending is not None:
            i = self.pending
            kind = w.gap_kind[i]
            o[0] = w.ctx_after(i) / max(1, w.capacity)
            o[3] = float(kind in TOOLS)
            o[4] = min(1.0, TOOLS.get(kind, 0.0) / 60.0)
            o[5] = min(1.0, int(w.turn[i]) / 32.0)
        o[1] = c.used / max(1, w.capacity)
        o[2] = min(1.0, len(c.entries) / 32.0)
        o[6] = self.done_turns / max(1, w.num_turns)
        return np.clip(o, 0.0, 1.0)

    def _info(self) -> dict[str, Any]:
        return {"recompute_tokens": self.recompute, "turns_done": self.done_turns, "pool_used": self.cache.used}

    def render(self):
        return "" if self.cache is None else (f"turns {self.done_turns}/{self.w.num_turns} pool "
                                              f"{self.cache.used}/{self.w.capacity} recompute {self.recompute}")
