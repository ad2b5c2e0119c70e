"""A `sysgym run --multirun` sweep on a Ray cluster (`hydra/launcher=sysgym_ray`).

Every job is a Ray task on the cluster `ray.init(address=...)` reaches. A job on another machine must not
write its record to that machine's disk, so the task runs the Hydra app inside `sysgym.records.capture()` and
returns its records and solution side files with its result; this process (the driver) writes them into its
own `results_dir` with the same atomic writer as a local run, once per finished task. Resuming is decided here
too, before a job is sent: a job whose run key already has a successful record in the driver's `results_dir` is
not run again (`resume=false` runs it anyway), so re-running a sweep after a failure completes the set without
duplicates; an env x solver pair of another family is not sent at all.

A job that fails (the app raised, or the task was lost with its node after `max_retries` re-runs) is reported
(its number, its overrides, why) in the log and in `<sweep dir>/ray_failures.json`; every other finished job
is written as it arrives, and the sweep then ends with the first failure, as Hydra's basic launcher does.

Resources: a job asks for `num_cpus`, or `solver_cpus[<solver>]`, or the value of the first solver option named
in `cpus_from_params` (CP-SAT's `workers`), capped at the CPUs of the largest node (a request no node can meet
would wait forever).
"""
from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from sysgym.records import Captured, capture, find_done

log = logging.getLogger(__name__)
FAILURES_FILE = "ray_failures.json"


@dataclass
class Job:
    idx: int
    overrides: list[str]
    cfg: DictConfig


def connect(address: str | None, init: dict[str, Any]) -> None:
    """Join the cluster at `address` (None: the one started on this machine, or a new local one)."""
    import ray

    if ray.is_initialized():
        return
    opts = {"log_to_driver": True, **init}
    if address:
        opts["address"] = address
    ray.init(**opts)


def _run_remote(hydra_context: Any, sweep_config: DictConfig, task_function: Any, singleton_state: Any
                ) -> tuple[Any, Captured]:
    """The task: the Hydra app for one job, its records kept for the driver."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.singleton import Singleton
    from hydra.core.utils import run_job, setup_globals

    setup_globals()
    Singleton.set_state(singleton_state)
    HydraConfig.instance().set_config(sweep_config)
    with capture() as captured:
        ret = run_job(hydra_context=hydra_context, task_function=task_function, config=sweep_config,
                      job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
    return ret, captured


def job_cpus(cfg: DictConfig, num_cpus: float, solver_cpus: dict[str, float], from_params: Sequence[str],
             largest_node: float | None) -> float:
    """CPUs one job asks for (module doc)."""
    solver = cfg.get("solver") or {}
    name = str(solver.get("name", ""))
    want = float(num_cpus)
    if name in solver_cpus:
        want = float(solver_cpus[name])
    else:
        from sysgym.experiments.runner import solver_params

        params = solver_params(cfg) if "params" in solver else {}
        for key in from_params:
            if isinstance(params.get(key), (int, float)) and not isinstance(params.get(key), bool):
                want = float(params[key])
                break
    if largest_node is not None and want > largest_node:
        log.warning("%s asks for %g CPUs; the largest node has %g: asking for %g", name, want, largest_node,
                    largest_node)
        want = largest_node
    return max(want, 0.0)


def _largest_node_cpus() -> float | None:
    import ray

    cpus = [n.get("Resources", {}).get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")]
    return max(cpus) if cpus else None


def skip_reason(cfg: DictConfig) -> str | None:
    """Why the driver does not send a `sysgym run` job out: its env x solver pair is not a run, or (resume on)
    its run key already has a successful record in the driver's results_dir. None: send it."""
    if not {"env", "solver", "results_dir"} <= set(cfg.keys()):
        return None
    from sysgym.experiments.runner import run_key_of

    key = run_key_of(cfg)
    if key is None:
        return f"skipped: {cfg.solver.name} does not solve {cfg.env.family}"
    done = find_done(cfg.results_dir, key) if cfg.get("resume", True) else None
    return None if done is None else f"already done ({done})"


def _job_return(job: Job, status: Any, value: Any) -> Any:
    from hydra.core.utils import JobReturn

    cfg = copy.deepcopy(job.cfg)
    with open_dict(cfg):
        hydra_cfg = cfg.pop("hydra", None)
    return JobReturn(overrides=job.overrides, cfg=cfg, hydra_cfg=hydra_cfg, working_dir=None, status=status,
                     _return_value=value)


def _failure(job: Job, why: str) -> dict[str, Any]:
    return {"job": job.idx, "overrides": job.overrides, "error": why}


def launch(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[Any]:
    import ray
    from hydra.core.singleton import Singleton
    from hydra.core.utils import JobStatus, configure_log, filter_overrides, setup_globals

    setup_globals()
    config = launcher.config
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    connect(launcher.address, OmegaConf.to_container(OmegaConf.create(launcher.init), resolve=True))
    largest = _largest_node_cpus()
    log.info("Ray launcher: %d jobs on %s (%s CPUs in all), sweep dir %s", len(job_overrides),
             launcher.address or "the local cluster", ray.cluster_resources().get("CPU"), sweep_dir)
    remote = ray.remote(_run_remote)
    state = ray.put(Singleton.get_state())
    context = ray.put(launcher.hydra_context)
    task_fn = ray.put(launcher.task_function)
    returns: dict[int, Any] = {}
    pending: dict[Any, Job] = {}
    failures: list[dict[str, Any]] = []
    for i, overrides in enumerate(job_overrides):
        idx = initial_job_idx + i
        cfg = launcher.hydra_context.config_loader.load_sweep_config(config, list(overrides))
        with open_dict(cfg):
            cfg.hydra.job.id = f"ray_{idx}"
            cfg.hydra.job.num = idx
            cfg.hydra.sweep.dir = str(sweep_dir)  # one absolute folder: the worker's cwd is not ours
        job = Job(idx, list(overrides), cfg)
        shown = " ".join(filter_overrides(overrides))
        try:  # a bad config fails here, before any work, as this job's failure (the others still run)
            skip = skip_reason(cfg)
            cpus = job_cpus(cfg, launcher.num_cpus, launcher.solver_cpus, launcher.cpus_from_params, largest)
        except Exception as exc:  # noqa: BLE001 (reported with the job, then raised by Hydra's sweeper)
            failures.append(_failure(job, f"{type(exc).__name__}: {exc}"))
            returns[idx] = _job_return(job, JobStatus.FAILED, exc)
            continue
        if skip is not None:
            log.info("\t#%d : %s : %s", idx, shown, skip)
            returns[idx] = _job_return(job, JobStatus.COMPLETED, None)
            continue
        log.info("\t#%d : %s (%g CPUs)", idx, shown, cpus)
        ref = remote.options(num_cpus=cpus, max_retries=launcher.max_retries, retry_exceptions=False).remote(
            context, cfg, task_fn, state)
        pending[ref] = job
    written = 0
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            job = pending.pop(ref)
            try:
                ret, captured = ray.get(ref)
            except ray.exceptions.RayError as exc:  # the task was lost (its node or worker died) or cancelled
                why = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
                failures.append(_failure(job, why))
                returns[job.idx] = _job_return(job, JobStatus.FAILED, exc)
                continue
            results_dir = job.cfg.get("results_dir")
            if captured.records and results_dir is not None:
                written += len(captured.write(results_dir))
            if ret.status == JobStatus.FAILED:
                failures.append(_failure(job, f"{type(ret._return_value).__name__}: {ret._return_value}"))
            returns[job.idx] = ret
    log.info("Ray launcher: %d record(s) written", written)
    report_failures(failures, sweep_dir)
    return [returns[initial_job_idx + i] for i in range(len(job_overrides))]


def report_failures(failures: list[dict[str, Any]], sweep_dir: Path) -> None:
    """Log each failed job and keep the list in `<sweep_dir>/ray_failures.json` (appended to by later
    batches of the same sweep)."""
    if not failures:
        return
    for f in failures:
        log.error("job #%d failed (%s): %s", f["job"], " ".join(f["overrides"]), f["error"])
    log.error("%d job(s) failed; the others' records are kept. Run the same command again to complete the "
              "set (finished runs are skipped).", len(failures))
    path = sweep_dir / FAILURES_FILE
    old = json.loads(path.read_text()) if path.exists() else []
    path.write_text(json.dumps(old + [{**f, "time": time.time()} for f in failures], indent=1))
