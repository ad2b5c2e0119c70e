"""`sysgym serverless`: compare the keep-alive methods on generated instances or on a trace, scored by
`serverless.evaluate`.

    sysgym serverless compare --preset small --seeds 0,1,2
    sysgym serverless compare --preset standard --seeds 0 --solvers fixed,hybrid,greedy_dual,offline
    sysgym serverless trace invocations_per_function_md.anon.d01.csv \
        --durations function_durations_percentiles.anon.d01.csv --memory app_memory_percentiles.anon.d01.csv
    sysgym serverless trace requests.csv --cold-starts cold_starts.csv          # a Huawei 2025 per-request table
"""
from __future__ import annotations

import argparse


def _names(spec: str, learned: bool = False) -> list[str]:
    from sysgym import solvers

    if spec == "all":
        return [n for n in solvers.list("serverless") if learned or solvers.solver_class(n).kind != "learned"]
    return [n if n.startswith("serverless.") else f"serverless.{n}" for n in spec.split(",")]


def _table(title: str, instances: list, names: list[str], time_limit: float | None, solver_params: dict):
    from rich.console import Console
    from rich.table import Table

    import sysgym
    from sysgym import solvers

    console = Console()
    fam = sysgym.get_family("serverless")
    table = Table(title=title)
    for col in ("method", "cost", "cold-start rate", "p99 added s", "wasted GB-s", "fairness", "gap to bound",
                "status", "wall s"):
        table.add_column(col, justify="left" if col in ("method", "status") else "right", no_wrap=col == "method")
    rows = {}
    bounds = [None] * len(instances)
    for name in names:
        cls = solvers.solver_class(name, "serverless")
        if cls.kind == "learned":
            continue
        solver = solvers.get(cls.name, **solver_params.get(cls.name, {}))
        res = []
        for i, inst in enumerate(instances):
            sol = solver.solve(inst, time_limit=time_limit, seed=0)
            m = fam.evaluate(inst, sol)
            if sol.bound is not None:
                bounds[i] = sol.bound if bounds[i] is None else max(bounds[i], sol.bound)
            res.append((m, sol))
        rows[cls.name] = res
    for name, res in rows.items():
        n = len(res)
        gaps = [max(0.0, (m["cost"] - b) / m["cost"]) for (m, _), b in zip(res, bounds)
                if b is not None and m["cost"] > 0]
        table.add_row(name.split(".", 1)[1], f"{sum(m['cost'] for m, _ in res) / n:.2f}",
                      f"{sum(m['cold_start_rate'] for m, _ in res) / n:.4f}",
                      f"{sum(m['added_latency_p99_s'] for m, _ in res) / n:.3f}",
                      f"{sum(m['wasted_gb_s'] for m, _ in res) / n:.0f}",
                      f"{sum(m['fairness_jain'] for m, _ in res) / n:.3f}",
                      f"{100 * sum(gaps) / len(gaps):.1f} %" if len(gaps) == n else "-",
                      ",".join(sorted({s.status for _, s in res})), f"{sum(s.wall_time_s for _, s in res) / n:.2f}")
    console.print(table)
    console.print("cost = cold-start seconds + memory_weight x wasted GB-s; gap to bound: (cost - the best lower "
                  "bound proved on the instance) / cost")


def _compare(args: argparse.Namespace) -> int:
    import sysgym

    fam = sysgym.get_family("serverless")
    seeds = [int(s) for s in args.seeds.split(",")]
    params = {} if args.memory_weight is None else {"memory_weight": args.memory_weight}
    instances = [fam.generator(seed=s, preset=args.preset, **params) for s in seeds]
    w = instances[0].memory_weight
    _table(f"serverless {args.preset}, seeds {args.seeds}, memory_weight {w:.4g} s/GB-s", instances,
           _names(args.solvers), args.time_limit, {})
    return 0


def _trace(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sysgym.envs.serverless import traces

    path = Path(args.path)
    opts = {"seed": args.seed, "max_functions": args.max_functions}
    if args.memory_weight is not None:
        opts["memory_weight"] = args.memory_weight
    kind = traces.trace_kind(path)
    if kind == "azure_invocations":
        inst = traces.load_azure_invocations(path, durations=args.durations, memory=args.memory, **opts)
    elif kind == "huawei_per_minute":
        inst = traces.load_huawei_per_minute(path, exec_time=args.exec_time, cold_starts=args.cold_starts, **opts)
    elif kind == "huawei_requests":
        inst = traces.load_huawei_requests(path, cold_starts=args.cold_starts, **opts)
    else:
        from sysgym.errors import TraceFormatError

        raise TraceFormatError(f"{path}: a {kind} file holds no invocations to replay")
    _table(f"{path.name}: {inst.num_functions} functions, {inst.num_invocations} invocations", [inst],
           _names(args.solvers), args.time_limit, {})
    return 0


def register(sub) -> None:
    p = sub.add_parser("serverless", help="serverless keep-alive: compare every method on instances or a trace")
    sv = p.add_subparsers(dest="serverless_command", required=True)
    c = sv.add_parser("compare", help="every method x seed on one preset, mean figures")
    c.add_argument("--preset", default="small")
    c.add_argument("--seeds", default="0,1,2", help="comma-separated instance seeds")
    c.add_argument("--solvers", default="all", help="comma-separated method names (fixed,hybrid,...) or all")
    c.add_argument("--memory-weight", type=float, default=None, help="seconds per GB-s (default: the generator's)")
    c.add_argument("--time-limit", type=float, default=60.0, help="seconds per solve (serverless.cpsat)")
    c.set_defaults(func=_compare)
    t = sv.add_parser("trace", help="every method on one trace file (Azure Functions 2019 or Huawei 2025)")
    t.add_argument("path", help="an Azure invocations file, a Huawei per-request table or per-minute requests file")
    t.add_argument("--durations", default=None, help="Azure: function_durations_percentiles.anon.dNN.csv")
    t.add_argument("--memory", default=None, help="Azure: app_memory_percentiles.anon.dNN.csv")
    t.add_argument("--cold-starts", default=None, help="Huawei: a cold-start events file")
    t.add_argument("--exec-time", default=None, help="Huawei per-minute: an execution-time metric file")
    t.add_argument("--max-functions", type=int, default=None)
    t.add_argument("--seed", type=int, default=0, help="for what the trace lacks (spread within minutes, draws)")
    t.add_argument("--memory-weight", type=float, default=None)
    t.add_argument("--solvers", default="fixed,no_keepalive,hybrid,greedy_dual,offline")
    t.add_argument("--time-limit", type=float, default=60.0)
    t.set_defaults(func=_trace)
