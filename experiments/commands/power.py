"""`sysgym power`: compare the power-capping methods on a row of LLM servers, scored by `power_cap.evaluate`.

    sysgym power compare --preset small --budget 0.7
    sysgym power compare --preset code --seeds 0,1 --solvers none,polca,lookahead
"""
from __future__ import annotations

import argparse


def _compare(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    import sysgym
    from sysgym import solvers

    fam = sysgym.get_family("power_cap")
    params = {} if args.budget is None else {"budget_fraction": args.budget}
    instances = [fam.generator(seed=int(s), preset=args.preset, **params) for s in args.seeds.split(",")]
    if args.solvers == "all":
        names = [n for n in solvers.list("power_cap") if solvers.solver_class(n).kind != "learned"]
    else:
        names = [f"power_cap.{n.removeprefix('power_cap.')}" for n in args.solvers.split(",")]
    inst = instances[0]
    table = Table(title=f"power_cap {args.preset}, seeds {args.seeds}: {inst.num_servers} servers, budget "
                        f"{inst.budget_w:.0f} W of {inst.nameplate_w:.0f} W nameplate")
    cols = ("method", "cost", "SLO attainment", "over-budget share", "peak / budget", "energy kJ", "mean clock",
            "wall s")
    for col in cols:
        table.add_column(col, justify="left" if col == "method" else "right", no_wrap=col == "method")
    for name in names:
        solver = solvers.get(name)
        res = []
        for i in instances:
            sol = solver.solve(i)
            res.append((fam.evaluate(i, sol), sol.wall_time_s))
        mean = {key: sum(m[key] for m, _ in res) / len(res) for key in
                ("cost", "slo_attainment", "overbudget_rate", "peak_power_share_of_budget", "energy_j", "mean_clock")}
        table.add_row(name.split(".", 1)[1], f"{mean['cost']:.3f}", f"{mean['slo_attainment']:.3f}",
                      f"{mean['overbudget_rate']:.3f}", f"{mean['peak_power_share_of_budget']:.3f}",
                      f"{mean['energy_j'] / 1e3:.1f}", f"{mean['mean_clock']:.3f}",
                      f"{sum(w for _, w in res) / len(res):.2f}")
    console = Console()
    console.print(table)
    console.print("cost = (1 - SLO attainment) + overbudget_weight x share of intervals over budget; lookahead sees "
                  "the future (a reference point, not a deployable policy)")
    return 0


def register(sub) -> None:
    p = sub.add_parser("power", help="power-capped LLM serving (POLCA): compare the cap controllers")
    sv = p.add_subparsers(dest="power_command", required=True)
    c = sv.add_parser("compare", help="every method x seed on one preset, mean figures")
    c.add_argument("--preset", default="small")
    c.add_argument("--seeds", default="0", help="comma-separated instance seeds")
    c.add_argument("--budget", type=float, default=None, help="row budget / nameplate (default: 1 / 1.3)")
    c.add_argument("--solvers", default="all", help="comma-separated method names (none,polca,...) or all")
    c.set_defaults(func=_compare)
