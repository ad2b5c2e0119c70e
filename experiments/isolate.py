"""Run a solver where its crash cannot take the sweep down, and stop workers whose sweep is gone.

`run_in_child(fn)` forks, calls `fn()` in the child and returns what it returned (or raises what it raised);
when the child dies instead (OR-Tools aborting with SIGABRT, a segfault, the kernel's OOM killer, a hard
timeout) the result says how, with the tail of what the child wrote to stderr, and the caller records a
failure. fork is used (POSIX): the child starts with the instance and the configured solver already in memory,
so isolation costs milliseconds, not an interpreter start-up (measured in tests/experiments/test_robustness.py).

`follow_parent(pid)`: a daemon thread that ends this process as soon as process `pid` is gone, so the workers
of a SIGKILLed joblib sweep (and the solver children of those workers) stop instead of running on and writing
records nobody waits for.
"""
from __future__ import annotations

import os
import pickle
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STDERR_KEEP = 4000  # characters of the child's stderr kept in a failure record (its start and its end)
SWEEP_PID_ENV = "SYSGYM_SWEEP_PID"


@dataclass
class ChildResult:
    ok: bool
    value: Any = None
    exit_detail: str = ""  # how the child died, when it did not return
    stderr_tail: str = ""
    wall_s: float = 0.0


class ChildError(Exception):
    """An exception raised in the child that could not be sent back as itself; carries its traceback text."""


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"killed by signal {sig} ({name})"
    if os.WIFEXITED(status):
        return f"exited with status {os.WEXITSTATUS(status)} without a result"
    return f"ended with wait status {status}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed parent not yet reaped is a zombie: gone for our purpose
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


_followed: set[int] = set()


def follow_parent(pid: int, *, interval: float = 0.5) -> None:
    """End this process (exit status 70) once process `pid` is gone (see module doc). Idempotent per pid."""
    if pid == os.getpid() or pid in _followed:
        return
    _followed.add(pid)
    first_ppid = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if not _alive(pid) or (first_ppid == pid and os.getppid() != pid):
                os._exit(70)

    threading.Thread(target=watch, name=f"sysgym-follow-{pid}", daemon=True).start()


def follow_sweep() -> None:
    """In a worker process that the sweep started directly on this machine (joblib's loky workers: the sweep is
    our parent, named with its host in $SYSGYM_SWEEP_PID): follow it. Jobs on other machines (SLURM, Ray), or
    started by something else, inherit the variable but do not match, so they are never ended by it."""
    host, _, pid = os.environ.get(SWEEP_PID_ENV, "").rpartition(":")
    if pid.isdigit() and host == socket.gethostname() and int(pid) == os.getppid():
        follow_parent(int(pid))


def mark_sweep() -> None:
    """Called by the process that launches a sweep: its workers inherit the host and pid to follow."""
    os.environ[SWEEP_PID_ENV] = f"{socket.gethostname()}:{os.getpid()}"


def _after_fork_in_child() -> None:
    """A forked child must not enter the thread pools its parent started: torch's intra-op pool (OpenMP) hangs
    in a child forked after the parent used it. One thread in the child runs torch's work inline."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def _send(path: str, item: tuple) -> None:
    try:
        data = pickle.dumps(item)
        pickle.loads(data)  # an exception with a custom __init__ may pickle but not unpickle
    except Exception:  # noqa: BLE001 - whatever cannot travel goes back as text
        if item[0] == "error":
            item = ("error", ChildError(item[2]), item[2])
        else:
            item = ("error", ChildError(f"the solver's result cannot be pickled:\n{traceback.format_exc()}"), "")
        data = pickle.dumps(item)
    with open(path, "wb") as fh:
        fh.write(data)


def run_in_child(fn: Callable[[], Any], *, kill_after: float | None = None) -> ChildResult:
    """Call `fn()` in a forked child (see module doc). An exception `fn` raises is raised again here."""
    workdir = Path(tempfile.mkdtemp(prefix="sysgym-child-"))
    result_path, err_path = str(workdir / "result.pkl"), str(workdir / "stderr.txt")
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 0
        try:
            follow_parent(parent, interval=0.2)
            _after_fork_in_child()
            err_fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(err_fd, 2)  # native code (OR-Tools' CHECK failures) writes to fd 2
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
            try:
                item: tuple = ("ok", fn())
            except BaseException as exc:  # noqa: BLE001 - sent back and raised in the parent
                item = ("error", exc, traceback.format_exc())
            _send(result_path, item)
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    status = None
    try:
        deadline = None if kill_after is None else time.monotonic() + kill_after
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if deadline is not None and time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                status = None
                break
            time.sleep(0.01)
    except BaseException:  # Ctrl-C or a kill of this process: the child goes too
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        _cleanup(workdir)
        raise
    wall = time.perf_counter() - t0
    stderr = _read_tail(err_path)
    if stderr:
        sys.stderr.write(stderr)
        sys.stderr.flush()
    try:
        if status is None:
            return ChildResult(False, exit_detail=f"killed after the hard limit of {kill_after:g} s (kill_after)",
                               stderr_tail=excerpt(stderr), wall_s=wall)
        try:
            with open(result_path, "rb") as fh:
                item = pickle.load(fh)
        except (OSError, EOFError, pickle.UnpicklingError):
            return ChildResult(False, exit_detail=_describe_status(status), stderr_tail=excerpt(stderr),
                               wall_s=wall)
    finally:
        _cleanup(workdir)
    if item[0] == "error":
        exc = item[1]
        if item[2] and not isinstance(exc, ChildError):
            exc.__cause__ = ChildError(f"raised in the solver's child process:\n{item[2]}")
        raise exc
    return ChildResult(True, value=item[1], stderr_tail=excerpt(stderr), wall_s=wall)


def excerpt(text: str, keep: int = STDERR_KEEP) -> str:
    """The start and the end of `text` (a native error message comes first, Python's fault dump after it)."""
    if len(text) <= keep:
        return text
    half = keep // 2
    return f"{text[:half]}\n[... {len(text) - keep} characters ...]\n{text[-half:]}"


def _read_tail(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            if size <= 256 * 1024:
                fh.seek(0)
                return fh.read().decode("utf-8", "replace")
            head = fh.read(64 * 1024)
            fh.seek(size - 64 * 1024)
            return (head + b"\n[...]\n" + fh.read()).decode("utf-8", "replace")
    except OSError:
        return ""


def _cleanup(workdir: Path) -> None:
    for name in ("result.pkl", "stderr.txt"):
        try:
            (workdir / name).unlink()
        except OSError:
            pass
    try:
        workdir.rmdir()
    except OSError:
        pass
