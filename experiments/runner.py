"""One run = one instance x one method x one seed -> one result record (the Hydra app's body)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sysgym import solvers
from sysgym.records import attach_solution, find_done, make_record, run_key, write_record
from sysgym.registry import get_family


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


def build_instance(cfg: DictConfig):
    family = get_family(cfg.env.family)
    params = _plain(cfg.env.get("params"))
    return family.generate(seed=int(cfg.env.instance_seed), preset=cfg.env.preset, **params)


def _resolve_agent(cfg: DictConfig, family_name: str) -> None:
    """`solver=agent agent.path=...`: the trained policy as this env family's `<family>.agent` method."""
    if cfg.solver.name != "agent":
        return
    if not cfg.get("agent") or not cfg.agent.get("path"):
        raise ValueError("solver=agent needs the policy file: add agent.path=RUN_DIR|model.zip|model.onnx")
    cfg.solver.name = f"{family_name}.agent"
    cfg.solver.params = {"path": str(cfg.agent.path), "which": cfg.agent.get("which", "final")}


def run_from_config(cfg: DictConfig, *, write: bool = True) -> RunResult:
    family = get_family(cfg.env.family)
    _resolve_agent(cfg, family.name)
    solver_cls = solvers.solver_class(cfg.solver.name, family.name)
    if solver_cls.family != family.name:
        # A --multirun over envs x solvers crosses families; those pairs are not runs.
        return RunResult(None, None, skipped=f"{cfg.solver.name} does not solve {family.name}")
    params = solver_params(cfg)
    solver = solvers.get(solver_cls.name, **params)  # unknown options fail here, before any work
    method = solver_cls.name  # an old name (alias) is recorded as the solver it now stands for
    key = run_key({"env": _plain(cfg.env), "method": method, "params": params, "seed": int(cfg.seed),
                   "time_limit": cfg.time_limit, "time_aware": bool(cfg.get("time_aware", False))})
    if write and cfg.get("resume", True):
        done = find_done(cfg.results_dir, key)
        if done is not None:  # a restarted sweep skips what it already finished
            return RunResult(None, done, skipped=f"already done: {done}")
    instance = build_instance(cfg)
    t0 = time.perf_counter()
    solution = solver.solve(instance, time_limit=cfg.time_limit, seed=int(cfg.seed))
    wall = time.perf_counter() - t0
    timed = bool(cfg.get("time_aware", False)) and family.timed_objective is not None
    if solution.decisions is None and solution.status in ("infeasible", "timeout"):
        # The method found nothing to score (e.g. no plan fits its rules): the run is recorded as such.
        metrics = {"feasible": False, family.objective: None, "no_solution": solution.status}
    else:
        metrics = family.evaluate(instance, solution, **({"wall_time_s": wall} if timed else {}))
    record = make_record(
        family=family.name, env=cfg.env.name, instance=instance.name, method=method,
        method_config=params, seed=int(cfg.seed), metrics=metrics, wall_time_s=wall,
        solver_stats={**solution.solver_stats(), "claimed_objective": solution.objective},
        extra={"time_limit": cfg.time_limit, "tag": cfg.get("tag"), "instance_digest": instance.digest(),
               "run_key": key, "time_aware": timed},
    )
    if write:
        attach_solution(record, solution, cfg.results_dir)
    path = write_record(record, cfg.results_dir, name=f"{cfg.env.name}__{method}__seed{cfg.seed}") \
        if write else None
    return RunResult(record, path)
