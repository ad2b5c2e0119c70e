"""`sysgym serve`: the LLM-serving simulator from the command line.

    sysgym serve sim --trace conv.csv --scheduler sarathi --rate-scale 0.5 --plot conv.png   (replay a trace)
    sysgym serve plan --trace conv.csv --requests 1000 --num-gpus 2 --price 2.0          (capacity search)
    sysgym serve sim --trace conv.csv --prefill 1,1,1 --decode 1,1,1    (prefill/decode disaggregation)
    sysgym serve plan --trace conv.csv --num-gpus 4 --disagg --pd-ratios 1:1,1:3   (+ disaggregated plans)

`sysgym serve-sim` and `sysgym serve-plan`, the commands' old names, take the same flags.
"""
from __future__ import annotations

import argparse
import json
import sys

SIM_KEYS = ("num_requests", "ttft_p50", "ttft_p90", "ttft_p99", "tbt_p50", "tbt_p99", "tpot_p50", "e2e_p50",
            "e2e_p99", "throughput_rps", "slo_attainment", "num_preemptions", "gpu_busy_frac", "mfu", "kv_util_mean",
            "num_iterations")


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


def _error(exc: Exception) -> int:
    print(f"error: {exc.args[0] if isinstance(exc, KeyError) and exc.args else exc}", file=sys.stderr)
    return 2


def _sim(args) -> int:
    from sysgym.envs.llm_serving import simulate
    from sysgym.errors import SysgymError

    try:
        tr = _trace(args)
        params = json.loads(args.params) if args.params else {}
        if not isinstance(params, dict):
            raise ValueError(f"--params must be a JSON object, got {args.params!r}")
        if args.prefill or args.decode:
            res = _sim_disagg(args, tr, params)
        else:
            res = simulate(tr, model=args.model, gpu=args.gpu, scheduler=args.scheduler, tp=args.tp, pp=args.pp,
                           num_replicas=args.replicas, router=args.router, seed=args.seed, slo_ttft_s=args.slo_ttft,
                           slo_tpot_s=args.slo_tpot, **params)
    except (SysgymError, KeyError, TypeError, ValueError, FileNotFoundError) as exc:
        return _error(exc)
    m = res.metrics
    width = max(len(k) for k in SIM_KEYS)
    c = res.config
    if c.get("disaggregated"):
        p, d = c["prefill"], c["decode"]
        print(f"{c['model']} on {c['gpu']}, disaggregated: prefill {p['replicas']} x TP{p['tp']} PP{p['pp']} "
              f"({p['scheduler']}, {p['router']}), decode {d['replicas']} x TP{d['tp']} PP{d['pp']} ({d['scheduler']}, "
              f"{d['router']}), {c['num_gpus']} GPUs, KV transfer mean {m['kv_transfer_mean_s'] * 1e3:.2f} ms")
    else:
        print(f"{c['model']} on {c['tp'] * c['pp']} x {c['gpu']} x {c['num_replicas']} replicas, scheduler "
              f"{c['scheduler']}, {res.plan.num_blocks} KV blocks per replica")
    for k in SIM_KEYS:
        v = m.get(k)
        print(f"  {k:<{width}}  {v:.4f}" if isinstance(v, float) else f"  {k:<{width}}  {v}")
    if args.plot:
        print(f"plot: {res.plot(args.plot)}")
    return 0


def _pool(text: str | None, name: str, scheduler: str, router: str):
    """"tp,pp,replicas" -> a disaggregation Pool (a named error for anything else)."""
    from sysgym.envs.llm_serving.disagg import as_pool
    from sysgym.errors import InvalidArgumentError

    try:
        tp, pp, n = (int(x) for x in (text or "1,1,1").split(","))
    except ValueError:
        raise InvalidArgumentError(f"--{name} must be 'tp,pp,replicas' (integers), got {text!r}") from None
    return as_pool((tp, pp, n, scheduler, router), name)


def _sim_disagg(args, tr, params):
    from sysgym.envs.llm_serving.disagg import simulate_disagg

    pre = _pool(args.prefill, "prefill", "vllm", args.prefill_router)
    dec = _pool(args.decode, "decode", args.scheduler, args.decode_router)
    return simulate_disagg(tr, model=args.model, gpu=args.gpu, prefill=pre, decode=dec, kv_link=args.kv_link,
                           seed=args.seed, slo_ttft_s=args.slo_ttft, slo_tpot_s=args.slo_tpot, decode_params=params)


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
                           slo_tpot_s=args.slo_tpot, search=args.search, trials=args.trials, seed=args.seed,
                           progress=sys.stderr.isatty(), disaggregated=args.disagg or args.disagg_only,
                           pd_ratios=args.pd_ratios, colocated=not args.disagg_only)
    except (SysgymError, KeyError, TypeError, ValueError, FileNotFoundError) as exc:
        return _error(exc)
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


def _trace_args(p: argparse.ArgumentParser) -> None:
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


def _sim_args(p: argparse.ArgumentParser) -> None:
    _trace_args(p)
    p.add_argument("--scheduler", default="vllm", help="vllm | orca | sarathi | past_future | vtc | sjf")
    p.add_argument("--tp", type=int, default=1)
    p.add_argument("--pp", type=int, default=1)
    p.add_argument("--replicas", type=int, default=1)
    p.add_argument("--router", default="round_robin", help="round_robin | least_outstanding | jsq | power_of_two")
    p.add_argument("--params", default=None, help='scheduler parameters as JSON, e.g. \'{"chunk_size": 256}\'')
    p.add_argument("--plot", default=None, help="write latency CDFs and KV memory over time to this PNG")
    p.add_argument("--prefill", default=None, help="disaggregate: prefill pool 'tp,pp,replicas' (vLLM scheduler)")
    p.add_argument("--decode", default=None, help="disaggregate: decode pool 'tp,pp,replicas' (--scheduler)")
    p.add_argument("--prefill-router", default="least_outstanding", help="router of the prefill pool")
    p.add_argument("--decode-router", default="least_outstanding", help="router of the decode pool")
    p.add_argument("--kv-link", default="auto", help="KV transfer link: auto | nvlink | network")
    p.set_defaults(func=_sim)


def _plan_args(p: argparse.ArgumentParser) -> None:
    _trace_args(p)
    p.add_argument("--num-gpus", type=int, default=4)
    p.add_argument("--schedulers", default="vllm,sarathi")
    p.add_argument("--batch-caps", default="64,256")
    p.add_argument("--chunk-sizes", default="256,512")
    p.add_argument("--max-tp", type=int, default=8)
    p.add_argument("--max-pp", type=int, default=2)
    p.add_argument("--price", type=float, default=None, help="$ per GPU-hour (an input; no price list ships)")
    p.add_argument("--search", default="grid", help="grid | optuna")
    p.add_argument("--trials", type=int, default=20, help="Optuna trials")
    p.add_argument("--json", default=None, help="also write the ranked plans to this JSON file")
    p.add_argument("--disagg", action="store_true", help="also search prefill/decode disaggregated pools")
    p.add_argument("--disagg-only", action="store_true", help="search only disaggregated pools")
    p.add_argument("--pd-ratios", default=None, help="P:D replica ratios to try, e.g. 1:1,1:2 (default: all)")
    p.set_defaults(func=_plan)


SIM_HELP = "replay a request trace on simulated LLM-serving replicas"
PLAN_HELP = "search TP x PP x replicas x scheduler for the highest SLO capacity"


def register(sub) -> None:
    p = sub.add_parser("serve", help="LLM serving: replay traces (sim), search serving plans (plan)")
    serve = p.add_subparsers(dest="serve_command", required=True)
    _sim_args(serve.add_parser("sim", help=SIM_HELP))
    _plan_args(serve.add_parser("plan", help=PLAN_HELP))
    # The old command names, with the same flags.
    _sim_args(sub.add_parser("serve-sim", help=f"{SIM_HELP} (= serve sim)"))
    _plan_args(sub.add_parser("serve-plan", help=f"{PLAN_HELP} (= serve plan)"))
