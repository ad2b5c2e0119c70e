"""`sysgym/PgKnobs-v0`: CDBTune-style knob tuning of a real PostgreSQL as a continuous-control env.

Action: Box(-1, 1, (n,)) over the instance's n knobs; a = 2u - 1 for the knob's normalised coordinate u
(enums and booleans by equal buckets, wide numeric ranges on a log scale; see `sysgym.envs.knob_space.Knob`).
Each step applies the whole configuration through the family evaluator (restart when a restart-only knob
changed, warm-up, pgbench runs) — a step takes seconds of real time.

Observation: Box(0, 1) = the current knobs' u (n values), then CDBTune's internal metrics measured during
the step: per-second rates of `pg_stat_database` / `pg_stat_bgwriter` / `pg_stat_checkpointer` /
`pg_stat_wal` counters squashed by tanh(log1p(rate) / 12), the buffer hit ratio, and throughput and latency
relative to the defaults (x / (1 + x)). The reset observation is the defaults' u with nothing measured yet
(rates 0, hit ratio 1, relative throughput and latency 1/2), so the same seed gives the same first observation.

Reward (CDBTune, Zhang et al. SIGMOD 2019, eq. 4-5): for throughput T and latency L, with D0 the change
against the defaults and Dp against the previous step,
r = ((1 + D0)^2 - 1) |1 + Dp| if D0 > 0 else -((1 - D0)^2 - 1) |1 - Dp|, summed with weights 0.5/0.5
(latency changes taken with the sign flipped). A crash scores as the worst throughput and latency seen so
far (OtterTune/LlamaTune) and `info["crashed"]` says why.

`decisions()` is the best configuration the episode measured (the defaults until a step beats them): what a
tuner returns and what `pg_knobs.evaluate` scores; `info["tps_mean"]` is its measured throughput, `info["tps"]`
this step's (the reward's). Invalid actions, as in `sysgym.envs.knob_env`: refused (reward -1, the step still
counts) unless `invalid_action="clip"` clips finite out-of-range values.

Real measurements are noisy, so the env is registered `nondeterministic=True`. The defaults are measured once
per measurement protocol (the first `reset()` of an instance with that protocol) and reused.

The env starts its own PostgreSQL server (stopped by `close()`) unless given one (`server=`), which it then
leaves running. The default preset is `tiny` (3 knobs, 1-second runs).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from sysgym.envs.knob_env import KnobEnv
from sysgym.errors import InvalidArgumentError

from .errors import PostgresError
from .evaluate import evaluate, space_for
from .generator import GENERATOR
from .instance import PgInstance
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


class PgKnobsEnv(KnobEnv):
    family = "pg_knobs"
    objective = "tps_mean"
    # Every step is a real pgbench measurement on a live server (apply, often a restart, the instance's runs:
    # about 1-2 s on the tiny preset), so the conformance suite's random rollout takes 20 steps, not 1,000.
    check_steps = 20

    def __init__(self, instance: PgInstance | None = None, preset: str = "tiny", episode_length: int = 10,
                 server: PostgresServer | None = None, invalid_action: str = "penalise",
                 generator_params: dict | None = None, render_mode: str | None = None, **instance_params: Any):
        super().__init__(instance=instance, preset=None if instance is not None else preset,
                         generator_params={**(generator_params or {}), **instance_params},
                         invalid_action=invalid_action, render_mode=render_mode)
        # The knob subset fixes the action space: the instance's, else the preset's (generated here, which also
        # checks the generator parameters before a server starts).
        template = instance if instance is not None else GENERATOR(seed=0, preset=preset, **self.gen_params)
        self.knobs = template.knobs
        if int(episode_length) < 1:
            raise InvalidArgumentError(f"episode_length must be >= 1, got {episode_length}")
        self._own_server = server is None
        self.server = server if server is not None else PostgresServer()
        if not self.server.running:
            self.server.start()
        self.setup_knobs(space_for(self.server, template), episode_length, len(METRICS) + 3)
        self._baselines: dict[tuple, tuple[float, float]] = {}  # protocol -> defaults' (tps, latency)

    # -- episode -----------------------------------------------------------------------------------------
    def start(self, instance: PgInstance, options: dict[str, Any]):
        if instance.knobs != self.knobs:
            raise InvalidArgumentError(f"instance {instance.name} tunes knob subset {instance.knobs!r}; this env's "
                                       f"action space is for {self.knobs!r}")
        self._ready = False
        self.server.reset()
        key = (instance.knobs, *sorted(instance.protocol().items()))
        if key not in self._baselines:
            _, m = self._measure(self.space.defaults(), seed_offset=0)
            if m["crashed"]:
                raise PostgresError(f"the server's default configuration failed: {m['error']}")
            self._baselines[key] = (float(m["tps_mean"]), float(m["latency_ms_mean"]))
        t0, l0 = self._baselines[key]
        self._base = (t0, l0)
        self._prev = (t0, l0)
        self._worst = (t0, l0)
        nothing_measured = np.concatenate([np.zeros(len(METRICS)), [1.0]])  # rates 0, hit ratio 1
        defaults_u = self.space.to_unit(self.space.defaults())
        self.begin(t0, self._obs(defaults_u, nothing_measured, t0, l0))
        return self._last_obs.copy(), {"tps": t0, "latency_ms": l0, "tps_mean": t0, "config": self.space.defaults()}

    def measure_step(self, config: dict[str, Any]):
        metrics_vec, m = self._measure(config, seed_offset=self._steps)
        t0, l0 = self._base
        if m["crashed"]:
            tps, lat = self._worst
        else:
            tps, lat = float(m["tps_mean"]), float(m["latency_ms_mean"])
            self._worst = (min(self._worst[0], tps), max(self._worst[1], lat))
        tp, lp = self._prev
        r_t = cdbtune_reward((tps - t0) / t0, (tps - tp) / tp)
        r_l = cdbtune_reward((l0 - lat) / l0, (lp - lat) / lp)
        self._prev = (tps, lat)
        info = {"tps": tps, "latency_ms": lat, "crashed": m["crashed"], "error": m["error"],
                "restarted": m["restarted"], "trial_s": m["trial_s"], "tps_std": m.get("tps_std")}
        obs = self._obs(self.space.to_unit(config), metrics_vec, tps, lat)
        return obs, 0.5 * r_t + 0.5 * r_l, None if m["crashed"] else tps, info

    def render(self):
        if not self._ready:
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
        t0, l0 = self._base
        rel_t, rel_l = tps / t0, lat / l0
        vec = np.concatenate([u, metrics, [rel_t / (1 + rel_t), rel_l / (1 + rel_l)]])
        return np.clip(np.nan_to_num(vec, nan=0.0, posinf=1.0), 0.0, 1.0).astype(np.float32)
