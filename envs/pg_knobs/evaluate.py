"""The PostgreSQL knob-tuning evaluator: the only scorer. It applies a configuration to a real PostgreSQL and
measures it with pgbench under the instance's protocol (warm-up, duration, repetitions). The family's
objective is `tps_mean`, the mean throughput of the measured runs (maximised).

A configuration is a dict {knob: value} over the instance's knob space (values in each knob's own unit, or
strings with an explicit unit); knobs left out take the server's defaults, so a score never depends on
what was measured before. A knob outside the space or a value outside its range is infeasible
(`InfeasibleSolutionError` naming the knob and the allowed range). A configuration that keeps the server
from starting, or under which pgbench fails or the server dies, is a *crash*: the metrics say
`crashed=True` with the reason and `tps_mean=0`, and the server is back on its last good configuration
(tuners then use the worst value seen so far, the OtterTune/LlamaTune convention).
"""
from __future__ import annotations

import time
from typing import Any

from sysgym.envs.knob_space import config_of
from sysgym.errors import FamilyMismatchError, InfeasibleSolutionError, UnknownNameError
from sysgym.solution import Solution

from .errors import KnobValueError
from .instance import PgInstance
from .knobs import KnobSpace, resolve_space
from .server import PostgresServer


def space_for(server: PostgresServer, instance: PgInstance) -> KnobSpace:
    """The instance's knob space on this server (cached on the server object)."""
    cache = server.__dict__.setdefault("_sysgym_spaces", {})
    if instance.knobs not in cache:
        version = server.query("SHOW server_version")[0][0]
        cache[instance.knobs] = resolve_space(server.settings(), instance.knobs, server_version=version)
    return cache[instance.knobs]


def evaluate(instance: PgInstance, solution: Solution | dict[str, Any] | None, *,
             server: PostgresServer | None = None, repetitions: int | None = None, seed_offset: int = 0,
             raise_on_infeasible: bool = True) -> dict[str, Any]:
    """Measure a configuration: `tps_mean` (the objective, maximised), `tps_std`, `tps_ci95`,
    `latency_ms_mean`, per-run values, `crashed` and its `error`, `restarted`, `trial_s` (apply + restart +
    warm-up + runs). `server=None` starts a fresh server for this evaluation (and removes it)."""
    if not isinstance(instance, PgInstance):
        raise FamilyMismatchError("pg_knobs", instance, "pg_knobs.evaluate")
    if server is None:
        with PostgresServer() as srv:
            return evaluate(instance, solution, server=srv, repetitions=repetitions, seed_offset=seed_offset,
                            raise_on_infeasible=raise_on_infeasible)
    config = config_of(solution)
    recovered = False
    if server.owned and not server.is_alive():  # killed since the last trial: back on the last good config
        server.recover()
        recovered = True
    space = space_for(server, instance)
    reps = int(repetitions or instance.final_repetitions)
    try:
        space.check(config)
        full = {**space.defaults(), **config}
        normalised = server.normalise(full, space.bounds())
    except (UnknownNameError, KnobValueError) as exc:
        err = InfeasibleSolutionError("knob space" if isinstance(exc, UnknownNameError) else "range", str(exc))
        if raise_on_infeasible:
            raise err from None
        return {"feasible": False, "violation": str(err), "tps_mean": None, "crashed": False}
    t0 = time.perf_counter()
    metrics: dict[str, Any] = {"feasible": True, "crashed": False, "error": None, "config": normalised,
                               "knobs": space.name, "restarted": False, "restart_s": 0.0,
                               "recovered_before": recovered}
    try:
        result = server.apply(full, bounds=space.bounds())
    except Exception as exc:  # noqa: BLE001 - refused value, lost connection, killed server: all crashes
        return _crash(server, metrics, f"apply failed: {exc}", t0)
    metrics.update(restarted=result.restarted, restart_s=result.restart_s)
    if not result.server_up:
        return _crash(server, metrics, f"server did not start: {result.error}", t0)
    try:
        bench = server.pgbench(scale=instance.scale, clients=instance.clients, duration_s=instance.duration_s,
                               repetitions=reps, read_only=instance.read_only, warmup_s=instance.warmup_s,
                               seed=instance.seed * 1000 + seed_offset)
    except Exception as exc:  # noqa: BLE001 - pgbench failed or the server died under it
        return _crash(server, metrics, f"pgbench failed: {exc}", t0)
    metrics.update({k: v for k, v in bench.items() if k not in ("scale", "clients", "duration_s", "read_only")})
    metrics["trial_s"] = time.perf_counter() - t0
    return metrics


def _crash(server: PostgresServer, metrics: dict[str, Any], reason: str, t0: float) -> dict[str, Any]:
    if server.owned and not server.is_alive():
        server.recover()
        reason += " (server was down; brought back on the last good configuration)"
    metrics.update(crashed=True, error=reason, tps_mean=0.0, tps_std=0.0, tps_ci95=0.0, latency_ms_mean=None,
                   tps_runs=[], latency_ms_runs=[], trial_s=time.perf_counter() - t0)
    return metrics
