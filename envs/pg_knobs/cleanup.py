"""Removing servers whatever happens to the process that started them.

* `stop()` and the context manager: the normal way.
* `live`: every started server; `atexit` stops them at interpreter exit (also after an uncaught exception or
  Ctrl-C, which Python turns into KeyboardInterrupt and unwinds).
* `emergency_stop`: a `weakref.finalize` callback for a server object collected without `stop()`.
* `watchdog_script`: a detached shell loop that outlives this process and stops the server when it dies
  without running exit handlers (SIGKILL, SIGTERM, a CI timeout).
"""
from __future__ import annotations

import atexit
import os
import shlex
import shutil
import subprocess
import weakref
from pathlib import Path

live: weakref.WeakSet = weakref.WeakSet()


def _stop_all_at_exit() -> None:
    for srv in list(live):
        try:
            srv.stop()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass


atexit.register(_stop_all_at_exit)


def process_alive(pid: int) -> bool:
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


def emergency_stop(as_user: list[str], bin_dir: str, tmpdir: str) -> None:
    """Finalizer of a PostgresServer that was never stopped (it must not reference the object)."""
    data = Path(tmpdir) / "data"
    if (data / "postmaster.pid").exists():
        try:
            subprocess.run(as_user + [str(Path(bin_dir) / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                                      "-t", "30", "stop"], capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            pass
    shutil.rmtree(tmpdir, ignore_errors=True)


def watchdog_script(owner_pid: int, stop_command: list[str], data_dir: Path, tmpdir: Path) -> str:
    """A shell loop that waits while `owner_pid` runs and the data directory exists, then stops the server
    (if its postmaster.pid is still there) and removes `tmpdir`."""
    stop = " ".join(shlex.quote(a) for a in stop_command)
    data, tmp = shlex.quote(str(data_dir)), shlex.quote(str(tmpdir))
    return (f"while kill -0 {owner_pid} 2>/dev/null && [ -d {data} ]; do sleep 1; done; "
            f"if [ -f {data}/postmaster.pid ]; then {stop} >/dev/null 2>&1; fi; rm -rf {tmp}")
