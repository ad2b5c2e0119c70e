"""The solver contract (DESIGN contract 4) and its registry functions.

A solver is a class with a `family`, a `name` (`<family>.<method>`), a `kind`, keyword options in its
constructor, and `solve(instance, *, time_limit=None, seed=0) -> Solution`. Before a subclass's `solve`
runs, the base checks what every solver needs (named errors, no work done): the instance is one of the
family's, the seed a non-negative integer, the time limit `None` or a positive number of seconds.

Online families' policies are solvers too: `solve` simulates the policy on the instance and returns the
decisions it took, and `policy()` gives the policy object that the family's simulator and env drive.
"""
from __future__ import annotations

import builtins
import functools
import inspect
import math
from collections.abc import Callable
from typing import Any, ClassVar

from sysgym import registry
from sysgym.errors import InvalidArgumentError, UnknownNameError
from sysgym.solution import Solution
from sysgym.specs import check_seed

KINDS = ("heuristic", "baseline", "exact", "bound", "search", "learned")


def check_time_limit(time_limit: Any, who: str = "") -> float | None:
    """`None` (no limit) or a positive finite number of seconds; anything else is a named error."""
    if time_limit is None:
        return None
    if isinstance(time_limit, bool) or not isinstance(time_limit, (int, float)) or not math.isfinite(time_limit) \
            or time_limit <= 0:
        raise InvalidArgumentError(f"{who + ': ' if who else ''}time_limit must be a positive number of seconds "
                                   f"or None (no limit), got {time_limit!r}")
    return float(time_limit)


class Solver:
    """Base class: stores its keyword configuration so records can report it (see module doc)."""

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    kind: ClassVar[str] = "heuristic"  # one of KINDS; "bound": its answer is a bound, not a method's result
    # True where `solve` reads `time_limit` as deterministic work (CP-SAT's deterministic seconds, see
    # solvers/cpsat_params.py): `sysgym run` then passes its `deterministic_time` budget as the limit when no
    # wall-clock `time_limit` is set, so the same config gives the same answer on any machine.
    deterministic_limit: bool = False

    def __init__(self, **config: Any):
        # Subclasses take explicit keyword options and pass them here, so records report them.
        self.config = dict(config)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "solve" in cls.__dict__:
            cls.solve = _checked(cls.__dict__["solve"])

    def solve(self, instance: Any, *, time_limit: float | None = None, seed: int = 0) -> Solution:
        raise NotImplementedError

    def check_arguments(self, instance: Any, time_limit: Any, seed: Any) -> tuple[float | None, int]:
        registry.get_family(self.family).check_instance(instance, self.name)
        return check_time_limit(time_limit, self.name), check_seed(seed, f"{self.name}: seed")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name}, {self.config})"


def _checked(solve: Callable) -> Callable:
    if getattr(solve, "_sysgym_checked", False):
        return solve

    @functools.wraps(solve)
    def wrapper(self: Solver, instance: Any, *args: Any, time_limit: Any = None, seed: Any = 0, **kwargs: Any):
        if args:
            raise TypeError(f"{self.name}.solve takes the instance, then keyword arguments only")
        time_limit, seed = self.check_arguments(instance, time_limit, seed)
        return solve(self, instance, time_limit=time_limit, seed=seed, **kwargs)

    wrapper._sysgym_checked = True  # type: ignore[attr-defined]
    return wrapper


def register(cls: type[Solver]) -> type[Solver]:
    """Class decorator: `@register class Milp(Solver): name = "vm_resched.milp"; family = "vm_resched"`."""
    if cls.kind not in KINDS:
        raise ValueError(f"solver {cls.name}: kind must be one of {KINDS}, got {cls.kind!r}")
    return registry.register_solver(cls)


def options(cls: type[Solver]) -> dict[str, Any] | None:
    """A solver's constructor options and their defaults (None: it takes **kwargs)."""
    sig = inspect.signature(cls.__init__)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return {n: (None if p.default is p.empty else p.default) for n, p in sig.parameters.items() if n != "self"}


def get(name: str, *, family: str | None = None, **config: Any) -> Solver:
    """A configured solver by registry name; an unknown name lists the known ones, an unknown option the
    accepted ones. An old name (alias) resolves to `family`'s solver when given."""
    cls = registry.solver_class(name, family)
    accepted = options(cls)
    unknown = [k for k in config if accepted is not None and k not in accepted]
    if unknown:
        raise InvalidArgumentError(f"solver {cls.name!r} has no option(s) {', '.join(unknown)}; "
                                   f"options: {', '.join(sorted(accepted or [])) or '(none)'}")
    return cls(**config)


def list(family: str | None = None) -> builtins.list[str]:  # noqa: A001 - public name fixed by the API
    """Registered solver names, optionally only those of one family."""
    return registry.list_solvers(family)


def solver_class(name: str, family: str | None = None) -> type[Solver]:
    return registry.solver_class(name, family)


def policy_names(family: str) -> builtins.list[str]:
    """The named online policies of a family: its registered (non-learned) solvers that give a policy object."""
    return sorted(n.split(".", 1)[1] for n in registry.list_solvers(family)
                  if registry.solver_class(n).kind != "learned"
                  and callable(getattr(registry.solver_class(n), "policy", None)))


def make_policy(family: str, policy: Any, protocol: type | None = None, what: str = "policy", **params: Any) -> Any:
    """The policy object a family's simulator drives: `policy` itself when it already is one (an instance of
    `protocol`, a runtime-checkable Protocol), else the registered solver `<family>.<policy>` configured with
    `params` gives it by `policy()`. Found through the core registry, so envs never import solvers."""
    if protocol is not None and isinstance(policy, protocol):
        if params:
            raise InvalidArgumentError(f"pass options to the {what}'s constructor when giving a {what} object")
        return policy
    key = str(policy).removeprefix(f"{family}.")
    known = policy_names(family)
    if key not in known:
        raise UnknownNameError(f"{family} {what}", str(policy), known)
    return get(f"{family}.{key}", **params).policy()


__all__ = ["KINDS", "Solver", "UnknownNameError", "check_time_limit", "get", "list", "make_policy", "options",
           "policy_names", "register", "solver_class"]
