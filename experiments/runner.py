"""One run = one instance x one method x one seed -> one result record (the Hydra app's body).

Everything a run needs is checked before any work (named errors): the seed, the limits, that `results_dir`
can take a record, the solver's options, and that the instance is one of the solver's family. Then:

* Limits. `time_limit` (wall-clock seconds, passed to `solve`) is null by default: runs are bounded by
  deterministic budgets instead, so the same config gives the same numbers on any machine. A solver with a
  `deterministic_time` option (CP-SAT's `max_deterministic_time`) gets the top-level `deterministic_time`
  unless its params set one, and a solver that reads its `time_limit` as deterministic work
  (`Solver.deterministic_limit`: the CP-SAT solvers) gets it as that limit when `time_limit` is null;
  searches have trial budgets (`n_trials`, `trials`) in their params.
  `time_limit=SECONDS` brings wall-clock limits back (reproducible only where the solver proves optimality).
* Isolation. A solver that can abort the process (native code: kinds exact, bound and search, or a solver
  class with `isolate = True`) runs in a forked child (`isolate: auto`; `true` / `false` force it); if the
  child dies, the run is recorded as a failure (`failure`, `solver_stats.status = "crashed"`) and the sweep
  goes on. `kill_after: SECONDS` also ends a child that runs past a hard limit.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sysgym import solvers
from sysgym.errors import InvalidArgumentError
from sysgym.experiments.isolate import follow_sweep, run_in_child
from sysgym.records import attach_solution, capturing, check_writable, find_done, make_record, run_key, write_record
from sysgym.registry import get_family
from sysgym.solver import check_time_limit
from sysgym.specs import check_seed

ISOLATED_KINDS = ("exact", "bound", "search")


@dataclass
class RunResult:
    record: dict[str, Any] | None
    path: Path | None
    skipped: str | None = None


def _plain(node: Any) -> dict[str, Any]:
    if node is None:
        return {}
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node)


def solver_params(cfg: DictConfig) -> dict[str, Any]:
    """The solver's defaults merged with its per-env overrides."""
    params = _plain(cfg.solver.get("params"))
    overrides = _plain(cfg.solver.get("overrides"))
    params.update(overrides.get(cfg.env.name) or {})
    return params


def check_limit(value: Any, name: str) -> float | None:
    """`None` or a positive finite number (a named error otherwise)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InvalidArgumentError(f"{name} must be a positive number or null, got {value!r}")
    return float(value)


def build_instance(cfg: DictConfig):
    """The run's instance: `env.instance` (a spec, as benchmark suites give) or the env's preset, seed and
    generator parameters."""
    spec = cfg.env.get("instance")
    if spec:
        from sysgym.instances import from_spec

        return from_spec(str(spec))
    family = get_family(cfg.env.family)
    params = _plain(cfg.env.get("params"))
    seed = check_seed(cfg.env.instance_seed, "env.instance_seed")
    return family.generate(seed=seed, preset=cfg.env.preset, **params)


def _resolve_agent(cfg: DictConfig, family_name: str) -> None:
    """`solver=agent agent.path=...`: the trained policy as this env family's `<family>.agent` method. With
    `solver=<family>.agent`, `agent.path` (and `agent.which`) fill the solver's own `path` unless its params set
    one: families with a shipped policy run it when no path is given, so a given path must never be ignored."""
    if cfg.solver.name != "agent":
        params = cfg.solver.get("params")
        if str(cfg.solver.name).endswith(".agent") and cfg.get("agent") and cfg.agent.get("path") \
                and params is not None and "path" in params and params.get("path") in (None, ""):
            params.path = str(cfg.agent.path)
            if "which" in params:
                params.which = cfg.agent.get("which", "final")
        return
    if not cfg.get("agent") or not cfg.agent.get("path"):
        raise ValueError("solver=agent needs the policy file: add agent.path=RUN_DIR|model.zip|model.onnx")
    cfg.solver.name = f"{family_name}.agent"
    cfg.solver.params = {"path": str(cfg.agent.path), "which": cfg.agent.get("which", "final")}


def should_isolate(solver_cls: type, setting: Any) -> bool:
    """`isolate` config: true / false, or auto (the solver's own `isolate` attribute, else its kind)."""
    if isinstance(setting, bool):
        return setting
    if str(setting).lower() in ("true", "yes", "1"):
        return True
    if str(setting).lower() in ("false", "no", "0"):
        return False
    if str(setting).lower() != "auto":
        raise InvalidArgumentError(f"isolate must be auto, true or false, got {setting!r}")
    own = getattr(solver_cls, "isolate", None)
    return bool(own) if own is not None else solver_cls.kind in ISOLATED_KINDS


def _limits(cfg: DictConfig) -> tuple[float | None, float | None]:
    time_limit = check_time_limit(cfg.get("time_limit"), "time_limit")
    deterministic = check_limit(cfg.get("deterministic_time"), "deterministic_time")
    return time_limit, deterministic


@dataclass
class Prepared:
    """A run checked and configured, before any work: what `run_from_config` and a launcher's resume check
    (`run_key_of`) share."""

    family: Any
    solver_cls: type
    solver: Any
    params: dict[str, Any]
    seed: int
    time_limit: float | None
    isolate: bool
    kill_after: float | None
    key: str
    budget: float | None = None  # deterministic_time handed to a solver as its limit (Solver.deterministic_limit)


def prepare(cfg: DictConfig) -> Prepared | RunResult:
    """Check the config and build the solver (named errors before any work); a RunResult when the pair is
    not a run (a --multirun over envs x solvers crosses families)."""
    family = get_family(cfg.env.family)
    _resolve_agent(cfg, family.name)
    solver_cls = solvers.solver_class(cfg.solver.name, family.name)
    if solver_cls.family != family.name:
        return RunResult(None, None, skipped=f"{cfg.solver.name} does not solve {family.name}")
    seed = check_seed(cfg.seed, "seed")
    time_limit, deterministic = _limits(cfg)
    params = solver_params(cfg)
    accepted = solvers.options(solver_cls) or {}
    if deterministic is not None and "deterministic_time" in accepted and params.get("deterministic_time") is None:
        params["deterministic_time"] = deterministic
    isolate = should_isolate(solver_cls, cfg.get("isolate", "auto"))
    kill_after = check_limit(cfg.get("kill_after"), "kill_after")
    solver = solvers.get(solver_cls.name, **params)  # unknown options fail here, before any work
    method = solver_cls.name  # an old name (alias) is recorded as the solver it now stands for
    budget = None  # the deterministic budget passed as the limit of a solver that reads it so
    if time_limit is None and deterministic is not None and solver.deterministic_limit:
        budget = deterministic
    keyed = {"env": _plain(cfg.env), "method": method, "params": params, "seed": seed,
             "time_limit": time_limit, "time_aware": bool(cfg.get("time_aware", False))}
    if budget is not None:  # only then, so run keys written before deterministic budgets still match
        keyed["deterministic_time"] = budget
    key = run_key(keyed)
    return Prepared(family, solver_cls, solver, params, seed, time_limit, isolate, kill_after, key, budget)


def run_key_of(cfg: DictConfig) -> str | None:
    """The run key of a `sysgym run` config (None when the env x solver pair is not a run)."""
    prep = prepare(copy.deepcopy(cfg))
    return None if isinstance(prep, RunResult) else prep.key


def run_from_config(cfg: DictConfig, *, write: bool = True) -> RunResult:
    follow_sweep()  # in a joblib worker: stop when the sweep that started us is killed
    prep = prepare(cfg)
    if isinstance(prep, RunResult):
        return prep
    family, solver_cls, solver, params = prep.family, prep.solver_cls, prep.solver, prep.params
    seed, time_limit, isolate, kill_after, key = prep.seed, prep.time_limit, prep.isolate, prep.kill_after, prep.key
    budget = prep.budget
    method = solver_cls.name
    # Inside `records.capture()` (a job on a Ray worker) the records go back to the driver, which checks its own
    # results_dir and skips finished runs before it sends the job out; this machine's disk is not the sweep's.
    if write and not capturing():
        check_writable(cfg.results_dir)  # a read-only or file results_dir fails now, not after the solve
        if cfg.get("resume", True):
            done = find_done(cfg.results_dir, key)
            if done is not None:  # a restarted sweep skips what it already finished
                return RunResult(None, done, skipped=f"already done: {done}")
    instance = build_instance(cfg)
    solver.check_arguments(instance, time_limit if budget is None else budget, seed)  # before any work
    timed = bool(cfg.get("time_aware", False)) and family.timed_objective is not None
    extra = {"time_limit": time_limit, "tag": cfg.get("tag"), "instance_digest": instance.digest(), "run_key": key,
             "time_aware": timed, "method_kind": solver_cls.kind, "isolated": isolate,
             "limits": {"time_limit": time_limit,
                        "deterministic_time": budget if budget is not None else params.get("deterministic_time"),
                        "kill_after": kill_after}}
    if cfg.get("suite"):
        extra["suite"] = _plain(cfg.suite)

    def solve():
        return solver.solve(instance, time_limit=time_limit if budget is None else budget, seed=seed)

    t0 = time.perf_counter()
    if isolate:
        child = run_in_child(solve, kill_after=kill_after)
        wall = time.perf_counter() - t0
        if not child.ok:
            record = make_record(
                family=family.name, env=cfg.env.name, instance=instance.name, method=method, method_config=params,
                seed=seed, metrics={"feasible": False, family.objective: None, "no_solution": "crashed"},
                wall_time_s=wall, solver_stats={"status": "crashed", "exit": child.exit_detail},
                extra={**extra, "failure": {"kind": "crash", "detail": child.exit_detail,
                                            "stderr_tail": child.stderr_tail}})
            path = write_record(record, cfg.results_dir, name=f"{cfg.env.name}__{method}__seed{seed}") \
                if write else None
            return RunResult(record, path)
        solution = child.value
    else:
        solution = solve()
    wall = time.perf_counter() - t0
    if solution.decisions is None and solution.status in ("infeasible", "timeout"):
        # The method found nothing to score (e.g. no plan fits its rules): the run is recorded as such.
        metrics = {"feasible": False, family.objective: None, "no_solution": solution.status}
    else:
        metrics = family.evaluate(instance, solution, **({"wall_time_s": wall} if timed else {}))
    record = make_record(
        family=family.name, env=cfg.env.name, instance=instance.name, method=method,
        method_config=params, seed=seed, metrics=metrics, wall_time_s=wall,
        solver_stats={**solution.solver_stats(), "claimed_objective": solution.objective}, extra=extra,
    )
    if write:
        attach_solution(record, solution, cfg.results_dir)
    path = write_record(record, cfg.results_dir, name=f"{cfg.env.name}__{method}__seed{seed}") if write else None
    return RunResult(record, path)
