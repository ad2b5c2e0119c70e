"""Errors that name the problem. Every user-facing failure in sysgym raises one of these."""
from __future__ import annotations

from collections.abc import Iterable


class SysgymError(Exception):
    """Base class for sysgym's own errors."""


class UnknownNameError(SysgymError, KeyError):
    """An env id, solver, preset or other registry name that does not exist; lists the known ones."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        self.kind, self.name, self.known = kind, name, sorted(known)
        super().__init__(f"unknown {kind} {name!r}; known {kind}s: {', '.join(self.known) or '(none)'}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class InvalidInstanceError(SysgymError, ValueError):
    """An instance (generated or loaded) that violates its own constraints."""


class InfeasibleSolutionError(SysgymError, ValueError):
    """A solution that breaks a constraint; the message names the constraint and the offender."""

    def __init__(self, constraint: str, detail: str):
        self.constraint = constraint
        super().__init__(f"infeasible solution: {constraint}: {detail}")


class InvalidActionError(SysgymError, ValueError):
    """An env action outside the action mask."""


class TraceFormatError(SysgymError, ValueError):
    """A malformed trace or instance file; the message names the file and the line or field."""
