"""`sysgym bench --suite v1 [--family F]`: a canonical, versioned benchmark suite (CompilerGym's datasets).

A suite is data: `experiments/suites/<suite>/<family>.yaml`, one file per family, listing fixed instance specs in
tiers (tiny / standard / large), the method seeds, the limits, and any method left out with its reason. A
family joins a suite by adding its file; a suite never changes once published (a new list is a new version).

`bench` runs every registered method of each family on every instance of the suite through the Hydra app's
config and runner (the same records as `sysgym run`, under `RESULTS/<suite>/<family>/`, resumable: finished
runs are skipped), then validates them and writes the leaderboard (per-env tables, bounds apart, and rliable's
aggregate across the envs of each family) to `RESULTS/<suite>/leaderboard.md`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from sysgym.errors import InvalidArgumentError, UnknownNameError

TIERS = ("tiny", "standard", "large")
SUITES_PACKAGE = "sysgym.experiments"  # suites live in experiments/suites/<suite>/ (not Hydra config groups)


@dataclass
class SuiteEnv:
    env: str  # a conf/env config (the family, env id and defaults of the runs)
    tier: str
    instances: list[str]
    limits: dict[str, Any] = field(default_factory=dict)  # time_limit / deterministic_time / kill_after
    exclude: dict[str, str] = field(default_factory=dict)  # method -> why it does not run on this env
    name: str | None = None  # the block's name in records and tables (default: the env config's name)

    @property
    def label(self) -> str:
        return self.name or self.env


@dataclass
class SuiteEntry:
    suite: str
    family: str
    description: str
    seeds: list[int]
    envs: list[SuiteEnv]
    limits: dict[str, Any]
    exclude: dict[str, str]  # method -> why it is left out
    method_limits: dict[str, dict[str, Any]]  # method -> limits overriding the suite's

    def methods(self, *, agent: str | None = None) -> tuple[list[str], dict[str, str]]:
        """(methods to run, {method: why not}) from the registry: every registered solver of the family."""
        from sysgym import solvers

        run, skipped = [], {}
        for name in solvers.list(self.family):
            kind = solvers.solver_class(name).kind
            if name in self.exclude:
                skipped[name] = self.exclude[name]
            elif kind == "learned" and not agent:
                skipped[name] = "a learned method needs a trained policy: pass --agent PATH"
            else:
                run.append(name)
        return run, skipped


LIMIT_KEYS = ("time_limit", "deterministic_time", "kill_after")


def _limits(node: dict[str, Any] | None, where: str) -> dict[str, Any]:
    node = dict(node or {})
    unknown = [k for k in node if k not in LIMIT_KEYS]
    if unknown:
        raise InvalidArgumentError(f"{where}: unknown limit(s) {', '.join(unknown)}; limits: {', '.join(LIMIT_KEYS)}")
    return node


def suites() -> list[str]:
    root = resources.files(SUITES_PACKAGE).joinpath("suites")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))


def load_suite(suite: str) -> dict[str, SuiteEntry]:
    """Every family entry of `suite`, checked (specs parse and name the entry's family, tiers are known)."""
    from sysgym.specs import parse

    if suite not in suites():
        raise UnknownNameError("suite", suite, suites())
    folder = resources.files(SUITES_PACKAGE).joinpath("suites", suite)
    entries = {}
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if not item.name.endswith(".yaml"):
            continue
        where = f"suite {suite}/{item.name}"
        data = yaml.safe_load(item.read_text())
        family = data["family"]
        envs = []
        for block in data["envs"]:
            if block["tier"] not in TIERS:
                raise InvalidArgumentError(f"{where}: tier {block['tier']!r} is not one of {TIERS}")
            for spec in block["instances"]:
                if parse(spec).family != family:
                    raise InvalidArgumentError(f"{where}: instance {spec!r} is not a {family} instance")
            envs.append(SuiteEnv(block["env"], block["tier"], list(block["instances"]),
                                 _limits(block.get("limits"), f"{where} env {block['env']}"),
                                 dict(block.get("exclude") or {}), block.get("name")))
        entries[family] = SuiteEntry(
            suite=suite, family=family, description=str(data.get("description", "")),
            seeds=[int(s) for s in data.get("seeds", [0])], envs=envs,
            limits=_limits(data.get("limits"), where), exclude=dict(data.get("exclude") or {}),
            method_limits={m: _limits(v, f"{where} method {m}") for m, v in (data.get("method_limits") or {}).items()})
    return entries


def _yaml_value(value: Any) -> str:
    return "null" if value is None else str(value)


def plan(entry: SuiteEntry, *, tiers: list[str] | None = None, methods: list[str] | None = None,
         agent: str | None = None) -> tuple[list[list[str]], dict[str, str]]:
    """The Hydra overrides of every run of `entry` (results_dir excluded), and the methods left out."""
    run_methods, skipped = entry.methods(agent=agent)
    if methods:
        unknown = [m for m in methods if m not in run_methods and m not in skipped]
        if unknown:
            raise UnknownNameError(f"{entry.family} method", unknown[0], run_methods + list(skipped))
        run_methods = [m for m in run_methods if m in methods]
    runs = []
    for block in entry.envs:
        if tiers and block.tier not in tiers:
            continue
        for method in run_methods:
            if method in block.exclude:
                skipped[f"{method} on {block.label}"] = block.exclude[method]
                continue
            limits = {**entry.limits, **block.limits, **entry.method_limits.get(method, {})}
            solver = ["solver=agent", f"agent.path={agent}"] if method.endswith(".agent") and agent else \
                [f"solver={method}"]
            for spec in block.instances:
                for seed in entry.seeds:
                    runs.append([f"env={block.env}", *([f"env.name={block.name}"] if block.name else []), *solver,
                                 f"seed={seed}", f"++env.instance='{spec}'",
                                 *(f"{k}={_yaml_value(v)}" for k, v in limits.items()),
                                 f"suite={{name:{entry.suite},family:{entry.family},tier:{block.tier}}}"])
    return runs, skipped


def bench(suite: str = "v1", *, families: list[str] | None = None, tiers: list[str] | None = None,
          results_dir: str | Path = "results/bench", methods: list[str] | None = None, agent: str | None = None,
          dry_run: bool = False, console: Console | None = None) -> Path:
    """Run the suite (see module doc); returns the folder holding its records and leaderboard."""
    from hydra import compose, initialize_config_module
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from sysgym.experiments.leaderboard import leaderboard, make_console
    from sysgym.experiments.runner import run_from_config
    from sysgym.registry import list_families

    console = console or make_console()
    entries = load_suite(suite)
    chosen = families or sorted(entries)
    for name in chosen:
        if name not in entries:
            if name not in list_families():
                raise UnknownNameError("family", name, list_families())
            raise InvalidArgumentError(f"suite {suite} has no entry for family {name!r} yet (experiments/suites/"
                                       f"{suite}/{name}.yaml); its families: {', '.join(sorted(entries))}")
    root = Path(results_dir) / suite
    jobs = []
    with initialize_config_module("sysgym.conf", version_base="1.3"):
        for name in chosen:
            runs, skipped = plan(entries[name], tiers=tiers, methods=methods, agent=agent)
            for method, why in skipped.items():
                console.print(f"[yellow]left out[/] {method}: {why}", highlight=False)
            out = root / name
            for overrides in runs:  # compose every run first: a bad suite entry fails before any work
                jobs.append((name, overrides, compose("config", overrides=[*overrides, f"results_dir={out}"])))
    console.print(f"suite {suite}: {len(jobs)} runs over {', '.join(chosen)} -> {root}", highlight=False)
    if dry_run:
        for name, overrides, _ in jobs:
            console.print(f"{name}: {' '.join(overrides)}", highlight=False, markup=False, soft_wrap=True)
        return root
    failed = []
    t0 = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=not console.is_terminal) as progress:
        task = progress.add_task("bench", total=len(jobs))
        for name, _overrides, cfg in jobs:
            progress.update(task, description=f"{cfg.env.name} {cfg.solver.name} {cfg.env.instance}")
            try:
                run_from_config(cfg)
            except Exception as exc:  # noqa: BLE001 - one broken run must not hide the others' results
                failed.append(f"{name} {cfg.solver.name} {cfg.env.instance} seed={cfg.seed}: "
                              f"{type(exc).__name__}: {exc}")
            progress.advance(task)
    console.print(f"suite {suite}: {len(jobs)} runs in {time.perf_counter() - t0:.0f} s", highlight=False)
    for line in failed:
        console.print(f"[red]run failed[/] {line}", highlight=False)
    leaderboard(root, console=console, plot_path=None)
    console.print(f"records: {root}/<family>/  table: {root / 'leaderboard.md'}", highlight=False)
    return root
