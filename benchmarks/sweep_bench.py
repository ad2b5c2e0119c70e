"""The demo sweep's small block under Hydra's basic launcher and the joblib launcher: wall time, speed-up.

    python benchmarks/sweep_bench.py [--seeds 0,1,2]

Both runs use fresh result directories; the figure printed is end-to-end wall time of `sysgym run --multirun`
(process start-up included), so it is what a user waits for.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sysgym.records import read_records

SOLVERS = "vm_resched.milp,vm_resched.cpsat,vm_resched.greedy,vm_resched.filter_score,vm_resched.random"


def sweep(launcher: str | None, seeds: str, out: Path) -> float:
    cmd = [sys.executable, "-m", "sysgym.experiments.cli", "run", "--multirun", "env=vm_resched",
           f"solver={SOLVERS}", f"seed={seeds}", "time_limit=60", f"results_dir={out}"]
    if launcher:
        cmd.insert(5, f"hydra/launcher={launcher}")
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    n = len(SOLVERS.split(",")) * len(args.seeds.split(","))
    print(f"{n} runs (VM rescheduling, small preset), {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        times = {}
        for name, launcher in (("basic", None), ("joblib", "sysgym_joblib")):
            out = Path(tmp) / name
            times[name] = sweep(launcher, args.seeds, out)
            assert len(list(read_records(out))) == n
            print(f"{name:>7}: {times[name]:7.1f} s")
    print(f"speed-up of joblib over basic: {times['basic'] / times['joblib']:.2f}x")


if __name__ == "__main__":
    main()
