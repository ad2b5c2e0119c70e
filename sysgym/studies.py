"""Optuna studies shared by every search (knob tuning, agent tuning, plan search).

`open_study(name, storage=None, ...)`: with no storage, a journal file under `default_dir` (safe for several
worker processes on one machine, no server needed); a path ending in `.db`/`.sqlite` is SQLite; any
SQLAlchemy URL (`postgresql+psycopg://user@host/db`, `mysql://...`) is an RDB shared by workers on many
machines. Workers that open the same study name on the same storage share it. Watch a study with
`optuna-dashboard <storage URL or journal path>` (pip install optuna-dashboard).
"""
from __future__ import annotations

import os
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
               direction: str | list[str] = "minimize", sampler: optuna.samplers.BaseSampler | None = None
               ) -> optuna.Study:
    """Create the study, or join it when it already exists on that storage (several workers, resumed runs)."""
    kwargs: dict[str, Any] = {"directions": direction} if isinstance(direction, list) else {"direction": direction}
    return optuna.create_study(study_name=name, storage=storage_from(storage, default_dir), sampler=sampler,
                               load_if_exists=True, **kwargs)


def postgres_url(socket_dir: str | os.PathLike, port: int, *, user: str = "postgres", dbname: str = "postgres") -> str:
    """SQLAlchemy URL of a PostgreSQL server listening on a Unix socket (psycopg 3 driver)."""
    return f"postgresql+psycopg://{user}@/{dbname}?host={socket_dir}&port={int(port)}"
