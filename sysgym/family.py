"""The family contract: what every problem family gives the shared machinery (runner, validate, leaderboard,
agents, tests). A family registers one `Family` in `envs/<family>/registration.py`.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from sysgym.errors import FamilyMismatchError
from sysgym.generators import Generator


class Evaluator(Protocol):
    """`evaluate(instance, solution, **options) -> metrics`: the family's only scorer. It re-checks the
    solution's decisions (raising `InfeasibleSolutionError` naming the broken constraint) and returns a dict
    holding at least the family's `objective` and `feasible`."""

    def __call__(self, instance: Any, solution: Any, /, **options: Any) -> dict[str, Any]: ...


class Loader(Protocol):
    """`load(path) -> instance`: a saved instance or a trace file; malformed files raise TraceFormatError."""

    def __call__(self, path: str | os.PathLike, /) -> Any: ...


@dataclass(frozen=True)
class Family:
    """One problem family (see the module doc)."""

    name: str
    generator: Generator
    evaluate: Evaluator
    instance_types: tuple[type, ...]  # what `check_instance` accepts (and what envs and solvers take)
    objective: str  # the metric the leaderboard ranks by
    sense: Literal["min", "max"]
    description: str
    load: Loader | None = None
    env_ids: tuple[str, ...] = ()
    timed_objective: str | None = None  # the objective with the method's own decision time charged, if any
    secondary: tuple[str, ...] = ()  # further metrics the leaderboard shows
    # Presets that are real measurements (a live server): re-scoring re-measures, so validate marks them
    # "measured" instead of comparing numbers.
    nondeterministic_presets: tuple[str, ...] = ()
    # The smallest preset: every solver of the family solves it in the conformance suite, and
    # `conf/env/<family>_tiny.yaml` trains the conformance suite's agent on it.
    tiny_preset: str = "tiny"

    def __post_init__(self) -> None:
        if self.sense not in ("min", "max"):
            raise ValueError(f"family {self.name}: sense must be 'min' or 'max', got {self.sense!r}")
        if self.generator.family != self.name:
            raise ValueError(f"family {self.name}: its generator is {self.generator.family!r}'s")
        if self.tiny_preset not in self.generator.presets:
            raise ValueError(f"family {self.name}: tiny_preset {self.tiny_preset!r} is not one of its presets")

    # The names older code and the README use.
    @property
    def generate(self) -> Generator:
        return self.generator

    @property
    def presets(self) -> Mapping[str, Mapping[str, Any]]:
        return self.generator.presets

    def is_instance(self, instance: Any) -> bool:
        return isinstance(instance, self.instance_types)

    def check_instance(self, instance: Any, who: str = "") -> Any:
        """Return `instance` if it is one of this family's, else raise `FamilyMismatchError` (before any work)."""
        if not isinstance(instance, self.instance_types):
            raise FamilyMismatchError(self.name, instance, who)
        return instance

    def better(self, a: float, b: float, tol: float = 1e-9) -> bool:
        """Whether objective `a` is at least as good as `b` under this family's sense."""
        return a <= b + tol if self.sense == "min" else a >= b - tol
