"""The solver protocol and registry shared by every static family (DESIGN.md contract 4).

A solver is a class with a `family`, a `name` (`<family>.<method>`), keyword configuration in its
constructor, and `solve(instance, *, time_limit=None, seed=0) -> Solution`.
"""
from __future__ import annotations

import builtins
import inspect
from collections.abc import Callable
from typing import Any, ClassVar

from sysgym.errors import UnknownNameError
from sysgym.solution import Solution


class Solver:
    """Base class: stores its keyword configuration so records can report it."""

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    kind: ClassVar[str] = "heuristic"  # heuristic | exact | search | learned | baseline

    def __init__(self, **config: Any):
        # Subclasses take explicit keyword options and pass them here, so records report them.
        self.config = dict(config)

    def solve(self, instance: Any, *, time_limit: float | None = None, seed: int = 0) -> Solution:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name}, {self.config})"


_SOLVERS: dict[str, type[Solver]] = {}


def register(cls: type[Solver]) -> type[Solver]:
    """Class decorator: `@register class Milp(Solver): name = "vm_resched.milp"; family = "vm_resched"`."""
    if not cls.name or "." not in cls.name or not cls.name.startswith(cls.family + "."):
        raise ValueError(f"solver names are '<family>.<method>', got {cls.name!r} for family {cls.family!r}")
    _SOLVERS[cls.name] = cls
    return cls


def get(name: str, **config: Any) -> Solver:
    """A configured solver by registry name; an unknown name lists the known ones.

    Unknown configuration keys are rejected with the accepted ones listed.
    """
    _ensure_loaded()
    try:
        cls = _SOLVERS[name]
    except KeyError:
        raise UnknownNameError("solver", name, _SOLVERS) from None
    params = _accepted_params(cls.__init__)
    unknown = [k for k in config if params is not None and k not in params]
    if unknown:
        raise TypeError(f"solver {name!r} has no option(s) {', '.join(unknown)}; "
                        f"options: {', '.join(sorted(params or [])) or '(none)'}")
    return cls(**config)


def list(family: str | None = None) -> builtins.list[str]:  # noqa: A001 - public name fixed by the API
    """Registered solver names, optionally only those of one family."""
    _ensure_loaded()
    return sorted(n for n, c in _SOLVERS.items() if family is None or c.family == family)


def solver_class(name: str) -> type[Solver]:
    _ensure_loaded()
    try:
        return _SOLVERS[name]
    except KeyError:
        raise UnknownNameError("solver", name, _SOLVERS) from None


def _accepted_params(init: Callable) -> set[str] | None:
    sig = inspect.signature(init)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return {n for n in sig.parameters if n != "self"}


_LOADED = False


def _ensure_loaded() -> None:
    """Import every family's solver package (`solvers/<family>/`), which registers its solvers."""
    global _LOADED
    if _LOADED:
        return
    import importlib
    import importlib.util
    import pkgutil

    import sysgym.solvers as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.ispkg and not info.name.startswith("_"):
            importlib.import_module(f"{pkg.__name__}.{info.name}")
    # Learned methods register from agents/ (`sysgym.agents.methods`), when that module exists.
    if importlib.util.find_spec("sysgym.agents.methods") is not None:
        importlib.import_module("sysgym.agents.methods")
    _LOADED = True  # only after every import succeeded: a failure is raised again, not half-hidden
