"""job_sched benchmark: prints the figures of issue 11's evidence.

1. The UWFQ paper's direction on a heterogeneous multi-user workload (`multiuser` preset: heavy users with many
   small jobs, light users with few large ones): mean, small-job mean and p95 response time, user-slowdown
   ratio of every policy, and UWFQ's small-job reduction against Spark FAIR and FIFO (the paper: up to 74 %).
   Repeated with Decima's 2 s moving delay and fresh-executor warm-up switched on.
2. Simulator speed: events per second and the time to run 1,000 TPC-H jobs on 100 executors (Decima's setting),
   and env steps per second with a masked random agent (what PPO training pays per step).
3. The CP-SAT clairvoyant bound on `tiny` instances and every policy's gap to it.
4. With --out DIR, a plot of per-user response-time distributions.

Usage: .venv/bin/python benchmarks/job_sched_bench.py [--quick] [--out DIR]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

import sysgym
from sysgym import solvers
from sysgym.envs.job_sched import evaluate, generate, simulate
from sysgym.envs.job_sched.plots import plot_per_user

console = Console(width=150)
DECIMA_DRIVER = """
import sys, time
sys.argv = ["x", "--num_stream_dags", sys.argv[1], "--exec_cap", "100", "--num_init_dags", "10"]
import numpy as np
from spark_env.env import Environment
from heuristic_agent import DynamicPartitionAgent
env, agent = Environment(), DynamicPartitionAgent()
env.seed(0)
env.reset()
obs, done = env.observe(), False
c0 = time.process_time()
while not done:
    obs, _, done = env.step(*agent.get_action(obs))
cpu = time.process_time() - c0
tasks = sum(n.num_tasks for j in env.finished_job_dags for n in j.nodes)
jct = np.mean([j.completion_time - j.start_time for j in env.finished_job_dags]) / 1000
print(f"{len(env.finished_job_dags)} {tasks} {cpu} {jct}")
"""
POLICIES = [("fifo", {}), ("fair", {}), ("user_fair", {}), ("cfq", {}), ("decima_cap", {}), ("srpt", {}),
            ("random", {}), ("uwfq", {}), ("uwfq+part", {"runtime_partition_s": 0.5}),
            ("uwfq+part noisy", {"runtime_partition_s": 0.5, "estimate_error": 0.5})]


def policy_table(title: str, seeds: list[int], params: dict, plot: Path | None = None) -> dict[str, dict]:
    instances = [generate(preset="multiuser", seed=s, **params) for s in seeds]
    out, runs = {}, {}
    for label, kw in track(POLICIES, description=title[:30], console=console, transient=True):
        if label == "random" and params.get("moving_delay_s", 0) > 0:
            continue  # random with moving delays thrashes for minutes; it is in the delay-free table
        ms = []
        for inst in instances:
            res = simulate(inst, label.split("+")[0].split(" ")[0], seed=0, **kw)
            ms.append(evaluate(inst, res.schedule))  # the evaluator re-checks every schedule
            runs.setdefault(label, []).append((inst, res.job_finish))
        out[label] = {k: float(np.mean([m[k] for m in ms])) for k in (
            "mean_response_s", "small_job_mean_response_s", "large_job_mean_response_s", "p95_response_s",
            "user_slowdown_ratio", "fair_share_violation_ratio", "utilisation")}
    table = Table(title=f"{title} ({len(seeds)} seeds x {instances[0].num_jobs} jobs, "
                        f"{instances[0].num_executors} executors)")
    for col in ("policy", "mean s", "small-job mean s", "large-job mean s", "p95 s", "user slowdown ratio",
                "fair-share violations", "util"):
        table.add_column(col, justify="right")
    for label, m in out.items():
        table.add_row(label, *(f"{m[k]:.2f}" for k in ("mean_response_s", "small_job_mean_response_s",
                                                         "large_job_mean_response_s", "p95_response_s",
                                                         "user_slowdown_ratio", "fair_share_violation_ratio",
                                                         "utilisation")))
    console.print(table)
    best = min(("uwfq", "uwfq+part"), key=lambda k: out[k]["small_job_mean_response_s"])
    for base in ("fair", "fifo"):
        a, b = out[best]["small_job_mean_response_s"], out[base]["small_job_mean_response_s"]
        console.print(f"  small-job mean response, {best} vs {base}: {a:.2f} s vs {b:.2f} s = "
                      f"{100 * (a / b - 1):+.1f} % (UWFQ paper: up to -74 %)")
    if plot is not None:
        console.print(f"  plot: {plot_per_user(runs, plot, title=title)}")
    return out


def speed(num_jobs: int, decima_sim: str | None = None) -> None:
    inst = generate(preset="decima", seed=0, num_jobs=num_jobs)
    console.print(f"[bold]Simulator speed[/]: {inst.num_jobs} jobs, {inst.num_stages} stages, {inst.num_tasks:,} "
                  f"tasks on {inst.num_executors} executors (Decima's setting)")
    for pol in ("fifo", "fair", "decima_cap", "uwfq"):
        res = simulate(inst, pol)
        cpu = res.extra["cpu_time_s"]
        console.print(f"  {pol:11s} {res.events:,} events: wall {res.wall_time_s:.2f} s ({res.events_per_s:,.0f} "
                      f"events/s), CPU {cpu:.2f} s ({res.events / cpu:,.0f} events/s); "
                      f"mean response {res.metrics['mean_response_s']:.1f} s")
    if decima_sim is not None:  # Decima's own simulator, same setting, its dynamic-partition heuristic
        import subprocess
        import sys

        out = subprocess.run([sys.executable, "-c", DECIMA_DRIVER, str(num_jobs - 10)], cwd=decima_sim,
                             capture_output=True, text=True, check=True).stdout.split()
        jobs, tasks, cpu, jct = int(out[0]), int(out[1]), float(out[2]), float(out[3])
        console.print(f"  decima-sim (original, dynamic partition): {jobs} jobs, {tasks:,} tasks, CPU {cpu:.2f} s "
                      f"({tasks / cpu:,.0f} tasks/s); mean response {jct:.1f} s")
    env = sysgym.make("sysgym/JobSched-v0")
    rng = np.random.default_rng(0)
    steps, t0 = 0, time.perf_counter()
    env.reset(seed=0)
    while time.perf_counter() - t0 < 5.0:
        _, _, done, _, _ = env.step(int(rng.choice(np.flatnonzero(env.unwrapped.action_masks()))))
        steps += 1
        if done:
            env.reset(seed=steps)
    console.print(f"  env (small preset, graph observation, masked random agent): "
                  f"{steps / (time.perf_counter() - t0):,.0f} steps/s")


def bound(seeds: list[int], time_limit: float) -> None:
    table = Table(title=f"CP-SAT clairvoyant bound on `tiny` (time limit {time_limit:.0f} s) and each policy's gap")
    names = [n for n in solvers.list("job_sched") if n not in ("job_sched.cpsat", "job_sched.agent")]
    for col in ("seed", "tasks", "status", "bound s", "cpsat s", *[n.split(".")[1][:8] for n in names]):
        table.add_column(col, justify="right")
    for seed in track(seeds, description="cp-sat", console=console, transient=True):
        inst = generate(preset="tiny", seed=seed)
        sol = solvers.get("job_sched.cpsat").solve(inst, time_limit=time_limit)
        assert abs(evaluate(inst, sol)["mean_response_s"] - sol.objective) < 1e-9
        gaps = []
        for n in names:
            obj = solvers.get(n).solve(inst).objective
            gaps.append(f"{100 * (obj - sol.bound) / obj:.1f}%")
        table.add_row(str(seed), str(inst.num_tasks), sol.status, f"{sol.bound:.2f}", f"{sol.objective:.2f}", *gaps)
    console.print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer seeds and jobs")
    ap.add_argument("--out", default=None, help="folder for the per-user plot (default: no plot; nothing is "
                                                "written into the current folder)")
    ap.add_argument("--decima-sim", default=None, help="a checkout of hongzimao/decima-sim (numpy only; its TPC-H "
                                                       ".npy files unpacked) to time its simulator beside ours")
    args = ap.parse_args()
    seeds = [0, 1] if args.quick else [0, 1, 2, 3, 4]
    policy_table("UWFQ setting: shared Spark app (no moving delay / warm-up)", seeds, {},
                 plot=None if args.out is None else Path(args.out) / "per_user_response.png")
    policy_table("Same workload with Decima's 2 s moving delay and warm-up", seeds,
                 {"moving_delay_s": 2.0, "warmup_scale": 1.0})
    speed(200 if args.quick else 1000, args.decima_sim)
    bound([0, 1] if args.quick else [0, 1, 2, 3, 4], 10.0 if args.quick else 20.0)


if __name__ == "__main__":
    main()
