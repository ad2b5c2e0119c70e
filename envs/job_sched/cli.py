"""`sysgym job-sched`: compare scheduling policies on generated workloads (or a trace), with a per-user plot."""
from __future__ import annotations

import argparse
import json


def _compare(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import track
    from rich.table import Table

    from sysgym.envs.job_sched import evaluate, generate, simulate
    from sysgym.envs.job_sched.plots import plot_per_user
    from sysgym.envs.job_sched.traces import load_trace

    params = json.loads(args.params) if args.params else {}
    if args.trace:
        instances = [load_trace(args.trace, num_executors=args.executors or 100)]
    else:
        instances = [generate(preset=args.preset, seed=s, **params) for s in range(args.seeds)]
    runs: dict[str, list] = {}
    rows = []
    for name in args.policies.split(","):
        pol, _, opt = name.partition("+")
        kw = {"runtime_partition_s": 0.5} if opt == "part" else {}
        ms = []
        for inst in track(instances, description=f"{name:14s}", transient=True):
            res = simulate(inst, pol, seed=0, **kw)
            ms.append(evaluate(inst, res.schedule))  # the evaluator re-checks every schedule
            runs.setdefault(name, []).append((inst, res.job_finish))
        rows.append((name, *(sum(m[k] for m in ms) / len(ms) for k in (
            "mean_response_s", "small_job_mean_response_s", "p95_response_s", "user_slowdown_ratio",
            "utilisation"))))
    table = Table(title=f"job_sched: {instances[0].name} ({len(instances)} instance(s))")
    for col in ("policy", "mean resp s", "small-job mean s", "p95 s", "user slowdown ratio", "utilisation"):
        table.add_column(col)
    for r in rows:
        table.add_row(r[0], *(f"{x:.2f}" if x is not None else "-" for x in r[1:]))
    Console().print(table)
    if args.plot:
        print(f"plot: {plot_per_user(runs, args.plot, title=instances[0].name)}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("job-sched", help="compare job-scheduling policies (mean/small-job/p95 response, "
                                                "fairness) and plot per-user response times")
    p.add_argument("--preset", default="multiuser")
    p.add_argument("--params", default=None, help='generator overrides as JSON, e.g. \'{"num_jobs": 50}\'')
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--trace", default=None, help="an Alibaba 2018 batch_task.csv or Google 2019 instance_events slice")
    p.add_argument("--executors", type=int, default=None, help="cluster size for --trace")
    p.add_argument("--policies", default="fifo,fair,user_fair,cfq,decima_cap,srpt,random,uwfq,uwfq+part",
                   help="comma-separated; '+part' adds UWFQ's runtime partitioning (0.5 s)")
    p.add_argument("--plot", default=None, help="write a per-user response-time plot (PNG)")
    p.set_defaults(func=_compare)
