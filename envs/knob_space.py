"""Knob spaces shared by the two knob-tuning families (`pg_knobs`, `serving_knobs`) and their tuners.

A `Knob` is one configuration parameter with a type (bool, integer, real, enum), a unit, a context (when a
change takes effect: PostgreSQL's `postmaster`/`sighup`/..., or `engine` for a serving engine), a default and
a range. Each knob maps to a normalised coordinate u in [0, 1]: enums and booleans by equal-width buckets,
numbers linearly, or logarithmically when the range spans more than three decades (`log=True`). A `KnobSpace`
is an ordered set of knobs; the tuners (`sysgym.solvers.tuning`) and the Box-action envs search it through
these coordinates, so the same methods tune a PostgreSQL server and a serving engine. `config_of` reads the
configuration a solution stands for (what both families' evaluators score).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sysgym.errors import InfeasibleSolutionError, UnknownNameError
from sysgym.solution import Solution


@dataclass(frozen=True)
class Knob:
    name: str
    vartype: str  # bool | integer | real | enum
    unit: str | None  # pg_settings.unit: '8kB', 'kB', 'MB', 'ms', 's', 'min' or None
    context: str  # postmaster (restart) | sighup | superuser | user | ... | engine
    default: Any  # boot value, in the knob's unit (number) or the enum/bool string
    lo: float = 0.0
    hi: float = 1.0
    choices: tuple[str, ...] = ()
    log: bool = False

    @property
    def restart(self) -> bool:
        return self.context == "postmaster"

    @property
    def special(self) -> float | None:
        """LlamaTune's special value: a range minimum of -1 or 0 that means 'off' or 'use another knob'."""
        if self.vartype in ("integer", "real") and self.lo in (-1.0, 0.0) and self.hi > self.lo + 1:
            return self.lo
        return None

    def from_unit(self, u: float) -> Any:
        """Value for a normalised coordinate u in [0, 1]."""
        u = min(max(float(u), 0.0), 1.0)
        if self.vartype in ("enum", "bool"):
            return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]
        if self.log:
            shift = 1.0 - self.lo  # log over [1, hi - lo + 1]
            x = math.exp(u * math.log(self.hi + shift)) - shift
        else:
            x = self.lo + u * (self.hi - self.lo)
        if self.vartype == "integer":
            x = round(x)
        return min(max(x, self.lo), self.hi)

    def to_unit(self, value: Any) -> float:
        if self.vartype in ("enum", "bool"):
            v = bool_text(value) if self.vartype == "bool" else str(value)
            idx = self.choices.index(v) if v in self.choices else 0
            return (idx + 0.5) / len(self.choices)
        x = min(max(float(value), self.lo), self.hi)
        if self.hi == self.lo:
            return 0.0
        if self.log:
            shift = 1.0 - self.lo
            return math.log(x + shift) / math.log(self.hi + shift)
        return (x - self.lo) / (self.hi - self.lo)

    def describe(self) -> str:
        if self.vartype in ("enum", "bool"):
            return f"{self.name} in {{{', '.join(self.choices)}}} ({self.context})"
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.name} in [{_fmt(self.lo)}, {_fmt(self.hi)}]{unit}{' log' if self.log else ''} ({self.context})"


@dataclass(frozen=True)
class KnobSpace:
    """An ordered set of knobs; `missing` lists requested knobs this server lacks, with the reason."""

    name: str
    knobs: tuple[Knob, ...]
    missing: dict[str, str] = field(default_factory=dict)
    server_version: str = ""

    def __len__(self) -> int:
        return len(self.knobs)

    @property
    def names(self) -> list[str]:
        return [k.name for k in self.knobs]

    def __getitem__(self, name: str) -> Knob:
        for k in self.knobs:
            if k.name == name:
                return k
        raise UnknownNameError("knob", name, self.names)

    def bounds(self) -> dict[str, tuple[float, float]]:
        return {k.name: (k.lo, k.hi) for k in self.knobs if k.vartype in ("integer", "real")}

    def from_unit(self, u: np.ndarray) -> dict[str, Any]:
        u = np.asarray(u, dtype=float).reshape(-1)
        if len(u) != len(self.knobs):
            raise ValueError(f"space {self.name!r} has {len(self.knobs)} knobs, got a vector of {len(u)}")
        return {k.name: k.from_unit(x) for k, x in zip(self.knobs, u)}

    def to_unit(self, config: dict[str, Any]) -> np.ndarray:
        return np.array([k.to_unit(config.get(k.name, k.default)) for k in self.knobs], dtype=float)

    def defaults(self) -> dict[str, Any]:
        return {k.name: k.default for k in self.knobs}

    def check(self, config: dict[str, Any]) -> None:
        """Raise UnknownNameError for a knob outside this space."""
        for name in config:
            if name not in self.names:
                raise UnknownNameError("knob", name, self.names)


def config_of(solution: Solution | dict[str, Any] | None) -> dict[str, Any]:
    """The configuration {knob: value} a solution (or a plain dict, or None: the defaults) stands for."""
    decisions = solution.decisions if isinstance(solution, Solution) else solution
    if decisions is None:
        return {}
    if not isinstance(decisions, dict):
        raise InfeasibleSolutionError("format", f"a configuration is a dict {{knob: value}}, got {type(decisions)}")
    return dict(decisions)


def bool_text(value: Any) -> str:
    """'on'/'off' for a boolean knob value given as a bool or a PostgreSQL-style string."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return "on" if str(value).lower() in ("on", "true", "1", "yes") else "off"


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"
