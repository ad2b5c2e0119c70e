"""Check Hydra overrides before a run starts: an unknown key is named with the keys that exist there.

Hydra itself says only "Key 'bogus' is not in struct"; `check_overrides` says which keys the config (or the
node the key points into, e.g. `env` or `solver.params`) has. Config groups (`env=`, `solver=`) are left to
Hydra, which already lists their options; `+key=` (add), `++key=` and `~key` are accepted as Hydra accepts them.
"""
from __future__ import annotations

from importlib import resources
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sysgym.errors import InvalidArgumentError

# Hydra's own flags: with one of them the command prints help or the config and runs nothing, so no precheck.
HYDRA_FLAGS = {"--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c", "--resolve", "--package", "-p",
               "--shell-completion", "-sc"}


def config_groups(package: str = "sysgym.conf") -> set[str]:
    """The config groups shipped in the package (folders of `conf/`: env, solver, agent, ...)."""
    root = resources.files(package)
    return {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}


def _first_value(override: Any) -> str:
    if override.is_sweep_override():
        try:
            return str(next(iter(override.sweep_string_iterator())))
        except Exception:  # noqa: BLE001 - range sweeps etc.: let Hydra handle the group choice
            return ""
    return override.get_value_element_as_str()


def _keys(node: Any) -> list[str]:
    return sorted(str(k) for k in node.keys()) if isinstance(node, DictConfig) else []


def _solver_hint(cfg: DictConfig, path: list[str]) -> str:
    if path[:2] != ["solver", "params"]:
        return ""
    try:
        from sysgym import solvers

        opts = solvers.options(solvers.solver_class(str(cfg.solver.name)))
    except Exception:  # noqa: BLE001 - the hint is optional; the check itself stands
        return ""
    return f"; {cfg.solver.name}'s options: {', '.join(sorted(opts)) if opts else '(none)'}"


def check_overrides(overrides: list[str], config_name: str = "config", package: str = "sysgym.conf") -> None:
    """Raise `InvalidArgumentError` for an override of a key the composed config lacks (see module doc).
    Malformed overrides and unknown group options are left for Hydra to report."""
    from hydra import compose, initialize_config_module
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException:
        return
    groups = config_groups(package)
    choices, keys = [], []
    for o in parsed:
        name = o.key_or_group
        if name == "hydra" or name.startswith(("hydra.", "hydra/")):
            continue
        if name in groups:
            value = _first_value(o)
            if value:
                choices.append(f"{name}={value}")
        elif not (o.is_add() or o.is_force_add() or o.is_delete()):
            keys.append(name)
    if not keys:
        return
    try:
        with initialize_config_module(package, version_base="1.3"):
            cfg = compose(config_name, overrides=choices)
    except HydraException:
        return  # an unknown env= / solver= option: Hydra's own message lists the options
    for key in keys:
        node: Any = cfg
        parts = key.split(".")
        for i, part in enumerate(parts):
            where = ".".join(parts[:i])
            if isinstance(node, DictConfig) and part in node:
                if i + 1 < len(parts):
                    try:
                        node = node.get(part)
                    except Exception:  # noqa: BLE001 - an interpolation that resolves only at run time
                        node = None
                    node = node if isinstance(node, DictConfig) else OmegaConf.create({})
                continue
            known = _keys(node)
            here = f"{where} has no key {part!r}" if where else f"unknown config key {part!r}"
            raise InvalidArgumentError(
                f"{here}; {'its' if where else 'valid'} keys: {', '.join(known) or '(none)'}"
                f"{_solver_hint(cfg, parts)} (a new key needs '+': +{key}=...)")


def override_values(overrides: list[str], key: str) -> list[str]:
    """Every value `overrides` give `key` (a sweep's choices one by one); [] when they do not set it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException:
        return []
    values: list[str] = []
    for o in parsed:
        if o.key_or_group != key or o.is_delete():
            continue
        if o.is_sweep_override():
            try:
                values = [str(v) for v in o.sweep_string_iterator()]
            except Exception:  # noqa: BLE001 - a range or glob sweep: Hydra will expand it
                values = []
        else:
            values = [o.get_value_element_as_str()]
    return values


def check_values(overrides: list[str]) -> None:
    """Refuse a bad `seed=` or `time_limit=` (every value of a sweep) with a named error before Hydra starts a
    job: inside a job the error would come back as Hydra's traceback, after the run folder was made."""
    from sysgym.solver import check_time_limit
    from sysgym.specs import check_seed

    for value in override_values(overrides, "seed"):
        try:
            seed: Any = int(value)
        except ValueError:
            seed = value
        check_seed(seed, "seed")
    for value in override_values(overrides, "time_limit"):
        if value.lower() in ("null", "none"):
            continue
        try:
            limit: Any = float(value)
        except ValueError:
            limit = value
        check_time_limit(limit)


def precheck(overrides: list[str], config_name: str = "config") -> None:
    """Everything `sysgym run` / `train` / `tune-agent` check before Hydra: keys, then values."""
    plain = [o for o in overrides if not o.startswith("-")]
    check_overrides(plain, config_name=config_name)
    check_values(plain)
