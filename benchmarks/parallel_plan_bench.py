"""Parallel-plan benchmark: search speed, placement and context parallelism, gaps of every method, validation.

    .venv/bin/python benchmarks/parallel_plan_bench.py            # everything (a few minutes on 2 cores)
    .venv/bin/python benchmarks/parallel_plan_bench.py --quick    # without the MaskablePPO runs

Prints:
1. Full exhaustive search for the 1T-parameter GPT on 3072 A100s (all legal t, c, p, d, b, v, sp, recompute,
   sharding, placement; homogeneous cluster, so placement is Megatron's rank order): wall time (cold: first
   call, pays the kernels' operator pricing; warm: cached), plans per second, without and with FlashAttention
   (which puts context parallelism in the space). Target: < 2 s cold.
2. Heterogeneous clusters (presets hetero: IB/RoCE halves; two_tier: two racks): the placement-aware optimum
   against the placement-oblivious plan (the best plan for the same nodes all on InfiniBand, run with Megatron's
   rank order), the best rank-order plan priced on the real links, and Megatron's rules.
3. Long sequences (preset long, 128K tokens): the best plan with and without context parallelism.
4. GPT-3 175B on 1,024 A100s: the paper's plan and the model's own best against the published figures.
5. Optimality gaps against the exhaustive optimum (equal stages, with interleaving) and, on `tiny`, against
   the enumerated partition space, for DP, CP-SAT, Optuna TPE / CMA-ES, the Megatron heuristic and a short
   MaskablePPO run on `sysgym/ParallelPlan-v0`.
6. Table 1 (both protocols) and Korthikanti et al. Table 5, every row a prediction.
Timings depend on the machine's load (the figures in the README were taken on 2 shared cores).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from sysgym import kernels, solvers
from sysgym.envs.parallel_plan import PlanInstance, TrainingPlan, generate
from sysgym.envs.parallel_plan.calibration import summary, table1_report, table5_report
from sysgym.envs.parallel_plan.cost import clear_caches
from sysgym.envs.parallel_plan.evaluate import as_plan
from sysgym.envs.parallel_plan.space import evaluate_space, uniform_space


def bench_full_search(console: Console) -> None:
    ex = solvers.get("parallel_plan.exhaustive")
    table = Table(title="exhaustive search: gpt-1t on 3072 x a100-80gb")
    for col in ("instance", "run", "wall (s)", "plans", "plans/s", "best plan", "iteration (s)", "TFLOP/s/GPU"):
        table.add_column(col)
    colds = []
    for label, kw in (("1t", {}), ("1t + FlashAttention (context parallelism)", {"flash_attention": True})):
        inst = generate(preset="1t", **kw)
        clear_caches()
        for run in ("cold", "warm"):
            t0 = time.perf_counter()
            sol = ex.solve(inst)
            wall = time.perf_counter() - t0
            n = sol.stats["plans_evaluated"]
            if run == "cold":
                colds.append(wall)
            table.add_row(label, run, f"{wall:.2f}", str(n), f"{n / wall:,.0f}", sol.stats["plan"],
                          f"{sol.objective:.2f}", f"{sol.stats['tflops_per_gpu']:.1f}")
    console.print(table)
    console.print(f"target < 2 s cold: {'met' if max(colds) < 2 else 'MISSED'} (cold "
                  + ", ".join(f"{c:.2f} s" for c in colds) + ")")


def _all_on_first_group(inst):
    c = inst.cluster
    homogeneous = kernels.Cluster(gpu=c.gpu, num_nodes=c.num_nodes, gpus_per_node=c.gpus_per_node,
                                  intra_node=c.intra_node, inter_node=c.groups[0].inter_node,
                                  name=f"{c.name}-as-{c.groups[0].inter_node.name}")
    return PlanInstance(inst.model, homogeneous, inst.seq_len, inst.global_batch, name=f"{inst.name} (homogeneous)")


def bench_placement(console: Console) -> None:
    table = Table(title="heterogeneous clusters: placement-aware optimum vs placement-oblivious plans "
                        "(iteration time; speed-up = other / aware)")
    for col in ("instance", "plan", "iteration (s)", "speed-up of aware", "plan"):
        table.add_column(col)
    for preset in ("hetero", "two_tier"):
        inst = generate(preset=preset)
        aware = solvers.get("parallel_plan.exhaustive").solve(inst)
        planned = solvers.get("parallel_plan.exhaustive").solve(_all_on_first_group(inst))
        oblivious = inst.estimate(as_plan(planned.decisions))
        ranked = solvers.get("parallel_plan.exhaustive", placements=False).solve(inst)
        megatron = solvers.get("parallel_plan.megatron").solve(inst)
        rows = [("placement-aware optimum", aware.objective, aware.stats["plan"]),
                ("oblivious: best plan for all-InfiniBand nodes, rank order", oblivious.iteration_time_s,
                 oblivious.plan.describe()),
                ("best rank-order plan, real links", ranked.objective, ranked.stats["plan"]),
                ("Megatron rules (rank order)", megatron.objective, megatron.stats.get("plan", ""))]
        for label, t, plan in rows:
            table.add_row(preset, label, f"{t:.2f}", f"x{t / aware.objective:.3f}", plan)
    console.print(table)


def bench_long(console: Console) -> None:
    inst = generate(preset="long")
    t0 = time.perf_counter()
    space = uniform_space(inst)
    out = evaluate_space(inst, space)
    wall = time.perf_counter() - t0
    feas = out["feasible"]
    c = space.cfg["c"]
    best = int(np.argmin(np.where(feas, out["time"], np.inf)))
    no_cp = int(np.argmin(np.where(feas & (c == 1), out["time"], np.inf)))
    table = Table(title=f"{inst.model.name}, {inst.seq_len} tokens per sequence, {inst.global_batch} sequences, "
                        f"{inst.num_gpus} GPUs: {len(space)} plans priced in {wall:.2f} s")
    for col in ("", "plan", "iteration (s)", "TFLOP/s/GPU", "memory (GiB)"):
        table.add_column(col)
    for label, k in (("best", best), ("best without context parallelism", no_cp)):
        est = inst.estimate(space.plan(k))
        table.add_row(label, est.plan.describe(), f"{est.iteration_time_s:.2f}", f"{est.tflops_per_gpu:.1f}",
                      f"{est.memory_gib.total:.1f}")
    console.print(table)


def bench_gpt3(console: Console) -> None:
    inst = generate(preset="gpt3")
    paper = inst.estimate(TrainingPlan(tp=8, pp=16, dp=8, micro_batch=1, recompute="full"))
    best = inst.estimate(as_plan(solvers.get("parallel_plan.exhaustive").solve(inst).decisions))
    table = Table(title="GPT-3 175B on 1024 A100s, batch 1536")
    for col in ("plan", "predicted TFLOP/s/GPU", "predicted MFU", "published"):
        table.add_column(col)
    table.add_row(paper.plan.describe(), f"{paper.tflops_per_gpu:.1f}", f"{paper.mfu:.1%}",
                  "140 TFLOP/s (Narayanan et al. SC'21, Sec. 5.1)")
    table.add_row(best.plan.describe() + " (model's optimum)", f"{best.tflops_per_gpu:.1f}", f"{best.mfu:.1%}",
                  "MFU 51.4 % (Korthikanti et al. 2022, Table 5: 175B, SP + selective, 64 GPUs)")
    console.print(table)


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


def bench_table5(console: Console) -> None:
    table = Table(title="Korthikanti et al. 2022 Table 5: iteration time (s), nothing fitted")
    for col in ("model", "setting", "published", "predicted", "throughput error", "MFU"):
        table.add_column(col)
    for r in table5_report():
        table.add_row(r["model_size"], r["setting"], f"{r['published_s']:.2f}", f"{r['predicted_s']:.2f}",
                      f"{r['throughput_error_percent']:+.1f}%", f"{r['mfu']:.1%}")
    console.print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="skip the MaskablePPO runs")
    parser.add_argument("--rl-steps", type=int, default=6144)
    parser.add_argument("--presets", nargs="+", default=["tiny", "medium", "gpt3"])
    args = parser.parse_args()
    console = Console(width=200)
    bench_full_search(console)
    bench_placement(console)
    bench_long(console)
    bench_gpt3(console)
    bench_gaps(console, args.presets, 0 if args.quick else args.rl_steps)
    bench_table1(console)
    bench_table5(console)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
