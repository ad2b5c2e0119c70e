"""Parallel-plan benchmark: search speed, optimality gaps of every method, Table 1 calibration errors.

    .venv/bin/python benchmarks/parallel_plan_bench.py            # everything (a few minutes on 2 cores)
    .venv/bin/python benchmarks/parallel_plan_bench.py --quick    # speed + gaps without the RL run

Prints:
1. Full exhaustive search for the 1T-parameter GPT on 3072 A100s (all legal t, p, d, b, v, sp, recompute,
   sharding): wall time (cold: first call, pays the kernels' operator pricing; warm: cached), plans per second.
   Target: < 10 s on 2 cores.
2. Optimality gaps against the exhaustive optimum (equal stages, with interleaving) and, on `tiny`, against
   the enumerated partition space, for DP, CP-SAT, Optuna TPE / CMA-ES, the Megatron heuristic and a short
   MaskablePPO run on `sysgym/ParallelPlan-v0`.
3. Per-row error of the Table 1 predictions.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from sysgym import solvers
from sysgym.envs.parallel_plan import generate
from sysgym.envs.parallel_plan.calibration import summary, table1_report
from sysgym.envs.parallel_plan.cost import clear_caches


def bench_full_search(console: Console) -> None:
    inst = generate(preset="1t")
    clear_caches()
    ex = solvers.get("parallel_plan.exhaustive")
    rows = []
    for label in ("cold", "warm"):
        t0 = time.perf_counter()
        sol = ex.solve(inst)
        wall = time.perf_counter() - t0
        n = sol.stats["plans_evaluated"]
        rows.append((label, wall, n, n / wall, sol.stats["plan"], sol.objective, sol.stats["tflops_per_gpu"]))
    table = Table(title=f"exhaustive search: {inst.model.name} on {inst.num_gpus} x {inst.cluster.gpu.name}")
    for col in ("run", "wall (s)", "plans", "plans/s", "best plan", "iteration (s)", "TFLOP/s/GPU"):
        table.add_column(col)
    for r in rows:
        table.add_row(r[0], f"{r[1]:.2f}", str(r[2]), f"{r[3]:,.0f}", r[4], f"{r[5]:.2f}", f"{r[6]:.1f}")
    console.print(table)
    console.print(f"target < 10 s: {'met' if rows[0][1] < 10 else 'MISSED'} (cold {rows[0][1]:.2f} s)")


def maskable_ppo_plan(inst, timesteps: int, seed: int = 0):
    import torch
    from sb3_contrib import MaskablePPO

    from sysgym.envs.parallel_plan.env import ParallelPlanEnv

    torch.set_num_threads(1)
    env = ParallelPlanEnv(instance=inst)
    model = MaskablePPO("MlpPolicy", env, n_steps=256, batch_size=64, seed=seed, verbose=0)
    t0 = time.perf_counter()
    model.learn(total_timesteps=timesteps)
    obs, _ = env.reset(seed=seed)
    done = False
    while not done:
        action, _ = model.predict(obs, action_masks=env.action_masks(), deterministic=True)
        obs, _, done, _, _ = env.step(int(action))
    return env.current_plan(), time.perf_counter() - t0


def bench_gaps(console: Console, presets: list[str], rl_steps: int) -> None:
    table = Table(title="gap to the exhaustive optimum of the default space (iteration time, evaluator-scored); "
                        "'zero<=1' rows search without ZeRO-2/3")
    for col in ("instance", "method", "iteration (s)", "gap vs equal-stage optimum", "status", "wall (s)", "plan"):
        table.add_column(col)
    for preset in presets:
        inst = generate(preset=preset)
        ref = solvers.get("parallel_plan.exhaustive").solve(inst)
        runs = [("exhaustive", ref)]
        if preset == "tiny":
            runs.append(("exhaustive partitions=all", solvers.get("parallel_plan.exhaustive",
                                                                  partitions="all").solve(inst)))
            # Without ZeRO-2/3 the optimum needs unequal stages: the partition solvers against enumeration.
            for label, name, kw in (("zero<=1: exhaustive equal stages", "exhaustive", {"interleaving": False}),
                                    ("zero<=1: exhaustive partitions=all", "exhaustive", {"partitions": "all"}),
                                    ("zero<=1: dp", "dp", {}), ("zero<=1: cpsat", "cpsat", {})):
                runs.append((label, solvers.get(f"parallel_plan.{name}", max_zero_stage=1, **kw).solve(inst)))
        for name in ("dp", "cpsat", "optuna_tpe", "optuna_cmaes", "megatron"):
            with console.status(f"{preset}: parallel_plan.{name}"):
                runs.append((name, solvers.get(f"parallel_plan.{name}").solve(inst, time_limit=120, seed=0)))
        for label, sol in runs:
            gap = (sol.objective / ref.objective - 1) if np.isfinite(sol.objective) else float("inf")
            table.add_row(preset, label, f"{sol.objective:.4g}", f"{gap:+.2%}", sol.status, f"{sol.wall_time_s:.2f}",
                          sol.stats.get("plan", sol.stats.get("reason", "")))
        if rl_steps:
            with console.status(f"{preset}: MaskablePPO {rl_steps} steps"):
                plan, wall = maskable_ppo_plan(inst, rl_steps)
            t = inst.estimate(plan).iteration_time_s
            table.add_row(preset, f"MaskablePPO ({rl_steps} steps)", f"{t:.4g}", f"{t / ref.objective - 1:+.2%}",
                          "learned", f"{wall:.1f}", plan.describe())
    console.print(table)


def bench_table1(console: Console) -> None:
    for interleaving in (False, True):
        report = table1_report(interleaving=interleaving)
        title = ("Narayanan et al. SC'21 Table 1: TFLOP/s per GPU, nothing fitted; "
                 + ("interleaving allowed" if interleaving else "1F1B"))
        table = Table(title=title)
        for col in ("model", "t", "p", "GPUs", "b", "v", "published", "predicted", "error"):
            table.add_column(col)
        for r in report:
            table.add_row(f"{r['params_billion']}B", str(r["t"]), str(r["p"]), str(r["gpus"]), str(r["micro_batch"]),
                          str(r["virtual_stages"]), f"{r['published_tflops']:.0f}", f"{r['predicted_tflops']:.1f}",
                          f"{r['error_percent']:+.1f}%")
        console.print(table)
        s = summary(report)
        console.print(f"max |error| {s['max_abs_error']:.1f} %, mean over p >= 2 {s['mean_error_p_ge_2']:+.1f} %")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="skip the MaskablePPO runs")
    parser.add_argument("--rl-steps", type=int, default=6144)
    parser.add_argument("--presets", nargs="+", default=["tiny", "medium", "gpt3"])
    args = parser.parse_args()
    console = Console(width=200)
    bench_full_search(console)
    bench_gaps(console, args.presets, 0 if args.quick else args.rl_steps)
    bench_table1(console)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
