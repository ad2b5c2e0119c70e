"""Benchmark of the LLM-serving simulator (issue 6): speed on the whole Azure conv trace, and the
p50/p99 TTFT/TBT of every scheduler at two load levels, plus the CP-SAT gaps on tiny traces.

    .venv/bin/python benchmarks/llm_serving_bench.py [--trace ../shared/data/azure_llm_2023/conv.csv]
        [--skip-schedulers] [--skip-cpsat] [--plot out.png]

Speed target: each of vllm / sarathi x (Llama-2-7B on 1 A100-80GB, CodeLlama-34B on 2 A100-80GB TP2)
under 3 s on one core. CPU seconds (process time) are printed beside wall time because this machine may
be shared.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console
from rich.progress import track
from rich.table import Table

from sysgym.envs.llm_serving import generate, load_trace, simulate

DEFAULT_TRACE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "azure_llm_2023" / "conv.csv"
CONFIGS = {"llama-2-7b/a100x1": {"model": "llama-2-7b", "tp": 1},
           "codellama-34b/a100x2-tp2": {"model": "codellama-34b", "tp": 2}}
SCHEDULERS = ("vllm", "orca", "sarathi", "past_future", "vtc", "sjf")


def speed(trace, console: Console) -> None:
    table = Table(title=f"simulation speed: {len(trace)} requests, {trace.duration:.0f} s of trace, one replica")
    for col in ("config", "scheduler", "wall s", "cpu s", "requests/s", "iterations", "iterations/s (cpu)",
                "target < 3 s"):
        table.add_column(col)
    for cname, cfg in CONFIGS.items():
        for sched in ("vllm", "sarathi"):
            simulate(trace[:200], scheduler=sched, **cfg)  # warm caches and imports
            t, c = time.perf_counter(), time.process_time()
            res = simulate(trace, scheduler=sched, **cfg)
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            it = res.metrics["num_iterations"]
            table.add_row(cname, sched, f"{wall:.2f}", f"{cpu:.2f}", f"{len(trace) / cpu:,.0f}", f"{it:,}",
                          f"{it / cpu:,.0f}", "yes" if cpu < 3 else "NO")
    console.print(table)


def schedulers(trace, console: Console, plot: str | None, loads=(0.5, 1.0)) -> None:
    for factor in loads:
        label = f"load {factor:g}x the trace's rate ({factor * trace.stats()['rate_rps']:.2f} req/s)"
        tr = trace.scale_rate(factor)
        table = Table(title=f"Azure conv, Llama-2-7B on one A100-80GB, {label}: latency (s)")
        for col in ("scheduler", "TTFT p50", "TTFT p99", "TBT p50", "TBT p99", "E2E p50", "E2E p99", "preemptions",
                    "throughput req/s"):
            table.add_column(col)
        runs = {}
        for sched in track(SCHEDULERS, description=label, console=console, transient=True):
            res = simulate(tr, scheduler=sched)
            runs[sched] = res
            m = res.metrics
            table.add_row(sched, *(f"{m[k]:.3f}" for k in ("ttft_p50", "ttft_p99", "tbt_p50", "tbt_p99",
                                                              "e2e_p50", "e2e_p99")),
                          str(m["num_preemptions"]), f"{m['throughput_rps']:.2f}")
        console.print(table)
        if plot:
            from sysgym.envs.llm_serving.plots import plot_compare

            out = Path(plot).with_name(Path(plot).stem + f"_x{factor:g}" + Path(plot).suffix)
            plot_compare(runs, out, title=f"Azure conv on Llama-2-7B / A100-80GB, {label}")
            console.print(f"plot: {out}")


def cpsat(console: Console, seeds=(0, 1, 2), time_limit: float = 10.0) -> None:
    from sysgym import solvers
    from sysgym.envs.llm_serving.evaluate import evaluate

    table = Table(title="CP-SAT lower bound on mean latency (s), tiny preset (20 requests, batch cap 4, 64 KV blocks)")
    for col in ("seed", "bound", "CP-SAT status", "trivial bound", *SCHEDULERS, "best gap"):
        table.add_column(col)
    for seed in seeds:
        inst = generate(preset="tiny", seed=seed)
        sol = solvers.get("llm_serving.cpsat").solve(inst, time_limit=time_limit)
        objs = {s: evaluate(inst, solvers.get(f"llm_serving.{s}").solve(inst))["e2e_mean"] for s in SCHEDULERS}
        best = min(objs.values())
        table.add_row(str(seed), f"{sol.bound:.4f}", sol.stats["cpsat_status"], f"{sol.stats['trivial_bound']:.4f}",
                      *(f"{objs[s]:.4f} ({(objs[s] - sol.bound) / objs[s]:.0%})" for s in SCHEDULERS),
                      f"{(best - sol.bound) / best:.0%}")
    console.print(table)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trace", default=str(DEFAULT_TRACE))
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-schedulers", action="store_true")
    ap.add_argument("--skip-cpsat", action="store_true")
    ap.add_argument("--plot", default=None, help="write latency-CDF / memory plots (one per load level)")
    ap.add_argument("--loads", default="0.5,1.0", help="arrival-rate multipliers of the trace for the scheduler table")
    args = ap.parse_args()
    console = Console(width=150)
    trace = load_trace(args.trace)
    if not args.skip_speed:
        speed(trace, console)
    if not args.skip_schedulers:
        schedulers(trace, console, args.plot, tuple(float(x) for x in args.loads.split(",")))
    if not args.skip_cpsat:
        cpsat(console)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
