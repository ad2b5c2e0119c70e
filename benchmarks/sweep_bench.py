"""The demo sweep's small block under Hydra's basic launcher and the joblib launcher: wall time, speed-up;
and what running a solver in a child process costs (the runner's `isolate`).

    python benchmarks/sweep_bench.py [--seeds 0,1,2] [--isolation-only] [--overhead-only]

Both sweeps use fresh result directories; the figure printed is end-to-end wall time of `sysgym run --multirun`
(process start-up included), so it is what a user waits for. The isolation figure is the median time of one
in-process run (vm_resched.greedy on a tiny instance, no record written) with `isolate=true` and `false`.

Launcher overhead per job, Ray vs joblib: sweeps of N tiny jobs (vm_resched.greedy on the tiny preset, ~10 ms
of work each) with N = 4 and N = 36; the slope (T36 - T4) / 32 is what each extra job costs (dispatch, the
worker's run, the record's way back), the intercept T4 - 4 x slope what starting the sweep costs (process and
pool start-up; for Ray, starting a local cluster). Both on this machine's cores (`n_jobs=2` / `num_cpus=2`).
Ray's figure needs `pip install sysgym[ray]` and is left out without it.
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
    return _timed(cmd)


def _timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t0


LAUNCHERS = {"joblib": ["hydra/launcher=sysgym_joblib", "hydra.launcher.n_jobs=2"],
             "ray": ["hydra/launcher=sysgym_ray", "+hydra.launcher.init.num_cpus=2", "hydra.launcher.address=null"]}


def launcher_overhead(name: str, tmp: Path, sizes: tuple[int, int] = (4, 36)) -> tuple[float, float]:
    """(seconds per extra job, seconds to start the sweep) of launcher `name` (see the module doc)."""
    times = []
    for n in sizes:
        out = tmp / f"{name}-{n}"
        cmd = [sys.executable, "-m", "sysgym.experiments.cli", "run", "--multirun", *LAUNCHERS[name],
               "env=vm_resched_tiny", "solver=vm_resched.greedy", "seed=" + ",".join(map(str, range(n))),
               f"results_dir={out}"]
        times.append(_timed(cmd))
        assert len(list(read_records(out))) == n
    slope = (times[1] - times[0]) / (sizes[1] - sizes[0])
    return slope, times[0] - sizes[0] * slope


def overhead_report() -> None:
    import importlib.util

    names = ["joblib"] + (["ray"] if importlib.util.find_spec("ray") else [])
    if len(names) == 1:
        print("ray is not installed (pip install sysgym[ray]): only joblib's overhead is measured")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            slope, start = launcher_overhead(name, Path(tmp))
            print(f"{name:>7}: {1000 * slope:6.0f} ms per job, {start:5.1f} s to start the sweep "
                  f"(load {os.getloadavg()[0]:.2f})")


def isolation_overhead(repeats: int = 30) -> dict[str, float]:
    """Median seconds per run with and without the forked child (see the module doc)."""
    import statistics

    from hydra import compose, initialize_config_module

    from sysgym.experiments.runner import run_from_config

    with initialize_config_module("sysgym.conf", version_base="1.3"):
        cfgs = {iso: compose("config", overrides=["env=vm_resched_tiny", "solver=vm_resched.greedy",
                                                  f"isolate={iso}"]) for iso in ("false", "true")}
    out = {}
    for iso, cfg in cfgs.items():
        run_from_config(cfg, write=False)  # warm up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            run_from_config(cfg, write=False)
            times.append(time.perf_counter() - t0)
        out[iso] = statistics.median(times)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--isolation-only", action="store_true", help="only the isolation figure")
    parser.add_argument("--overhead-only", action="store_true", help="only the Ray vs joblib overhead per job")
    args = parser.parse_args()
    if args.overhead_only:
        overhead_report()
        return
    iso = isolation_overhead()
    print(f"one tiny run: {1000 * iso['false']:.0f} ms in process, {1000 * iso['true']:.0f} ms in a forked child "
          f"(isolation costs {1000 * (iso['true'] - iso['false']):.0f} ms per run; load {os.getloadavg()[0]:.2f})")
    if args.isolation_only:
        return
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
    overhead_report()


if __name__ == "__main__":
    main()
