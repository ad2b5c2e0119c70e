"""The registries: problem families, their envs, solvers, and the aliases old names keep working through.

The core sits at the bottom (docs/DESIGN.md): nothing here imports a family. Families register themselves
when `sysgym.envs` is imported, solvers when their `sysgym.solvers.<family>` package is; the `sysgym`
facade installs the hooks that import them (`set_discovery`), so a lookup here always sees every family and
solver, and gymnasium's `sysgym/` env ids exist once `sysgym` is imported (or through Gymnasium's env plugin
entry point).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gymnasium

from sysgym.errors import UnknownNameError

if TYPE_CHECKING:
    from sysgym.family import Family
    from sysgym.solver import Solver

NAMESPACE = "sysgym"

FAMILIES: dict[str, Family] = {}
ENVS: dict[str, str] = {}  # env id -> family
SOLVERS: dict[str, type[Solver]] = {}
# Old family names: alias -> function of the spec's preset giving the family it now belongs to.
FAMILY_ALIASES: dict[str, Callable[[str | None], str]] = {}
# Old solver names: alias -> {family: solver name}; the first entry is the default target.
SOLVER_ALIASES: dict[str, dict[str, str]] = {}

_discovery: dict[str, Callable[[], None]] = {}
_discovered: set[str] = set()


def set_discovery(**hooks: Callable[[], None]) -> None:
    """The facade's hooks that import what registers (`families=`, `solvers=`)."""
    _discovery.update(hooks)


def discover(kind: str) -> None:
    """Run the `kind` hook once (after it succeeds: a failing import is raised again, not half-hidden)."""
    if kind in _discovered or kind not in _discovery:
        return
    _discovery[kind]()
    _discovered.add(kind)


# -- families ---------------------------------------------------------------------------------------------
def register_family(family: Family) -> Family:
    FAMILIES[family.name] = family
    return family


def register_family_alias(alias: str, resolve: Callable[[str | None], str]) -> None:
    """`alias` (an old family name) now names one of several families, chosen by the spec's preset."""
    FAMILY_ALIASES[alias] = resolve


def resolve_family_alias(name: str, preset: str | None = None) -> str:
    """The family `name` stands for: an alias's resolver is asked first, so a family that kept its name but
    gave some presets away (kv_eviction's `sessions` -> kv_sessions) still sends those presets on."""
    discover("families")
    if name in FAMILY_ALIASES:
        return FAMILY_ALIASES[name](preset)
    return name


def family_names(name: str) -> list[str]:
    """The families `name` stands for: itself, or every family an alias resolves to for some preset."""
    discover("families")
    if name not in FAMILY_ALIASES:
        return [name] if name in FAMILIES else []
    presets = {None} | {p for fam in FAMILIES.values() for p in fam.presets}
    return sorted({FAMILY_ALIASES[name](p) for p in presets} & set(FAMILIES))


def get_family(name: str) -> Family:
    discover("families")
    try:
        return FAMILIES[resolve_family_alias(name)]
    except KeyError:
        raise UnknownNameError("family", name, FAMILIES) from None


def list_families() -> list[str]:
    discover("families")
    return sorted(FAMILIES)


def family_of_instance(instance: Any) -> Family | None:
    """The family whose instance type `instance` is (None when no family claims it)."""
    discover("families")
    for fam in FAMILIES.values():
        if fam.is_instance(instance):
            return fam
    return None


# -- envs -------------------------------------------------------------------------------------------------
def register_env(env_id: str, entry_point: str, family: str, **kwargs: Any) -> None:
    """Register `env_id` (e.g. `sysgym/VmResched-v0`) with Gymnasium and remember its family."""
    if not env_id.startswith(NAMESPACE + "/"):
        raise ValueError(f"sysgym env ids live in the {NAMESPACE!r} namespace, got {env_id!r}")
    if env_id not in gymnasium.registry:
        gymnasium.register(id=env_id, entry_point=entry_point, **kwargs)
    ENVS[env_id] = family


def list_envs(family: str | None = None) -> list[str]:
    """The registered env ids, e.g. `['sysgym/VmResched-v0']` (optionally one family's)."""
    discover("families")
    return sorted(e for e, f in ENVS.items() if family is None or f == family)


def env_family(env_id: str) -> str:
    discover("families")
    try:
        return ENVS[canonical_env_id(env_id)]
    except KeyError:
        raise UnknownNameError("env", env_id, ENVS) from None


def make(env_id: str, **kwargs: Any) -> gymnasium.Env:
    """`gymnasium.make` for sysgym ids; an unknown id lists the known ones.

    The `sysgym/` prefix may be left out: `sysgym.make("VmResched-v0")`.
    """
    discover("families")
    canonical = canonical_env_id(env_id)
    if canonical not in ENVS:
        raise UnknownNameError("env", env_id, ENVS)
    return gymnasium.make(canonical, **kwargs)


def canonical_env_id(env_id: str) -> str:
    return env_id if "/" in env_id else f"{NAMESPACE}/{env_id}"


def env_class(env_id: str) -> type:
    """The class (or creator) behind a registered Gymnasium id, without building the env."""
    discover("families")
    ep = gymnasium.spec(canonical_env_id(env_id) if canonical_env_id(env_id) in ENVS else env_id).entry_point
    if callable(ep):
        return ep
    from gymnasium.envs.registration import load_env_creator

    return load_env_creator(ep)


# -- solvers ----------------------------------------------------------------------------------------------
def register_solver(cls: type[Solver]) -> type[Solver]:
    if not cls.name or "." not in cls.name or not cls.name.startswith(cls.family + "."):
        raise ValueError(f"solver names are '<family>.<method>', got {cls.name!r} for family {cls.family!r}")
    SOLVERS[cls.name] = cls
    return cls


def register_solver_alias(alias: str, targets: dict[str, str]) -> None:
    """`alias` (an old solver name) -> the solver of each family it now stands for (first: the default)."""
    SOLVER_ALIASES[alias] = dict(targets)


def resolve_solver(name: str, family: str | None = None) -> str:
    """The registered solver `name` stands for (an alias resolves to `family`'s target, else its default)."""
    discover("solvers")
    if name in SOLVERS or name not in SOLVER_ALIASES:
        return name
    targets = SOLVER_ALIASES[name]
    if family is not None and family in targets:
        return targets[family]
    return next(iter(targets.values()))


def solver_class(name: str, family: str | None = None) -> type[Solver]:
    discover("solvers")
    try:
        return SOLVERS[resolve_solver(name, family)]
    except KeyError:
        raise UnknownNameError("solver", name, SOLVERS) from None


def list_solvers(family: str | None = None) -> list[str]:
    discover("solvers")
    return sorted(n for n, c in SOLVERS.items() if family is None or c.family == family)
