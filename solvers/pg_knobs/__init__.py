"""PostgreSQL knob-tuning methods: `pg_knobs.{default,random,tpe,gp,cmaes,llamatune}` (the shared tuners of
`sysgym.solvers.tuning` on a real server). Importing registers them.

`solve(instance, server=pg)` tunes on a running `PostgresServer`; without `server=` a fresh server is started
for the solve (after the instance, seed and time limit are checked) and removed afterwards.
"""
from __future__ import annotations

import contextlib
import math
import statistics
from collections.abc import Iterator
from typing import Any

from sysgym.envs.pg_knobs.evaluate import evaluate, space_for
from sysgym.envs.pg_knobs.instance import PgInstance
from sysgym.envs.pg_knobs.server import PostgresServer
from sysgym.envs.pg_knobs.stats import t_quantile
from sysgym.solvers.tuning import KnobTuning, TuningProblem, register_methods


def gain_with_ci(best_runs: list[float], default_runs: list[float]) -> tuple[float, float, float]:
    """Relative gain mean(best)/mean(default) - 1 and its 95 % interval (Welch's t on the difference,
    divided by the default mean; the default mean's own uncertainty is ignored)."""
    mb, md = statistics.fmean(best_runs), statistics.fmean(default_runs)
    if md <= 0:
        return math.inf, -math.inf, math.inf
    vb = statistics.variance(best_runs) / len(best_runs) if len(best_runs) > 1 else math.inf
    vd = statistics.variance(default_runs) / len(default_runs) if len(default_runs) > 1 else math.inf
    se = math.sqrt(vb + vd)
    if not math.isfinite(se):
        return mb / md - 1, -math.inf, math.inf
    if se == 0:
        dof = 1
    else:
        denom = (vb**2 / (len(best_runs) - 1)) + (vd**2 / (len(default_runs) - 1))
        dof = max(1, int((vb + vd) ** 2 / denom)) if denom > 0 else 1
    half = t_quantile(dof) * se
    diff = mb - md
    return diff / md, (diff - half) / md, (diff + half) / md


class PgProblem(TuningProblem):
    """A PostgreSQL instance on a running server: pgbench measurements, noisy (re-measured, gain with a CI)."""

    objective = "tps_mean"
    deterministic = False

    def __init__(self, instance: PgInstance, server: PostgresServer):
        super().__init__(instance, space_for(server, instance))
        self.server = server

    @property
    def trial_repetitions(self) -> int:
        return self.instance.repetitions

    def measure(self, config: dict[str, Any], seed_offset: int, repetitions: int | None = None) -> dict[str, Any]:
        return evaluate(self.instance, config, server=self.server, repetitions=repetitions, seed_offset=seed_offset)

    def runs(self, metrics: dict[str, Any]) -> list[float]:
        return list(metrics["tps_runs"])

    def gain(self, best: dict[str, Any], default: dict[str, Any]) -> tuple[float, float, float]:
        if not default["tps_runs"]:
            return math.nan, math.nan, math.nan
        return gain_with_ci(best["tps_runs"], default["tps_runs"])

    def show(self, value: float) -> str:
        return f"{value:.0f} tps"


class PgKnobs(KnobTuning):
    family = "pg_knobs"

    @contextlib.contextmanager
    def open(self, instance: PgInstance, *, server: PostgresServer | None = None) -> Iterator[PgProblem]:
        if server is not None:
            yield PgProblem(instance, server)
            return
        with PostgresServer() as srv:
            yield PgProblem(instance, srv)


METHODS = register_methods(PgKnobs)
