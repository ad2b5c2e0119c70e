"""A real two-node Ray cluster on this machine: `ray start --head` plus a worker node, one CPU each.

Each node is a `ray start --block` process in a session of its own, so the node (its raylet, its workers -- each
in a process group of its own -- and the solver children they fork) is one session: `kill_worker()` SIGKILLs
every process of the worker node's session, as a lost machine would vanish, and the finalizer ends both
sessions (and anything still running from the cluster's own temp dir), so no test leaves Ray processes behind.
`ray stop --force` is not used: it ends every Ray process of the user on the machine, not only this cluster's.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

RAY = str(Path(sys.executable).with_name("ray"))
# A lost node is declared dead after health checks fail (defaults: 3 s x 5): quicker here so the test waits less.
FAST_FAILURE = {"RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3",
                "RAY_health_check_timeout_ms": "1000", "RAY_USAGE_STATS_ENABLED": "0",
                # Ray 2.5x turns on token auth for `ray start` clusters; a throw-away cluster on this machine
                # needs none (and the token would be written to ~/.ray).
                "RAY_AUTH_MODE": "disabled"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self) -> None:
        # Short: Ray puts Unix sockets under it (108-byte limit on their paths).
        self.tmp = tempfile.mkdtemp(prefix="sgray", dir="/tmp")
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, **FAST_FAILURE}
        self.nodes: dict[str, subprocess.Popen] = {}

    def _start(self, name: str, args: list[str]) -> None:
        log = open(Path(self.tmp) / f"{name}.log", "ab")  # noqa: SIM115 (kept open by the node process)
        self.nodes[name] = subprocess.Popen([RAY, "start", "--block", "--num-cpus=1", "--node-ip-address=127.0.0.1",
                                             "--disable-usage-stats", *args], stdout=log, stderr=subprocess.STDOUT,
                                            env=self.env, start_new_session=True)

    def start_head(self) -> None:
        self._start("head", ["--head", f"--port={self.port}", "--include-dashboard=false", f"--temp-dir={self.tmp}"])
        self.wait_nodes(1)

    def start_worker(self) -> None:
        self._start("worker", [f"--address={self.address}"])
        self.wait_nodes(2)

    def alive_nodes(self) -> int:
        code = (f"import ray; ray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False); "
                "print(sum(n['Alive'] for n in ray.nodes()))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=self.env, timeout=60)
        return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else 0

    def wait_nodes(self, n: int, timeout: float = 90) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for name, proc in self.nodes.items():
                if proc.poll() is not None and name == "head":
                    raise RuntimeError(f"ray head exited: {(Path(self.tmp) / 'head.log').read_text()[-3000:]}")
            if self.alive_nodes() == n:
                return
            time.sleep(0.5)
        raise TimeoutError(f"the Ray cluster did not reach {n} live nodes in {timeout} s")

    def ensure_worker(self) -> None:
        if self.nodes["worker"].poll() is not None:
            self.start_worker()

    @staticmethod
    def _session(sid: int) -> list[tuple[int, bytes]]:
        """(pid, cmdline) of every process in session `sid`."""
        out = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                if os.getsid(int(pid)) == sid:
                    out.append((int(pid), Path(f"/proc/{pid}/cmdline").read_bytes()))
            except (OSError, ProcessLookupError):
                continue
        return out

    def worker_busy(self) -> bool:
        """Whether a process of the worker node is executing a sweep job (Ray titles it ray::_run_remote)."""
        return any(cmd.startswith(b"ray::_run_remote") for _, cmd in self._session(self.nodes["worker"].pid))

    def _kill_session(self, name: str, sig: int) -> None:
        for pid, _ in self._session(self.nodes[name].pid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def kill_worker(self) -> None:
        # The process running a job first: the job must not finish between the busy check and the kill.
        for pid, cmd in self._session(self.nodes["worker"].pid):
            if cmd.startswith(b"ray::_run_remote"):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self._kill_session("worker", signal.SIGKILL)
        self.nodes["worker"].wait(timeout=30)

    def stop(self) -> None:
        for name, proc in self.nodes.items():
            self._kill_session(name, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self._kill_session(name, signal.SIGKILL)
        # Anything of this cluster still running (a process that left the session) names its temp dir.
        for pid in os.listdir("/proc"):
            try:
                if pid.isdigit() and self.tmp.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(int(pid), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                continue
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    saved = {k: os.environ.get(k) for k in FAST_FAILURE}
    os.environ.update(FAST_FAILURE)  # for the drivers the tests start too
    c = Cluster()
    try:
        c.start_head()
        c.start_worker()
        yield c
    finally:
        c.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
