"""Benchmark of pipelined PP and prefill/decode disaggregation in the LLM-serving simulator (issue 19, items
3 and 4): speed, PP throughput against the one-batch-at-a-time pipeline, and where disaggregation wins or
loses against colocated replicas on the same number of GPUs (Azure LLM 2023 conv and code traces, shipped).

    .venv/bin/python benchmarks/llm_serving_disagg_bench.py [--requests 1000] [--num-gpus 4]
        [--skip-speed] [--skip-pp] [--skip-disagg]

Speed target: a disaggregated run of the whole conv trace (19,366 requests) under 5 CPU s. CPU seconds
(process time) are printed beside wall time because this machine may be shared.
"""
from __future__ import annotations

import argparse
import time
from functools import partial

from rich.console import Console
from rich.table import Table

from sysgym import datasets
from sysgym.envs.llm_serving import load_trace, simulate
from sysgym.envs.llm_serving.disagg import Pool, simulate_disagg
from sysgym.solvers.llm_serving.plan import search_plans

TRACES = ("azure-conv-2023", "azure-code-2023")
# (TTFT, TPOT) SLOs: Vidur-Search's defaults (P90 TTFT 2 s, TBT 200 ms; metrics.DEFAULT_SLO_*), and a tight
# TPOT in the spirit of DistServe's chatbot SLOs (their 0.1 s TPOT for a 13B model on A100s, scaled to the
# ~15 ms decode step of Llama-2-7B here) with a 1 s TTFT
SLOS = ((2.0, 0.2), (1.0, 0.03))


def _trace(name: str):
    return load_trace(datasets.path(name), format="azure")


def _timed(fn):
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def speed(console: Console) -> None:
    conv = _trace("azure-conv-2023")
    table = Table(title=f"speed: the whole Azure conv trace ({len(conv):,} requests), Llama-2-7B / A100-80GB")
    for col in ("run", "GPUs", "wall s", "cpu s", "target"):
        table.add_column(col)
    simulate_disagg(conv[:300])  # warm caches and imports
    runs = {"disaggregated 1P:1D": lambda: simulate_disagg(conv, prefill=Pool(1, 1, 1), decode=Pool(1, 1, 1)),
            "disaggregated 2P:2D": lambda: simulate_disagg(conv, prefill=Pool(1, 1, 2), decode=Pool(1, 1, 2)),
            "colocated 2 replicas": lambda: simulate(conv, num_replicas=2, router="least_outstanding"),
            "colocated TP1 x PP2 (micro-batches)": lambda: simulate(conv, pp=2)}
    for name, fn in runs.items():
        res, wall, cpu = _timed(fn)
        gpus = res.metrics.get("num_gpus") or res.config["tp"] * res.config["pp"] * res.config["num_replicas"]
        target = ("< 5 s: " + ("yes" if cpu < 5 else "NO")) if name.startswith("disagg") else "-"
        table.add_row(name, str(gpus), f"{wall:.2f}", f"{cpu:.2f}", target)
    console.print(table)


def pipeline(console: Console, requests: int) -> None:
    conv = _trace("azure-conv-2023")[:requests]
    table = Table(title=f"pipeline parallelism: throughput (req/s) of the first {requests} conv requests at 8x the "
                        "trace's rate (saturated)")
    for col in ("model", "plan", "scheduler", "sequential (1 batch)", "micro-batches", "gain", "bound pp x seq",
                "TTFT p50 s (micro)", "TBT p50 s (micro)"):
        table.add_column(col)
    tr = conv.scale_rate(8.0)
    for model, tp, pp in (("codellama-34b", 1, 2), ("codellama-34b", 1, 4), ("llama-2-70b", 2, 4)):
        for sched in ("vllm", "sarathi"):
            kw = dict(model=model, tp=tp, pp=pp, scheduler=sched)
            seq = simulate(tr, pipeline="sequential", **kw).metrics
            mb = simulate(tr, **kw).metrics
            table.add_row(model, f"TP{tp} x PP{pp}", sched, f"{seq['throughput_rps']:.2f}",
                          f"{mb['throughput_rps']:.2f}", f"{mb['throughput_rps'] / seq['throughput_rps']:.2f}x",
                          f"{pp * seq['throughput_rps']:.2f}", f"{mb['ttft_p50']:.2f}", f"{mb['tbt_p50']:.4f}")
    console.print(table)


def disagg(console: Console, requests: int, num_gpus: int) -> None:
    table = Table(title=f"capacity (req/s at >= 90 % SLO attainment) on {num_gpus} A100-80GB, Llama-2-7B, first "
                        f"{requests} requests of each trace: best colocated vs best disaggregated plan")
    for col in ("trace", "SLO TTFT/TPOT s", "best colocated", "req/s", "best disaggregated", "req/s", "winner",
                "plans", "cpu s"):
        table.add_column(col)
    for name in TRACES:
        tr = _trace(name)[:requests]
        for ttft, tpot in SLOS:
            res, _, cpu = _timed(partial(
                search_plans, tr, num_gpus=num_gpus, schedulers=("vllm", "sarathi"), batch_caps=(256,),
                chunk_sizes=(512,), max_tp=2, max_pp=1, disaggregated=True, slo_ttft_s=ttft, slo_tpot_s=tpot,
                bisect_steps=4, progress=False))
            col = next(r for r in res if r.mode == "colocated")
            dis = next(r for r in res if r.mode == "disaggregated")
            win = "disaggregated" if dis.max_rate_rps > col.max_rate_rps else \
                "colocated" if col.max_rate_rps > dis.max_rate_rps else "tie"
            table.add_row(name, f"{ttft:g} / {tpot:g}", f"{col.describe()} {col.scheduler}", f"{col.max_rate_rps:.2f}",
                          dis.describe(), f"{dis.max_rate_rps:.2f}", win, str(len(res)), f"{cpu:.0f}")
    console.print(table)
    # why: latency of the two shapes at the trace's own rate x 2
    table = Table(title=f"latency at 2x each trace's rate, {num_gpus} GPUs: colocated {num_gpus} x TP1 (sarathi, "
                        f"chunk 512) vs disaggregated {num_gpus // 2}P:{num_gpus // 2}D (TP1)")
    for col in ("trace", "plan", "TTFT p50", "TTFT p90", "TPOT p50", "TPOT p90", "KV transfer ms"):
        table.add_column(col)
    half = max(1, num_gpus // 2)
    for name in TRACES:
        tr = _trace(name)[:requests].scale_rate(2.0)
        col = simulate(tr, scheduler="sarathi", chunk_size=512, num_replicas=num_gpus, router="least_outstanding")
        dis = simulate_disagg(tr, prefill=Pool(1, 1, half), decode=Pool(1, 1, num_gpus - half))
        for label, m in (("colocated", col.metrics), ("disaggregated", dis.metrics)):
            table.add_row(name, label, *(f"{m[k]:.3f}" for k in ("ttft_p50", "ttft_p90", "tpot_p50", "tpot_p90")),
                          f"{m.get('kv_transfer_mean_s', 0) * 1e3:.2f}" if label == "disaggregated" else "-")
    console.print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=1000, help="trace window for the PP and plan comparisons")
    ap.add_argument("--num-gpus", type=int, default=4)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-pp", action="store_true")
    ap.add_argument("--skip-disagg", action="store_true")
    args = ap.parse_args()
    console = Console(width=160)
    if not args.skip_speed:
        speed(console)
    if not args.skip_pp:
        pipeline(console, args.requests)
    if not args.skip_disagg:
        disagg(console, args.requests, args.num_gpus)


if __name__ == "__main__":
    main()
