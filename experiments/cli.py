"""The `sysgym` command: run, list, validate, leaderboard, demo, and the commands each sub-package adds."""
from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Table


def _cmd_run(args: argparse.Namespace) -> int:
    from sysgym.experiments import run
    from sysgym.experiments.isolate import mark_sweep
    from sysgym.experiments.overrides import HYDRA_FLAGS, override_values, precheck

    if not HYDRA_FLAGS & set(args.overrides):
        plain = [o for o in args.overrides if not o.startswith("-")]
        precheck(plain)
        from sysgym.records import check_writable

        for folder in override_values(plain, "results_dir") or ["results"]:
            check_writable(folder)  # Hydra writes its run folder there first: fail with a named error instead
    mark_sweep()  # joblib workers stop when this process is killed
    sys.argv = ["sysgym run", *args.overrides]
    run.main()
    return 0


def _first_line(obj) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""


def _cmd_list(args: argparse.Namespace) -> int:
    """The catalogue: envs, solvers, agents, generators and trace loaders, with one-line descriptions."""
    from importlib import resources

    import sysgym
    from sysgym import solvers
    from sysgym.experiments.leaderboard import make_console
    from sysgym.registry import env_family

    console = make_console()
    wanted = None
    if args.family:
        from sysgym.registry import FAMILIES, family_names

        wanted = family_names(args.family)
        if not wanted:
            from sysgym.errors import UnknownNameError

            raise UnknownNameError("family", args.family, FAMILIES)
    envs = Table(title="environments (sysgym.make / gymnasium.make)")
    for col in ("env id", "family", "objective", "description") + (("action space", "observation space")
                                                                     if args.spaces else ()):
        envs.add_column(col, no_wrap=col in ("env id", "family"))
    for env_id in sysgym.list_envs():
        fam = sysgym.get_family(env_family(env_id))
        if wanted and fam.name not in wanted:
            continue
        row = [env_id, fam.name, f"{fam.objective} ({fam.sense})", fam.description]
        if args.spaces:
            env = sysgym.make(env_id)
            row += [str(env.action_space), str(env.observation_space)[:200]]
            env.close()
        envs.add_row(*row)
    console.print(envs)
    table = Table(title="solvers (sysgym.solvers.get)")
    for col in ("name", "family", "kind", "description"):
        table.add_column(col, no_wrap=col != "description")
    for name in [n for f in (wanted or [None]) for n in solvers.list(f)]:
        cls = solvers.solver_class(name)
        table.add_row(name, cls.family, cls.kind, _first_line(cls))
    console.print(table)
    agents = sorted(p.name[:-5] for p in resources.files("sysgym.conf").joinpath("agent").iterdir()
                    if p.name.endswith(".yaml")) if resources.files("sysgym.conf").joinpath("agent").is_dir() else []
    if agents:
        console.print(f"[bold]agents[/] (sysgym train agent=...): {', '.join(agents)}")
    gens = Table(title="instance generators and trace loaders")
    for col in ("family", "presets (generate(preset=..., seed=...))", "generator", "loader (load(path))"):
        gens.add_column(col)
    for name in sysgym.list_families():
        if wanted and name not in wanted:
            continue
        fam = sysgym.get_family(name)
        gens.add_row(name, ", ".join(fam.presets), (fam.generator.description.splitlines() or [""])[0],
                     _first_line(fam.load) if fam.load else "-")
    console.print(gens)
    return 0


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from sysgym.experiments.leaderboard import leaderboard

    leaderboard(args.results, fmt=args.format, plot_path=args.plot, validated_only=not args.all, out=args.out,
                merge=args.merge)
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from sysgym.experiments.leaderboard import make_console
    from sysgym.experiments.validate import check

    report = check(args.results, use_cache=not args.fresh, out=args.out)
    console = make_console()
    bad = report.bad
    console.print(f"{len(report.checked) - len(bad)} of {len(report.checked)} records validated"
                  + (f" ({report.reused} verdicts reused: record and solution unchanged)" if report.reused else ""),
                  highlight=False)
    for stored, v in bad:
        console.print(f"[red]{v['status']}[/] {stored.path}: {v['detail']}", highlight=False)
    for problem in report.problems:
        console.print(f"[yellow]not a record[/] {problem}", highlight=False)
    if report.note:
        console.print(f"[yellow]note:[/] {report.note}", highlight=False)
    return 1 if bad or report.problems else 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from sysgym.experiments.bench import bench

    bench(args.suite, families=args.family, tiers=args.tier, results_dir=args.results_dir, methods=args.method,
          agent=args.agent, dry_run=args.dry_run)
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    from sysgym import datasets
    from sysgym.experiments.leaderboard import make_console

    console = make_console()
    if args.name:
        if args.path_only:
            print(datasets.path(args.name))
            return 0
        info = datasets.info(args.name)
        for key, value in info.describe().items():
            console.print(f"[bold]{key}[/]: {value}", highlight=False, soft_wrap=True)
        return 0
    table = Table(title="datasets (sysgym.datasets)")
    for col in ("name", "shipped", "rows", "license", "description"):
        table.add_column(col, no_wrap=col in ("name", "shipped"))
    for name in datasets.list(external=True):
        info = datasets.info(name)
        table.add_row(name, "yes" if info.shipped else "no (path)", str(info.rows or "-"), info.license,
                      info.description)
    console.print(table)
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
    p = sub.add_parser("list", help="the catalogue: envs, solvers, agents, generators, trace loaders")
    p.add_argument("--family", default=None, help="only this family")
    p.add_argument("--spaces", action="store_true", help="also build each env to show its spaces")
    p.set_defaults(func=_cmd_list)
    p = sub.add_parser("leaderboard", help="rank the methods of result records")
    p.add_argument("results", help="a results directory or *.jsonl file")
    p.add_argument("--format", choices=("table", "markdown", "csv"), default="table")
    p.add_argument("--plot", default=None, help="also write plots (PNG)")
    p.add_argument("--all", action="store_true", help="also count records that fail validation")
    p.add_argument("--merge", action="store_true", help="pool the records of every results folder under RESULTS "
                                                        "(default: each folder, e.g. each sweep, ranked apart)")
    p.add_argument("--out", default=None, help="write leaderboard.md/.csv and validation.json here (default: "
                                               "the results folder; use it for a read-only one)")
    p.set_defaults(func=_cmd_leaderboard)
    p = sub.add_parser("validate", help="re-score every record's solution with its family's evaluator")
    p.add_argument("results", help="a results directory or *.jsonl file")
    p.add_argument("--fresh", action="store_true", help="judge every record again (cached verdicts are keyed by "
                                                        "each record's content, so edits are noticed without it)")
    p.add_argument("--out", default=None, help="write validation.json here (default: the results folder)")
    p.set_defaults(func=_cmd_validate)
    p = sub.add_parser("bench", help="run a canonical benchmark suite (every method on fixed instances), "
                                     "validate, and write its leaderboard")
    p.add_argument("--suite", default="v1", help="suite version (experiments/suites/<suite>/)")
    p.add_argument("--family", action="append", default=None, help="only this family (repeatable)")
    p.add_argument("--tier", action="append", default=None, choices=("tiny", "standard", "large"),
                   help="only this tier (repeatable)")
    p.add_argument("--method", action="append", default=None, help="only this method (repeatable)")
    p.add_argument("--agent", default=None, help="a trained policy to include as the family's agent method")
    p.add_argument("--results-dir", default="results/bench", help="records go to RESULTS_DIR/<suite>/<family>/")
    p.add_argument("--dry-run", action="store_true", help="list the runs, run nothing")
    p.set_defaults(func=_cmd_bench)
    p = sub.add_parser("datasets", help="the datasets shipped with sysgym and the public traces it reads")
    p.add_argument("name", nargs="?", default=None, help="one dataset: its licence, source and file")
    p.add_argument("--path", dest="path_only", action="store_true", help="print only the dataset's file path")
    p.set_defaults(func=_cmd_datasets)
    p = sub.add_parser("demo", help="the main job: a small sweep over four families, then the leaderboard")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--sweep", default="demo")
    p.set_defaults(func=_cmd_demo)
    for module in _cli_providers():
        module.register(sub)
    return parser


def _cli_providers() -> list:
    """Modules with `register(subparsers)`: sysgym.kernels.cli (profile, calibrate), sysgym.agents.cli (train,
    export, tune-agent) and every family command in sysgym.experiments.commands."""
    import importlib
    import importlib.util
    import pkgutil

    from sysgym.experiments import commands

    names = ["sysgym.kernels.cli", "sysgym.agents.cli"]
    names += [f"{commands.__name__}.{i.name}" for i in pkgutil.iter_modules(commands.__path__) if not i.ispkg]
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
        config = getattr(args, "hydra_config", None)  # a Hydra app of another package (`train`, `tune-agent`)
        if config:
            from sysgym.experiments.overrides import HYDRA_FLAGS, precheck

            if not HYDRA_FLAGS & set(args.overrides):
                precheck(args.overrides, config_name=config)  # a wrong key or bad seed: named, before Hydra
        return int(args.func(args) or 0)
    except (FileNotFoundError, KeyError, ValueError, TypeError) as exc:
        from sysgym.errors import SysgymError

        if isinstance(exc, (SysgymError, FileNotFoundError)):
            from rich.text import Text

            # soft_wrap: piped, an error stays one line per line of its message (Rich would cut at 80 columns)
            Console(stderr=True).print("[red]error:[/]", Text(str(exc)), soft_wrap=True)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
