"""Registries of problem families and environments (DESIGN.md: the core sits at the bottom).

A family registers itself on import (`envs/<family>/__init__.py`); its envs register with Gymnasium
under the `sysgym/` namespace, so `gymnasium.make("sysgym/VmResched-v0")` and `sysgym.make(...)` agree.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium

from sysgym.errors import UnknownNameError

NAMESPACE = "sysgym"


@dataclass(frozen=True)
class Family:
    """What every problem family provides to the shared machinery (runner, leaderboard, tests)."""

    name: str
    generate: Callable[..., Any]  # generate(*, seed, **params) -> instance
    presets: Mapping[str, Mapping[str, Any]]  # named generator parameters
    evaluate: Callable[..., dict]  # the family's only scorer
    load: Callable[[str], Any] | None = None  # load(path) -> instance (trace or saved instance)
    objective: str = "objective"  # metric the leaderboard ranks by
    sense: str = "min"  # "min" or "max"
    env_ids: tuple[str, ...] = ()
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


_FAMILIES: dict[str, Family] = {}
_ENVS: dict[str, str] = {}  # env id -> family


def register_family(family: Family) -> Family:
    _FAMILIES[family.name] = family
    return family


def get_family(name: str) -> Family:
    _ensure_loaded()
    try:
        return _FAMILIES[name]
    except KeyError:
        raise UnknownNameError("family", name, _FAMILIES) from None


def list_families() -> list[str]:
    _ensure_loaded()
    return sorted(_FAMILIES)


def register_env(env_id: str, entry_point: str, family: str, **kwargs: Any) -> None:
    """Register `env_id` (e.g. `sysgym/VmResched-v0`) with Gymnasium and remember its family."""
    if not env_id.startswith(NAMESPACE + "/"):
        raise ValueError(f"sysgym env ids live in the {NAMESPACE!r} namespace, got {env_id!r}")
    if env_id not in gymnasium.registry:
        gymnasium.register(id=env_id, entry_point=entry_point, **kwargs)
    _ENVS[env_id] = family


def list_envs() -> list[str]:
    """The registered env ids, e.g. `['sysgym/VmResched-v0']`."""
    _ensure_loaded()
    return sorted(_ENVS)


def env_family(env_id: str) -> str:
    _ensure_loaded()
    try:
        return _ENVS[_canonical(env_id)]
    except KeyError:
        raise UnknownNameError("env", env_id, _ENVS) from None


def make(env_id: str, **kwargs: Any) -> gymnasium.Env:
    """`gymnasium.make` for sysgym ids; an unknown id lists the known ones.

    The `sysgym/` prefix may be left out: `sysgym.make("VmResched-v0")`.
    """
    _ensure_loaded()
    canonical = _canonical(env_id)
    if canonical not in _ENVS:
        raise UnknownNameError("env", env_id, _ENVS)
    return gymnasium.make(canonical, **kwargs)


def _canonical(env_id: str) -> str:
    return env_id if "/" in env_id else f"{NAMESPACE}/{env_id}"


def _ensure_loaded() -> None:
    # Families register on import of sysgym.envs; importing here keeps the registry complete even
    # when a user imports sysgym.registry directly.
    import sysgym.envs  # noqa: F401
