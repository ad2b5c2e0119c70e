"""`sysgym vm compare`: every VM-rescheduling method on generated instances, scored by `vm_resched.evaluate`.

    sysgym vm compare --preset small --seeds 0,1,2 --time-limit 10
    sysgym vm compare --preset medium --seeds 0 --solvers greedy,lookahead,lns,milp --time-limit 60
    sysgym vm compare --preset medium --version 0 --seeds 2 --solvers greedy,lookahead   # version-0 instances

Methods get the per-env options `sysgym run env=vm_resched_<preset>` gives them (conf/solver/*.yaml
`overrides`, e.g. the exact models' candidate limit on large). Every exact method and LNS report a proven
bound; `gap` is (FR - bound) / FR.
"""
from __future__ import annotations

import argparse


def env_overrides(name: str, preset: str) -> dict:
    """The per-env options `sysgym run env=vm_resched_<preset>` gives solver `name` (conf/solver/<name>.yaml)."""
    from importlib.resources import files

    import yaml

    path = files("sysgym.conf") / "solver" / f"{name}.yaml"
    cfg = yaml.safe_load(path.read_text()) if path.is_file() else {}
    return dict(((cfg or {}).get("overrides") or {}).get(f"vm_resched_{preset}") or {})


def _compare(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import track
    from rich.table import Table

    import sysgym
    from sysgym import solvers

    console = Console()
    fam = sysgym.get_family("vm_resched")
    names = [n for n in solvers.list("vm_resched") if solvers.solver_class(n).kind != "learned"] \
        if args.solvers == "all" else [f"vm_resched.{s.split('.')[-1]}" for s in args.solvers.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    instances = [fam.generator(seed=s, preset=args.preset, version=args.version) for s in seeds]
    table = Table(title=f"vm_resched {instances[0].name.split('?')[0]}, seeds {args.seeds}, time limit "
                        f"{args.time_limit} s (fragment rate: lower is better)")
    for col in ("method", "FR before", "FR after", "time-aware FR", "bound", "gap", "status", "wall s"):
        table.add_column(col, justify="left" if col in ("method", "status") else "right", no_wrap=col == "method")
    for name in names:
        solver = solvers.get(name, **env_overrides(name, args.preset))
        rows = []
        for inst in track(instances, description=f"{name:24s}", transient=True, console=console,
                          disable=not console.is_terminal):
            sol = solver.solve(inst, time_limit=args.time_limit, seed=0)
            m = fam.evaluate(inst, sol, wall_time_s=sol.wall_time_s)
            rows.append((m["fragment_rate_before"], m["fragment_rate"], m["fragment_rate_timed"], sol.bound,
                         sol.gap, sol.status, sol.wall_time_s))
        n = len(rows)
        bounds = [r[3] for r in rows if r[3] is not None]
        gaps = [r[4] for r in rows if r[4] is not None]
        table.add_row(name.split(".", 1)[1], f"{sum(r[0] for r in rows) / n:.4f}", f"{sum(r[1] for r in rows) / n:.4f}",
                      f"{sum(r[2] for r in rows) / n:.4f}",
                      f"{sum(bounds) / len(bounds):.4f}" if len(bounds) == n else "-",
                      f"{sum(gaps) / len(gaps):.3f}" if len(gaps) == n else "-",
                      ",".join(sorted({r[5] for r in rows})), f"{sum(r[6] for r in rows) / n:.2f}")
    console.print(table)
    return 0


def register(sub) -> None:
    p = sub.add_parser("vm", help="VM rescheduling: compare every method on generated instances")
    vm = p.add_subparsers(dest="vm_command", required=True)
    c = vm.add_parser("compare", help="every method x seed on one preset, mean figures")
    c.add_argument("--preset", default="small")
    c.add_argument("--version", type=int, default=None, help="generator version (default: the newest)")
    c.add_argument("--seeds", default="0,1,2", help="comma-separated instance seeds")
    c.add_argument("--solvers", default="all",
                   help="comma-separated method names (greedy,lookahead,lns,milp,cpsat,...) or all")
    c.add_argument("--time-limit", type=float, default=10.0, help="seconds per solve")
    c.set_defaults(func=_compare)
