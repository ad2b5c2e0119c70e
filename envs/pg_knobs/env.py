"""`sysgym/PgKnobs-v0`: CDBTune-style knob tuning of a real PostgreSQL as a continuous-control env.

Action: Box(-1, 1, (n,)) over the instance's n knobs; a = 2u - 1 for the knob's normalised coordinate u
(enums and booleans by equal buckets, wide numeric ranges on a log scale; see `knobs.Knob.from_unit`).
Each step applies the whole configuration through the family evaluator (restart when a restart-only knob
changed, warm-up, pgbench runs) — a step takes seconds of real time.

Observation: Box(0, 1) = the current knobs' u (n values), then CDBTune's internal metrics measured during
the step: per-second rates of `pg_stat_database` / `pg_stat_bgwriter` / `pg_stat_checkpointer` /
`pg_stat_wal` counters squashed by tanh(log1p(rate) / 12), the buffer hit ratio, and throughput and latency
relative to the defaults (x / (1 + x)).

Reward (CDBTune, Zhang et al. SIGMOD 2019, eq. 4-5): for throughput T and latency L, with D0 the change
against the defaults and Dp against the previous step,
r = ((1 + D0)^2 - 1) |1 + Dp| if D0 > 0 else -((1 - D0)^2 - 1) |1 - Dp|, summed with weights 0.5/0.5
(latency changes taken with the sign flipped). A crash scores as the worst throughput and latency seen so
far (OtterTune/LlamaTune) and `info["crashed"]` says why.

Real measurements are noisy, so the env is registered `nondeterministic=True`: the first `reset()` measures
the defaults once and later resets reuse that measurement (the same seed gives the same reset observation),
but steps are real runs. An action outside [-1, 1] or with NaN raises `InvalidActionError` by default;
`invalid_action="clip"` clips it instead.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sysgym.errors import InvalidActionError

from .evaluate import evaluate, space_for
from .instance import PgInstance, generate
from .server import PostgresServer

METRICS = ("db.xact_commit", "db.xact_rollback", "db.blks_read", "db.blks_hit", "db.tup_returned",
           "db.tup_fetched", "db.tup_inserted", "db.tup_updated", "db.tup_deleted", "db.temp_files",
           "db.temp_bytes", "db.deadlocks", "bgwriter.buffers_clean", "bgwriter.maxwritten_clean",
           "bgwriter.buffers_alloc", "checkpointer.num_timed", "checkpointer.num_requested",
           "checkpointer.buffers_written", "checkpointer.write_time", "checkpointer.sync_time", "wal.wal_records",
           "wal.wal_fpi", "wal.wal_bytes", "wal.wal_buffers_full")


def cdbtune_reward(delta0: float, delta_prev: float) -> float:
    if delta0 > 0:
        return ((1 + delta0) ** 2 - 1) * abs(1 + delta_prev)
    return -((1 - delta0) ** 2 - 1) * abs(1 - delta_prev)


class PgKnobsEnv(gym.Env):
    metadata = {"render_modes": ["ansi"]}

    def __init__(self, instance: PgInstance | None = None, preset: str = "small", episode_length: int = 10,
                 server: PostgresServer | None = None, invalid_action: str = "raise", render_mode: str | None = None,
                 **instance_params: Any):
        if invalid_action not in ("raise", "clip"):
            raise ValueError(f"invalid_action must be 'raise' or 'clip', got {invalid_action!r}")
        self.instance = instance if instance is not None else generate(seed=0, preset=preset, **instance_params)
        self.episode_length = int(episode_length)
        self.invalid_action, self.render_mode = invalid_action, render_mode
        self._own_server = server is None
        self.server = server if server is not None else PostgresServer()
        if not self.server.running:
            self.server.start()
        self.space = space_for(self.server, self.instance)
        n = len(self.space)
        self.action_space = spaces.Box(-1.0, 1.0, (n,), np.float32)
        self.observation_space = spaces.Box(0.0, 1.0, (n + len(METRICS) + 3,), np.float32)
        self._baseline: tuple[np.ndarray, float, float] | None = None
        self._steps = 0

    # -- episode -----------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.action_space.seed(seed)  # seeded random actions (sysgym.testing's rollouts sample the space)
        self.server.reset()
        if self._baseline is None:
            obs_metrics, m = self._measure(self.space.defaults(), seed_offset=0)
            if m["crashed"]:
                raise RuntimeError(f"the server's default configuration failed: {m['error']}")
            self._baseline = (obs_metrics, float(m["tps_mean"]), float(m["latency_ms_mean"]))
        metrics, t0, l0 = self._baseline
        self._prev = (t0, l0)
        self._worst = (t0, l0)
        self._u = self.space.to_unit(self.space.defaults())
        self._steps = 0
        self._last_obs = self._obs(self._u, metrics, t0, l0)
        return self._last_obs.copy(), {"tps": t0, "latency_ms": l0, "config": self.space.defaults()}

    def step(self, action):
        if self._baseline is None:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != self.action_space.shape or not np.all(np.isfinite(a)) or np.any(np.abs(a) > 1.0 + 1e-6):
            if self.invalid_action == "raise":
                raise InvalidActionError(f"PgKnobs: action must be {self.action_space.shape[0]} finite values in "
                                         f"[-1, 1], got {np.asarray(action).tolist()}")
            a = np.clip(np.nan_to_num(np.resize(a, self.action_space.shape), nan=0.0), -1.0, 1.0)
        u = (a + 1.0) / 2.0
        config = self.space.from_unit(u)
        self._steps += 1
        metrics_vec, m = self._measure(config, seed_offset=self._steps)
        _, t0, l0 = self._baseline
        if m["crashed"]:
            tps, lat = self._worst
        else:
            tps, lat = float(m["tps_mean"]), float(m["latency_ms_mean"])
            self._worst = (min(self._worst[0], tps), max(self._worst[1], lat))
        tp, lp = self._prev
        r_t = cdbtune_reward((tps - t0) / t0, (tps - tp) / tp)
        r_l = cdbtune_reward((l0 - lat) / l0, (lp - lat) / lp)
        reward = 0.5 * r_t + 0.5 * r_l
        self._prev = (tps, lat)
        self._u = self.space.to_unit(config)
        self._last_obs = self._obs(self._u, metrics_vec, tps, lat)
        info = {"tps": tps, "latency_ms": lat, "crashed": m["crashed"], "error": m["error"], "config": config,
                "restarted": m["restarted"], "trial_s": m["trial_s"], "tps_std": m.get("tps_std")}
        return self._last_obs.copy(), float(reward), False, self._steps >= self.episode_length, info

    def render(self):
        if self._baseline is None:
            return ""
        return f"step {self._steps}/{self.episode_length} tps {self._prev[0]:.0f} latency {self._prev[1]:.2f} ms"

    def close(self):
        if self._own_server and self.server is not None:
            self.server.stop()

    # -- internals ---------------------------------------------------------------------------------------
    def _measure(self, config: dict[str, Any], seed_offset: int) -> tuple[np.ndarray, dict[str, Any]]:
        before = self.server.internal_metrics()
        m = evaluate(self.instance, config, server=self.server, repetitions=self.instance.repetitions,
                     seed_offset=seed_offset)
        after = self.server.internal_metrics() if self.server.is_alive() else before
        span = max(float(m.get("trial_s") or 1.0), 1e-3)
        rates = np.array([max(after.get(k, 0.0) - before.get(k, 0.0), 0.0) / span for k in METRICS])
        squashed = np.tanh(np.log1p(rates) / 12.0)
        hit = max(after.get("db.blks_hit", 0) - before.get("db.blks_hit", 0), 0.0)
        read = max(after.get("db.blks_read", 0) - before.get("db.blks_read", 0), 0.0)
        ratio = hit / (hit + read) if hit + read > 0 else 1.0
        return np.concatenate([squashed, [ratio]]), m

    def _obs(self, u: np.ndarray, metrics: np.ndarray, tps: float, lat: float) -> np.ndarray:
        _, t0, l0 = self._baseline
        rel_t, rel_l = tps / t0, lat / l0
        vec = np.concatenate([u, metrics, [rel_t / (1 + rel_t), rel_l / (1 + rel_l)]])
        return np.clip(np.nan_to_num(vec, nan=0.0, posinf=1.0), 0.0, 1.0).astype(np.float32)
