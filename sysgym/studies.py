"""Optuna studies shared by every search (knob tuning, agent tuning, plan search).

`open_study(name, storage=None, ...)`: with no storage, a journal file under `default_dir` (safe for several
worker processes on one machine, no server needed); a path ending in `.db`/`.sqlite` is SQLite; any
SQLAlchemy URL (`postgresql+psycopg://user@host/db`, `mysql://...`) is an RDB shared by workers on many
machines. Workers that open the same study name on the same storage share it. Watch a study with
`optuna-dashboard <storage URL or journal path>` (pip install optuna-dashboard).

`optimize_on_ray(name, storage, objective, n_trials=..., workers=N)`: the trials as N Ray tasks on a cluster
(`pip install sysgym[ray]`), all tuning the one study on the shared storage.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna


def storage_from(spec: str | os.PathLike | None, default_dir: str | os.PathLike = ".") -> Any:
    """An Optuna storage object or URL from a user's setting (see module doc)."""
    if spec is None or str(spec) == "":
        path = Path(default_dir) / "optuna.journal"
        path.parent.mkdir(parents=True, exist_ok=True)
        spec = str(path)
    text = str(spec)
    if "://" in text:
        return text  # an RDB URL: Optuna builds the RDBStorage (SQLite, PostgreSQL, MySQL)
    path = Path(text)
    if path.suffix in (".db", ".sqlite", ".sqlite3"):
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path.resolve()}"
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def open_study(name: str, *, storage: str | os.PathLike | None = None, default_dir: str | os.PathLike = ".",
               direction: str | list[str] = "minimize", sampler: optuna.samplers.BaseSampler | None = None,
               pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    """Create the study, or join it when it already exists on that storage (several workers, resumed runs)."""
    kwargs: dict[str, Any] = {"directions": direction} if isinstance(direction, list) else {"direction": direction}
    return optuna.create_study(study_name=name, storage=storage_from(storage, default_dir), sampler=sampler,
                               pruner=pruner, load_if_exists=True, **kwargs)


def _ray_worker(name: str, storage: str, direction: Any, objective: Callable[[optuna.Trial], Any], n_trials: int,
                index: int, sampler_factory: Callable[[int], Any] | None,
                pruner_factory: Callable[[int], Any] | None, catch: tuple) -> int:
    """One worker of `optimize_on_ray`: join the study and run its share of trials."""
    import ray

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(name, storage=storage, direction=direction,
                       sampler=sampler_factory(index) if sampler_factory else None,
                       pruner=pruner_factory(index) if pruner_factory else None)
    node = ray.get_runtime_context().get_node_id()

    def tagged(trial: optuna.Trial) -> Any:  # which worker and node ran each trial, kept in the study
        trial.set_user_attr("ray_worker", index)
        trial.set_user_attr("ray_node", node)
        return objective(trial)

    study.optimize(tagged, n_trials=n_trials, catch=catch)
    return n_trials


def optimize_on_ray(name: str, storage: str | os.PathLike, objective: Callable[[optuna.Trial], Any], *,
                    n_trials: int, workers: int = 2, direction: str | list[str] = "minimize",
                    sampler_factory: Callable[[int], Any] | None = None,
                    pruner_factory: Callable[[int], Any] | None = None, num_cpus: float = 1,
                    address: str | None = None, catch: tuple = ()) -> optuna.Study:
    """`workers` Ray tasks tune one study: each joins study `name` on `storage` and runs its share of `n_trials`
    (the shares add up to `n_trials`). `storage` must be one every worker reaches: an RDB URL (PostgreSQL for
    several machines) or, on one machine, a journal file or SQLite. `sampler_factory(i)` / `pruner_factory(i)`
    build worker i's (seed the sampler with i, or the workers propose the same points). An error in a trial
    (other than those in `catch`) ends the search and is raised here."""
    import ray

    if int(workers) < 1 or int(n_trials) < 1:
        raise ValueError(f"workers and n_trials must be >= 1, got {workers} and {n_trials}")
    spec = str(storage)
    # The schema and the study are created here, once: workers creating them at the same instant race in the
    # database (a documented Optuna caveat).
    open_study(name, storage=spec, direction=direction)
    if not ray.is_initialized():
        ray.init(**({"address": address} if address else {}))
    task = ray.remote(num_cpus=num_cpus, max_retries=0)(_ray_worker)
    shares = [n_trials // workers + (i < n_trials % workers) for i in range(workers)]
    ray.get([task.remote(name, spec, direction, objective, share, i, sampler_factory, pruner_factory, tuple(catch))
             for i, share in enumerate(shares) if share])
    return open_study(name, storage=spec, direction=direction)


def postgres_url(socket_dir: str | os.PathLike, port: int, *, user: str = "postgres", dbname: str = "postgres") -> str:
    """SQLAlchemy URL of a PostgreSQL server listening on a Unix socket (psycopg 3 driver)."""
    return f"postgresql+psycopg://{user}@/{dbname}?host={socket_dir}&port={int(port)}"
