"""Configuring a PostgreSQL server: `pg_settings`, ALTER SYSTEM with reload or restart, rollback to the last
good configuration, restoring a server sysgym did not start, and the `pg_stat_*` counters (CDBTune's state).

`SettingsMixin` holds these methods of `PostgresServer`; it relies on the server's connection (`query`) and
lifecycle (`_run`, `_connect`, `_close_conn`, `recover`, `_startup_error`) from `server.py`.
"""
from __future__ import annotations

import os
import pwd
import re
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from sysgym.errors import UnknownNameError

from .errors import KnobValueError, PostgresError
from .units import check_value

RESTART_CONTEXTS = ("postmaster",)


@dataclass
class ApplyResult:
    """What `PostgresServer.apply` did.

    `server_up` is False when the configuration kept the server from starting; the server is then back on
    the last good configuration and `error` says why (the server log's FATAL line).
    """

    restarted: bool
    server_up: bool
    error: str | None = None
    changed: dict[str, str] = field(default_factory=dict)  # knob -> new setting string (explicit unit)
    restart_s: float = 0.0  # time spent restarting (charged to the trial)
    elapsed_s: float = 0.0


class SettingsMixin:
    """`PostgresServer`'s settings methods (see the module doc)."""

    # -- settings ----------------------------------------------------------------------------------------
    def settings(self) -> dict[str, dict[str, Any]]:
        """pg_settings as {name: {vartype, unit, min, max, enumvals, context, boot_val, reset_val, setting}}."""
        rows = self.query("SELECT name, setting, unit, vartype, min_val, max_val, enumvals, context, boot_val, "
                          "reset_val, short_desc FROM pg_settings")
        out = {}
        for name, setting, unit, vartype, lo, hi, enumvals, context, boot, reset, desc in rows:
            out[name] = {"setting": setting, "unit": unit, "vartype": vartype,
                         "min": float(lo) if lo is not None else None, "max": float(hi) if hi is not None else None,
                         "enumvals": list(enumvals) if enumvals else None, "context": context,
                         "boot_val": boot, "reset_val": reset, "desc": desc}
        self._settings = out
        return out

    def current(self, names: list[str] | None = None) -> dict[str, str]:
        """Current setting strings (in each knob's own unit) of `names` (all when None)."""
        rows = self.query("SELECT name, setting FROM pg_settings")
        cur = dict(rows)
        return cur if names is None else {n: cur[n] for n in names}

    def _meta(self) -> dict[str, dict[str, Any]]:
        return self._settings if self._settings is not None else self.settings()

    def normalise(self, config: dict[str, Any], bounds: dict[str, tuple[float, float]] | None = None) -> dict[str, str]:
        """Check a configuration against pg_settings (and optional tighter `bounds`, in each knob's unit) and
        return the setting strings with explicit units; unknown knobs and out-of-range values raise."""
        meta = self._meta()
        out: dict[str, str] = {}
        for name, value in config.items():
            if name not in meta:
                raise UnknownNameError("PostgreSQL knob", name, meta)
            m = meta[name]
            if m["context"] == "internal":
                raise KnobValueError(f"{name} is a read-only (internal) setting of this server")
            out[name] = check_value(name, value, m, None if bounds is None else bounds.get(name))
        return out

    def apply(self, config: dict[str, Any], *, bounds: dict[str, tuple[float, float]] | None = None) -> ApplyResult:
        """Set knobs through ALTER SYSTEM + reload, restarting only when a `postmaster` knob changed.

        Values are numbers in the knob's own unit (pg_settings.unit) or strings with an explicit unit
        ('128MB'). Unknown knobs and out-of-range values raise before anything changes. A configuration that
        keeps the server from starting returns `server_up=False` with the log's reason, after the server was
        brought back on the last good configuration.
        """
        t0 = time.perf_counter()
        wanted = self.normalise(config, bounds)
        meta = self._meta()
        if not self._owned:
            restart_knobs = [n for n in wanted if meta[n]["context"] in RESTART_CONTEXTS]
            if restart_knobs:
                raise KnobValueError(f"{', '.join(restart_knobs)} need a restart, which sysgym does not do on a "
                                     "server it did not start")
            for name in wanted:
                if name not in self._original:
                    self._original[name] = self._auto_conf_value(name)
        try:
            for name, value in wanted.items():
                self.query(f"ALTER SYSTEM SET {_ident(name)} = {_literal(value)}")
            self.query("SELECT pg_reload_conf()")
            time.sleep(0.05)  # the postmaster re-reads the files asynchronously
            self._reconnect_if_needed()
            errors = self.query("SELECT name, error FROM pg_file_settings WHERE error IS NOT NULL "
                                "AND sourcefile LIKE '%postgresql.auto.conf'")
        except Exception as exc:  # noqa: BLE001 - the server refused a value: restore the good file
            self._restore_good_online()
            raise KnobValueError(f"the server refused the configuration: {exc}") from None
        pending = [n for (n,) in self.query("SELECT name FROM pg_settings WHERE pending_restart")]
        restart_errors = [n for n, _ in errors if n in meta and meta[n]["context"] in RESTART_CONTEXTS]
        other_errors = [f"{n}: {e}" for n, e in errors if n not in restart_errors]
        if other_errors:
            self._restore_good_online()
            raise KnobValueError("the server refused the configuration: " + "; ".join(other_errors))
        result = ApplyResult(restarted=False, server_up=True, changed=wanted)
        if pending or restart_errors:
            if not self._owned:
                raise KnobValueError(f"{', '.join(pending)} need a restart")
            t1 = time.perf_counter()
            result.restarted = True
            try:
                self._close_conn()
                self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self._log_path()),
                           "-m", "fast", "-w", "-t", str(int(self.start_timeout_s)), "restart"],
                          timeout=self.start_timeout_s + 60)
                self._connect()
                self.restarts += 1
            except (PostgresError, subprocess.TimeoutExpired):
                result.server_up = False
                result.error = self._startup_error()
                self.recover()
            result.restart_s = time.perf_counter() - t1
        if result.server_up:
            self._good_auto_conf = self._read_auto_conf()
        self._settings = None
        result.elapsed_s = time.perf_counter() - t0
        return result

    def reset(self) -> ApplyResult:
        """Back to the server's defaults (ALTER SYSTEM RESET ALL; restart only when needed)."""
        t0 = time.perf_counter()
        if not self._owned:
            self._restore_external()
            return ApplyResult(restarted=False, server_up=True, elapsed_s=time.perf_counter() - t0)
        self.query("ALTER SYSTEM RESET ALL")
        self.query("SELECT pg_reload_conf()")
        time.sleep(0.05)
        pending = self.query("SELECT name FROM pg_settings WHERE pending_restart")
        result = ApplyResult(restarted=False, server_up=True)
        if pending:
            t1 = time.perf_counter()
            self._close_conn()
            self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self._log_path()),
                       "-m", "fast", "-w", "restart"], timeout=self.start_timeout_s + 60)
            self._connect()
            self.restarts += 1
            result.restarted, result.restart_s = True, time.perf_counter() - t1
        self._good_auto_conf = self._read_auto_conf()
        self._settings = None
        result.elapsed_s = time.perf_counter() - t0
        return result

    def _auto_conf_value(self, name: str) -> str | None:
        rows = self.query("SELECT setting FROM pg_file_settings WHERE name = %s AND sourcefile LIKE "
                          "'%%postgresql.auto.conf' ORDER BY seqno DESC LIMIT 1", (name,))
        return rows[0][0] if rows else None

    def _restore_external(self) -> None:
        if not self._original or self._conn is None:
            return
        for name, old in self._original.items():
            if old is None:
                self.query(f"ALTER SYSTEM RESET {_ident(name)}")
            else:
                self.query(f"ALTER SYSTEM SET {_ident(name)} = {_literal(old)}")
        self.query("SELECT pg_reload_conf()")
        self._original.clear()

    def _read_auto_conf(self) -> str:
        if not self._owned:
            return ""
        return (self.data_dir / "postgresql.auto.conf").read_text(encoding="utf-8")

    def _write_auto_conf(self, text: str) -> None:
        path = self.data_dir / "postgresql.auto.conf"
        path.write_text(text, encoding="utf-8")
        if os.geteuid() == 0:
            pw = pwd.getpwnam(self.run_as)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _restore_good_online(self) -> None:
        self._write_auto_conf(self._good_auto_conf)
        self.query("SELECT pg_reload_conf()")

    # -- internal metrics (CDBTune's state) --------------------------------------------------------------
    def internal_metrics(self) -> dict[str, float]:
        """Cumulative counters from pg_stat_database, pg_stat_bgwriter, pg_stat_checkpointer and pg_stat_wal."""
        out: dict[str, float] = {}
        db_cols = ("xact_commit", "xact_rollback", "blks_read", "blks_hit", "tup_returned", "tup_fetched",
                   "tup_inserted", "tup_updated", "tup_deleted", "conflicts", "temp_files", "temp_bytes",
                   "deadlocks", "blk_read_time", "blk_write_time")
        row = self.query(f"SELECT {', '.join(f'sum({c})' for c in db_cols)} FROM pg_stat_database")[0]
        out.update({f"db.{c}": float(v or 0) for c, v in zip(db_cols, row)})
        for view in ("pg_stat_bgwriter", "pg_stat_checkpointer", "pg_stat_wal"):
            try:
                rows = self.query(f"SELECT * FROM {view}")
            except Exception:  # noqa: BLE001 - a view that this version does not have
                self._reconnect_if_needed()
                continue
            with self._conn.cursor() as cur:
                cur.execute(f"SELECT * FROM {view} LIMIT 0")
                cols = [d.name for d in cur.description]
            for col, val in zip(cols, rows[0] if rows else ()):
                if isinstance(val, (int, float)) or (val is not None and hasattr(val, "is_finite")):
                    out[f"{view[8:]}.{col}"] = float(val)
        return out


def _ident(name: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_.]*", name):
        raise KnobValueError(f"{name!r} is not a PostgreSQL setting name")
    return name


def _literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"
