"""`sysgym jobs` (alias `sysgym job-sched`): compare job-scheduling policies on generated workloads (or a trace),
every schedule re-checked by `job_sched.evaluate`, with a per-user response-time plot.

    sysgym jobs --preset multiuser --seeds 3 --plot per_user.png
    sysgym jobs --trace batch_task.csv --executors 100 --policies fifo,fair,uwfq+part
"""
from __future__ import annotations

import argparse
import json

DEFAULT_POLICIES = "fifo,fair,user_fair,cfq,decima_cap,srpt,random,uwfq,uwfq+part"
OPTIONS = {"": {}, "part": {"runtime_partition_s": 0.5}}  # '<policy>+part': UWFQ's runtime partitioning


def _policies(spec: str) -> list[tuple[str, str, dict]]:
    """(label, policy name, options) per comma-separated entry; unknown names fail before any work."""
    from sysgym.envs.job_sched import policy_names
    from sysgym.errors import UnknownNameError

    known = policy_names()
    out = []
    for label in (s.strip() for s in spec.split(",") if s.strip()):
        name, _, opt = label.partition("+")
        if name.removeprefix("job_sched.") not in known:
            raise UnknownNameError("job_sched policy", name, known)
        if opt not in OPTIONS:
            raise UnknownNameError("policy option", f"+{opt}", [f"+{o}" for o in OPTIONS if o])
        out.append((label, name, OPTIONS[opt]))
    return out


def _compare(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import track
    from rich.table import Table

    from sysgym.envs.job_sched import evaluate, generate, simulate
    from sysgym.envs.job_sched.plots import plot_per_user
    from sysgym.envs.job_sched.traces import load_trace
    from sysgym.errors import InvalidArgumentError

    try:
        params = json.loads(args.params) if args.params else {}
    except json.JSONDecodeError as exc:
        raise InvalidArgumentError(f"--params is not JSON ({exc.msg}): {args.params!r}") from None
    if not isinstance(params, dict):
        raise InvalidArgumentError(f"--params must be a JSON object of generator parameters, got {args.params!r}")
    if args.seeds < 1:
        raise InvalidArgumentError(f"--seeds must be at least 1, got {args.seeds}")
    policies = _policies(args.policies)
    console = Console()
    if args.trace:
        instances = [load_trace(args.trace, num_executors=args.executors or 100)]
    else:
        instances = [generate(preset=args.preset, seed=s, **params) for s in range(args.seeds)]
    runs: dict[str, list] = {}
    rows = []
    for label, name, options in policies:
        ms = []
        for inst in track(instances, description=f"{label:14s}", transient=True, console=console,
                          disable=not console.is_terminal):
            res = simulate(inst, name, seed=0, **options)
            ms.append(evaluate(inst, res.schedule))  # the evaluator re-checks every schedule
            runs.setdefault(label, []).append((inst, res.job_finish))
        rows.append((label, *(_mean([m[k] for m in ms]) for k in (
            "mean_response_s", "small_job_mean_response_s", "p95_response_s", "user_slowdown_ratio",
            "utilisation"))))
    table = Table(title=f"job_sched: {instances[0].name} ({len(instances)} instance(s))")
    for col in ("policy", "mean resp s", "small-job mean s", "p95 s", "user slowdown ratio", "utilisation"):
        table.add_column(col)
    for r in rows:
        table.add_row(r[0], *(f"{x:.2f}" if x is not None else "-" for x in r[1:]))
    console.print(table)
    if args.plot:
        print(f"plot: {plot_per_user(runs, args.plot, title=instances[0].name)}")
    return 0


def _mean(values: list) -> float | None:
    """The mean, or None when a metric is undefined for some instance (e.g. no small jobs in a trace)."""
    return None if any(v is None for v in values) else sum(values) / len(values)


def register(sub) -> None:
    p = sub.add_parser("jobs", aliases=["job-sched"],
                       help="job scheduling: compare policies (mean/small-job/p95 response, fairness) and plot "
                            "per-user response times")
    p.add_argument("--preset", default="multiuser")
    p.add_argument("--params", default=None, help='generator overrides as JSON, e.g. \'{"num_jobs": 50}\'')
    p.add_argument("--seeds", type=int, default=3, help="instances of seeds 0..N-1")
    p.add_argument("--trace", default=None, help="an Alibaba 2018 batch_task.csv or Google 2019 instance_events slice")
    p.add_argument("--executors", type=int, default=None, help="cluster size for --trace")
    p.add_argument("--policies", default=DEFAULT_POLICIES,
                   help="comma-separated; '+part' adds UWFQ's runtime partitioning (0.5 s)")
    p.add_argument("--plot", default=None, help="write a per-user response-time plot (PNG)")
    p.set_defaults(func=_compare)
