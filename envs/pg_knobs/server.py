"""A real PostgreSQL server that sysgym starts, reconfigures, benchmarks with pgbench, and always removes.

`PostgresServer()` runs `initdb` in a fresh temporary directory, starts the server on a free local port
(TCP on 127.0.0.1 and a unix socket in that directory), and stops it and deletes the directory on exit,
on exceptions, on Ctrl-C and at interpreter exit (`cleanup.py`). PostgreSQL refuses to run as root: when this
process is root, the server processes run as an unprivileged user (default `nobody`) through `setpriv`, with
the temporary directory owned by that user (`binaries.py`).

A server that sysgym did not start is used only with `PostgresServer(dsn=..., allow_changes=True)`; every
setting changed on it is restored on exit, and restart-only (`postmaster`) knobs are refused there.

This module holds the lifecycle (start, stop, kill, recover) and the connection; configuring the server is in
`settings.py` and pgbench in `pgbench.py` (mixins of `PostgresServer`).
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

from .binaries import bin_dir_for, find_bin_dir, run_as_prefix
from .cleanup import emergency_stop, live, process_alive, watchdog_script
from .errors import PostgresError
from .pgbench import PgbenchMixin
from .ports import free_port
from .settings import SettingsMixin


class PostgresServer(SettingsMixin, PgbenchMixin):
    """A PostgreSQL server for knob tuning; a context manager (start on enter, stop and clean up on exit).

    >>> with PostgresServer() as pg:                        # doctest: +SKIP
    ...     pg.apply({"synchronous_commit": "off"})
    ...     pg.pgbench(scale=1, clients=2, duration_s=2, repetitions=2)
    """

    def __init__(self, *, bin_dir: str | os.PathLike | None = None, port: int | None = None,
                 run_as: str = "nobody", dsn: str | None = None, allow_changes: bool = False,
                 start_timeout_s: float = 60.0, extra_conf: dict[str, str] | None = None):
        self._owned = dsn is None
        if dsn is not None and not allow_changes:
            raise PostgresError(
                "refusing to use a server sysgym did not start: pass allow_changes=True to let sysgym change "
                "(and afterwards restore) that server's settings")
        self._dsn_given = dsn
        self.bin_dir = find_bin_dir(bin_dir) if self._owned else None
        self.requested_port = port
        self.run_as = run_as
        self.start_timeout_s = float(start_timeout_s)
        self.extra_conf = dict(extra_conf or {})
        self.tmpdir: Path | None = None
        self.port: int | None = None
        self._conn = None
        self._settings: dict[str, dict[str, Any]] | None = None
        self._good_auto_conf: str = ""  # postgresql.auto.conf text of the last good configuration
        self._original: dict[str, str | None] = {}  # external server: knob -> its auto.conf value before us
        self._pgbench_scale: int | None = None
        self.restarts = 0
        self.recoveries = 0

    def __deepcopy__(self, memo: dict) -> PostgresServer:
        return self  # a running server is a shared resource: copies (e.g. of env kwargs) share it

    def __copy__(self) -> PostgresServer:
        return self

    # -- lifecycle ---------------------------------------------------------------------------------------
    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self.port is not None

    @property
    def owned(self) -> bool:
        return self._owned

    @property
    def data_dir(self) -> Path:
        if self.tmpdir is None:
            raise PostgresError("server is not started")
        return self.tmpdir / "data"

    @property
    def socket_dir(self) -> Path:
        if self.tmpdir is None:
            raise PostgresError("server is not started")
        return self.tmpdir

    @property
    def dsn(self) -> str:
        if self._dsn_given is not None:
            return self._dsn_given
        if self.port is None:
            raise PostgresError("server is not started")
        return f"host={self.socket_dir} port={self.port} user=postgres dbname=postgres"

    def _as_user(self) -> list[str]:
        return run_as_prefix(self.run_as)

    def _run(self, args: list[str], timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        env.pop("PGDATA", None)
        proc = subprocess.run(self._as_user() + args, capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=str(self.tmpdir) if self.tmpdir else None, start_new_session=True)
        if check and proc.returncode != 0:
            raise PostgresError(f"{Path(args[0]).name} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        return proc

    def start(self) -> None:
        """initdb in a fresh temporary directory and start the server on a free port."""
        if not self._owned:
            self._connect()
            live.add(self)
            return
        if self.running:
            return
        if os.geteuid() == 0:
            self.bin_dir = bin_dir_for(self.run_as, self.bin_dir)
        self.tmpdir = Path(tempfile.mkdtemp(prefix="sysgym-pg-"))
        live.add(self)
        # Stop on garbage collection and at interpreter exit even if stop() is never called ...
        self._finalizer = weakref.finalize(self, emergency_stop, self._as_user(), str(self.bin_dir),
                                           str(self.tmpdir))
        try:
            if os.geteuid() == 0:
                pw = pwd.getpwnam(self.run_as)
                os.chown(self.tmpdir, pw.pw_uid, pw.pw_gid)
            os.chmod(self.tmpdir, 0o700)
            self._run([str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
                       "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"])
            self.port = self.requested_port or free_port()
            conf = {"port": str(self.port), "listen_addresses": "'127.0.0.1'",
                    "unix_socket_directories": f"'{self.socket_dir}'", "logging_collector": "off",
                    **self.extra_conf}
            with open(self.data_dir / "postgresql.conf", "a", encoding="utf-8") as fh:
                fh.write("\n# sysgym\n" + "".join(f"{k} = {v}\n" for k, v in conf.items()))
            self._pg_ctl_start()
            self._start_watchdog()
            self._connect()
            self._good_auto_conf = self._read_auto_conf()
        except BaseException:
            self.stop()
            raise

    def _start_watchdog(self) -> None:
        """... and when this process dies without running Python's exit handlers (SIGKILL, SIGTERM, a CI
        timeout): a detached shell loop waits for this process and then stops the server and removes its
        directory."""
        stop = self._as_user() + [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w",
                                  "-t", "30", "stop"]
        script = watchdog_script(os.getpid(), stop, self.data_dir, self.tmpdir)
        self._watchdog = subprocess.Popen(["sh", "-c", script], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True)

    def _log_path(self) -> Path:
        return self.tmpdir / "server.log"

    def _pg_ctl_start(self) -> None:
        self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self._log_path()), "-w",
                   "-t", str(int(self.start_timeout_s)), "start"], timeout=self.start_timeout_s + 30)

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def is_alive(self) -> bool:
        """Whether the postmaster process is running and accepts a query."""
        if not self._owned:
            try:
                self.query("SELECT 1")
                return True
            except Exception:  # noqa: BLE001
                return False
        pid = self._postmaster_pid()
        if pid is None or not process_alive(pid):
            return False
        try:
            self._reconnect_if_needed()
            self.query("SELECT 1")
            return True
        except Exception:  # noqa: BLE001
            return False

    def stop(self) -> None:
        """Stop the server (fast shutdown, then SIGKILL) and delete its directory; safe to call twice."""
        live.discard(self)
        if not self._owned:
            self._restore_external()
            self._close_conn()
            return
        self._close_conn()
        if self.tmpdir is None:
            return
        try:
            if self.data_dir.exists() and (self.data_dir / "postmaster.pid").exists():
                try:
                    self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30",
                               "stop"], timeout=60, check=False)
                except subprocess.TimeoutExpired:
                    pass
                pid = self._postmaster_pid()
                if pid is not None:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
        finally:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            if getattr(self, "_finalizer", None) is not None:
                self._finalizer.detach()
            watchdog = getattr(self, "_watchdog", None)
            if watchdog is not None:  # it sees the directory gone and exits within a second; reap it
                try:
                    watchdog.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    watchdog.kill()
                self._watchdog = None
            self.tmpdir = None
            self.port = None
            self._settings = None
            self._pgbench_scale = None

    def kill(self) -> None:
        """SIGKILL the postmaster (what a crash looks like); `recover()` brings it back."""
        pid = self._postmaster_pid()
        if pid is None:
            raise PostgresError("server is not running")
        os.kill(pid, signal.SIGKILL)
        self._close_conn()

    def recover(self) -> None:
        """Bring a dead server back on the last good configuration."""
        if not self._owned:
            raise PostgresError("cannot restart a server sysgym did not start")
        self._close_conn()
        pid = self._postmaster_pid()
        if pid is not None:
            if process_alive(pid):  # the postmaster survived but something else broke: stop it first
                self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"],
                          check=False)
            try:
                (self.data_dir / "postmaster.pid").unlink()
            except OSError:
                pass
        self._write_auto_conf(self._good_auto_conf)
        # children of a SIGKILLed postmaster exit on their own once they notice; until they released the
        # shared memory a new postmaster refuses to start, so retry for a while
        deadline = time.monotonic() + 30
        while True:
            try:
                self._pg_ctl_start()
                break
            except PostgresError:
                if time.monotonic() > deadline:
                    raise PostgresError(f"cannot bring the server back: {self._startup_error()}") from None
                time.sleep(0.5)
        self._connect()
        self.recoveries += 1

    # -- connection --------------------------------------------------------------------------------------
    def _connect(self) -> None:
        import psycopg

        self._close_conn()
        try:
            self._conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise PostgresError(f"cannot connect to {self.dsn}: {exc}") from None

    def _reconnect_if_needed(self) -> None:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._connect()

    def _close_conn(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001
                pass
            self._conn = None

    def query(self, sql: str, params: tuple | None = None) -> list[tuple]:
        self._reconnect_if_needed()
        with self._conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def _startup_error(self) -> str:
        try:
            lines = self._log_path().read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return "server did not start (no log)"
        fatal = [ln for ln in lines[-60:] if "FATAL" in ln or "PANIC" in ln]
        detail = [ln for ln in lines[-60:] if "DETAIL" in ln or "HINT" in ln]
        msg = (fatal[-1] if fatal else (lines[-1] if lines else "server did not start"))
        if detail:
            msg += " | " + detail[-1].strip()
        return msg.strip()
