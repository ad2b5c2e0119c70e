"""pgbench on a server: the fixed initialisation at a scale, one run, and repeated runs with their statistics.

`PgbenchMixin` holds these methods of `PostgresServer`; it relies on the server's connection from `server.py`.
"""
from __future__ import annotations

import math
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from .binaries import find_bin_dir
from .errors import PgbenchError
from .stats import summarise_runs


class PgbenchMixin:
    """`PostgresServer`'s pgbench methods (see the module doc)."""

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
