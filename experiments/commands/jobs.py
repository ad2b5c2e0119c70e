"""`sysgym jobs` (alias `sysgym job-sched`): compare job-scheduling policies on generated workloads (or a trace),
every schedule re-checked by `job_sched.evaluate`, with the UWFQ paper's user-level fairness measures and a plot
of per-user response and share over time.

    sysgym jobs --preset multiuser --seeds 3 --plot per_user.png                      # shared_app (UWFQ's)
    sysgym jobs --preset multiuser --setting multi_app --seeds 3                      # Decima's executor model
    sysgym jobs --trace batch_task.csv --executors 100 --policies fifo,fair,uwfq+part
"""
from __future__ import annotations

import argparse
import json

DEFAULT_POLICIES = "fifo,fair,user_fair,cfq,decima_cap,srpt,random,uwfq,uwfq+part"
# '<policy>+part': UWFQ's runtime partitioning; '<policy>+unaware': today's behaviour under moving costs
OPTIONS = {"": {}, "part": {"runtime_partition_s": 0.5}, "unaware": {"move_aware": False}}
COLUMNS = (("mean resp s", "mean_response_s"), ("small-job mean s", "small_job_mean_response_s"),
           ("p95 s", "p95_response_s"), ("heavy/light resp", "heavy_light_response_ratio"),
           ("min user share", "min_user_share_ratio"), ("fair-share violations", "fair_share_violation_ratio"),
           ("utilisation", "utilisation"))
PLOTTED = ("fifo", "fair", "uwfq")  # the policies of the over-time plot (when they are among those run)


def _policies(spec: str) -> list[tuple[str, str, dict]]:
    """(label, policy name, options) per comma-separated entry; unknown names fail before any work."""
    from sysgym.envs.job_sched import policy_names
    from sysgym.errors import UnknownNameError
    from sysgym.solver import options, solver_class

    known = policy_names()
    out = []
    for label in (s.strip() for s in spec.split(",") if s.strip()):
        name, _, opt = label.partition("+")
        if name.removeprefix("job_sched.") not in known:
            raise UnknownNameError("job_sched policy", name, known)
        if opt not in OPTIONS:
            raise UnknownNameError("policy option", f"+{opt}", [f"+{o}" for o in OPTIONS if o])
        accepted = options(solver_class(f"job_sched.{name.removeprefix('job_sched.')}")) or {}
        takes = [o for o, cfg in OPTIONS.items() if o and set(cfg) <= set(accepted)]
        if opt and opt not in takes:
            raise UnknownNameError(f"option of policy {name}", f"+{opt}", [f"+{o}" for o in takes])
        out.append((label, name, OPTIONS[opt]))
    return out


def _compare(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import track
    from rich.table import Table

    from sysgym.envs.job_sched import evaluate, generate, simulate
    from sysgym.envs.job_sched.plots import plot_over_time, plot_per_user
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
    if args.setting is not None:
        if args.trace:
            raise InvalidArgumentError("--setting names a generated workload's setting; a trace's is read from "
                                       "--moving-delay (0: shared_app)")
        params["setting"] = args.setting
    policies = _policies(args.policies)
    console = Console()
    if not console.is_terminal:  # piped: wide enough for every column rather than rich's 80
        console = Console(width=160)
    if args.trace:
        instances = [load_trace(args.trace, num_executors=args.executors or 100,
                                moving_delay_s=2.0 if args.moving_delay is None else args.moving_delay)]
    else:
        instances = [generate(preset=args.preset, seed=s, **params) for s in range(args.seeds)]
    runs: dict[str, list] = {}
    first: dict[str, tuple] = {}
    rows = []
    for label, name, options in policies:
        ms = []
        for inst in track(instances, description=f"{label:14s}", transient=True, console=console,
                          disable=not console.is_terminal):
            res = simulate(inst, name, seed=0, **options)
            ms.append(evaluate(inst, res.schedule))  # the evaluator re-checks every schedule
            runs.setdefault(label, []).append((inst, res.job_finish))
            first.setdefault(label, (inst, res.schedule))
        rows.append((label, *(_mean([m.get(k) for m in ms]) for _, k in COLUMNS)))
    inst0 = instances[0]
    table = Table(title=f"job_sched: {inst0.name} ({len(instances)} instance(s), setting {inst0.effective_setting})")
    for col in ("policy", *(c for c, _ in COLUMNS)):
        table.add_column(col)
    for r in rows:
        table.add_row(r[0], *(f"{x:.2f}" if x is not None else "-" for x in r[1:]))
    console.print(table)
    if args.plot:
        shown = [label for label in first if label.split("+")[0].removeprefix("job_sched.") in PLOTTED and
                 "+" not in label] or list(first)[:3]
        print(f"plot: {plot_over_time({p: first[p] for p in shown}, args.plot, title=inst0.name)}")
    if args.box_plot:
        print(f"plot: {plot_per_user(runs, args.box_plot, title=inst0.name)}")
    return 0


def _mean(values: list) -> float | None:
    """The mean, or None when a metric is undefined for some instance (e.g. no small jobs in a trace)."""
    return None if any(v is None for v in values) else sum(values) / len(values)


def register(sub) -> None:
    p = sub.add_parser("jobs", aliases=["job-sched"],
                       help="job scheduling: compare policies (mean/small-job/p95 response, fairness) and plot "
                            "per-user response times")
    p.add_argument("--preset", default="multiuser")
    p.add_argument("--setting", default=None, choices=("shared_app", "multi_app"),
                   help="shared_app (UWFQ's one shared Spark application, no moving delay) or multi_app (Decima's "
                        "executor model: 2 s moving delay, warm-up); default: the preset's")
    p.add_argument("--params", default=None, help='generator overrides as JSON, e.g. \'{"num_jobs": 50}\'')
    p.add_argument("--seeds", type=int, default=3, help="instances of seeds 0..N-1")
    p.add_argument("--trace", default=None, help="an Alibaba 2018 batch_task.csv or Google 2019 instance_events slice")
    p.add_argument("--executors", type=int, default=None, help="cluster size for --trace")
    p.add_argument("--moving-delay", type=float, default=None, help="executor moving delay for --trace (s; default 2)")
    p.add_argument("--policies", default=DEFAULT_POLICIES,
                   help="comma-separated; '+part' adds UWFQ's runtime partitioning (0.5 s), '+unaware' switches off "
                        "fair/user_fair/uwfq's handling of moving costs")
    p.add_argument("--plot", default=None, help="write per-user response and share over time for FIFO, FAIR and UWFQ "
                                                "(the first instance; PNG)")
    p.add_argument("--box-plot", default=None, help="write per-user response-time box plots of every policy (PNG)")
    p.set_defaults(func=_compare)
