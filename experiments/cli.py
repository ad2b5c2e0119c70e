"""The `sysgym` command: run, list, leaderboard, demo (and the kernels' calibrate/profile)."""
from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Table


def _cmd_run(args: argparse.Namespace) -> int:
    from sysgym.experiments import run

    sys.argv = ["sysgym run", *args.overrides]
    run.main()
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    import sysgym
    from sysgym import solvers

    console = Console()
    envs = Table(title="environments")
    for col in ("env id", "family", "objective", "presets"):
        envs.add_column(col)
    for env_id in sysgym.list_envs():
        from sysgym.registry import env_family

        fam = sysgym.get_family(env_family(env_id))
        envs.add_row(env_id, fam.name, f"{fam.objective} ({fam.sense})", ", ".join(fam.presets))
    console.print(envs)
    table = Table(title="solvers")
    for col in ("name", "family", "kind"):
        table.add_column(col)
    for name in solvers.list(args.family):
        cls = solvers.solver_class(name)
        table.add_row(name, cls.family, cls.kind)
    console.print(table)
    return 0


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from sysgym.experiments.leaderboard import leaderboard

    leaderboard(args.results, fmt=args.format, plot_path=args.plot)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from sysgym.experiments.demo import demo

    demo(args.results_dir, sweep=args.sweep)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sysgym", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="one run, or --multirun a sweep (Hydra overrides follow)",
                       add_help=False, prefix_chars="\0")
    p.add_argument("overrides", nargs=argparse.REMAINDER)
    p.set_defaults(func=_cmd_run)
    p = sub.add_parser("list", help="registered envs and solvers")
    p.add_argument("--family", default=None)
    p.set_defaults(func=_cmd_list)
    p = sub.add_parser("leaderboard", help="rank the methods of result records")
    p.add_argument("results", help="a results directory or *.jsonl file")
    p.add_argument("--format", choices=("table", "csv"), default="table")
    p.add_argument("--plot", default=None, help="also write a bar chart (PNG)")
    p.set_defaults(func=_cmd_leaderboard)
    p = sub.add_parser("demo", help="the main job: a small VM-rescheduling sweep and its leaderboard")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--sweep", default="demo")
    p.set_defaults(func=_cmd_demo)
    for module in _cli_providers():
        module.register(sub)
    return parser


def _cli_providers() -> list:
    """Modules named `cli` with `register(subparsers)`: sysgym.kernels.cli, sysgym.agents.cli, and any
    `sysgym.envs.<family>.cli` / `sysgym.solvers.<family>.cli`, so a sub-package adds its own commands."""
    import importlib
    import importlib.util
    import pkgutil

    names = ["sysgym.kernels.cli", "sysgym.agents.cli"]
    for parent in ("sysgym.envs", "sysgym.solvers"):
        pkg = importlib.import_module(parent)
        names += [f"{parent}.{i.name}.cli" for i in pkgutil.iter_modules(pkg.__path__) if i.ispkg]
    out = []
    for name in names:
        if importlib.util.find_spec(name) is None:
            continue
        module = importlib.import_module(name)
        if hasattr(module, "register"):
            out.append(module)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, KeyError, ValueError, TypeError) as exc:
        from sysgym.errors import SysgymError

        if isinstance(exc, (SysgymError, FileNotFoundError)):
            Console(stderr=True).print(f"[red]error:[/] {exc}")
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
