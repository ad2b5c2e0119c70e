"""`sysgym serve-sim` (replay a trace) and `sysgym serve-plan` (serving-plan / capacity search)."""
from __future__ import annotations

import argparse
import json
import sys


def _trace(args):
    from sysgym.envs.llm_serving import generate, load_trace

    if args.trace:
        tr = load_trace(args.trace, format=args.format)
    else:
        tr = generate(preset=args.preset, seed=args.seed).trace
    if args.requests:
        tr = tr[: args.requests]
    if args.rate_scale != 1.0:
        tr = tr.scale_rate(args.rate_scale)
    return tr


def _add_trace_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trace", help="trace file (Azure LLM 2023 or BurstGPT CSV); default: a generated preset")
    p.add_argument("--format", default="azure", help="trace format: azure | burstgpt")
    p.add_argument("--preset", default="small", help="generator preset when no --trace is given")
    p.add_argument("--requests", type=int, default=None, help="keep the first N requests")
    p.add_argument("--rate-scale", type=float, default=1.0, help="multiply the arrival rate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default="llama-2-7b")
    p.add_argument("--gpu", default="a100-80gb")
    p.add_argument("--slo-ttft", type=float, default=2.0, help="TTFT SLO (s)")
    p.add_argument("--slo-tpot", type=float, default=0.2, help="TPOT SLO (s per token)")


def _sim(args) -> int:
    from sysgym.envs.llm_serving import simulate
    from sysgym.errors import SysgymError

    try:
        tr = _trace(args)
        params = json.loads(args.params) if args.params else {}
        res = simulate(tr, model=args.model, gpu=args.gpu, scheduler=args.scheduler, tp=args.tp, pp=args.pp,
                       num_replicas=args.replicas, router=args.router, seed=args.seed, slo_ttft_s=args.slo_ttft,
                       slo_tpot_s=args.slo_tpot, **params)
    except (SysgymError, KeyError, TypeError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 2
    m = res.metrics
    keys = ("num_requests", "ttft_p50", "ttft_p90", "ttft_p99", "tbt_p50", "tbt_p99", "tpot_p50", "e2e_p50",
            "e2e_p99", "throughput_rps", "slo_attainment", "num_preemptions", "gpu_busy_frac", "mfu", "kv_util_mean",
            "num_iterations")
    width = max(len(k) for k in keys)
    print(f"{res.config['model']} on {res.config['tp'] * res.config['pp']} x {res.config['gpu']} x "
          f"{res.config['num_replicas']} replicas, scheduler {res.config['scheduler']}, {res.plan.num_blocks} KV "
          f"blocks per replica")
    for k in keys:
        v = m.get(k)
        print(f"  {k:<{width}}  {v:.4f}" if isinstance(v, float) else f"  {k:<{width}}  {v}")
    if args.plot:
        print(f"plot: {res.plot(args.plot)}")
    return 0


def _plan(args) -> int:
    from sysgym.errors import SysgymError
    from sysgym.solvers.llm_serving.plan import format_table, search_plans

    try:
        tr = _trace(args)
        res = search_plans(tr, model=args.model, gpu=args.gpu, num_gpus=args.num_gpus,
                           schedulers=args.schedulers.split(","),
                           batch_caps=[int(x) for x in args.batch_caps.split(",")],
                           chunk_sizes=[int(x) for x in args.chunk_sizes.split(",")], max_tp=args.max_tp,
                           max_pp=args.max_pp, price_per_gpu_hour=args.price, slo_ttft_s=args.slo_ttft,
                           slo_tpot_s=args.slo_tpot, search=args.search, trials=args.trials, seed=args.seed)
    except (SysgymError, KeyError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 2
    if not res:
        print(f"error: {args.model} fits no TP x PP split of {args.num_gpus} {args.gpu}", file=sys.stderr)
        return 2
    print(format_table(res, title=f"{args.model} on {args.num_gpus} x {args.gpu}: capacity at >= 90 % SLO "
                                  f"attainment (TTFT <= {args.slo_ttft} s, TPOT <= {args.slo_tpot} s), "
                                  f"{len(tr)} requests"))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump([r.to_dict() for r in res], fh, indent=1)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("serve-sim", help="replay a request trace on simulated LLM-serving replicas")
    _add_trace_args(p)
    p.add_argument("--scheduler", default="vllm", help="vllm | orca | sarathi | past_future | vtc | sjf")
    p.add_argument("--tp", type=int, default=1)
    p.add_argument("--pp", type=int, default=1)
    p.add_argument("--replicas", type=int, default=1)
    p.add_argument("--router", default="round_robin", help="round_robin | least_outstanding | jsq | power_of_two")
    p.add_argument("--params", default=None, help='scheduler parameters as JSON, e.g. \'{"chunk_size": 256}\'')
    p.add_argument("--plot", default=None, help="write latency CDFs and KV memory over time to this PNG")
    p.set_defaults(func=_sim)

    q = subparsers.add_parser("serve-plan", help="search TP x PP x replicas x scheduler for the highest SLO capacity")
    _add_trace_args(q)
    q.add_argument("--num-gpus", type=int, default=4)
    q.add_argument("--schedulers", default="vllm,sarathi")
    q.add_argument("--batch-caps", default="64,256")
    q.add_argument("--chunk-sizes", default="256,512")
    q.add_argument("--max-tp", type=int, default=8)
    q.add_argument("--max-pp", type=int, default=2)
    q.add_argument("--price", type=float, default=None, help="$ per GPU-hour (an input; no price list ships)")
    q.add_argument("--search", default="grid", help="grid | optuna")
    q.add_argument("--trials", type=int, default=20, help="Optuna trials")
    q.add_argument("--json", default=None, help="also write the ranked plans to this JSON file")
    q.set_defaults(func=_plan)
