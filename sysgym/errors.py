"""Errors that name the problem. Every user-facing failure in sysgym raises one of these."""
from __future__ import annotations

from collections.abc import Iterable


class SysgymError(Exception):
    """Base class for sysgym's own errors."""


def plural(noun: str) -> str:
    """English plural of a kind's last word ("family" -> "families", "process" -> "processes")."""
    head, _, last = noun.rpartition(" ")
    if last.endswith(("ss", "sh", "ch", "x")):
        last += "es"
    elif last.endswith("s"):
        pass  # already plural or invariable ("semantics")
    elif last.endswith("y") and len(last) > 1 and last[-2] not in "aeiou":
        last = last[:-1] + "ies"
    else:
        last += "s"
    return f"{head} {last}" if head else last


class UnknownNameError(SysgymError, KeyError, ValueError):
    """An env id, solver, preset or other registry name that does not exist; lists the known ones."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        self.kind, self.name, self.known = kind, name, sorted(known)
        super().__init__(f"unknown {kind} {name!r}; known {plural(kind)}: {', '.join(self.known) or '(none)'}")

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


class InvalidSpecError(SysgymError, ValueError):
    """A malformed instance spec or seed (`vm_resched/small?seed=-1`, `seed=1.5`)."""


class FamilyMismatchError(SysgymError, TypeError):
    """An instance of one family handed to another family's solver, env or evaluator."""

    def __init__(self, expected: str, instance: object, who: str = ""):
        self.expected = expected
        got = getattr(instance, "name", None) or type(instance).__name__
        super().__init__(f"{who + ': ' if who else ''}expected a {expected} instance, got {got!r} "
                         f"({type(instance).__name__})")


class GeneratorVersionError(UnknownNameError):
    """An instance spec asks for a generator version this sysgym does not have."""

    def __init__(self, family: str, version: int, known: Iterable[int]):
        UnknownNameError.__init__(self, f"{family} generator version", f"v{version}", [f"v{k}" for k in known])
        self.family, self.version = family, version


class InvalidArgumentError(SysgymError, ValueError, TypeError):
    """A bad argument or option (a solver option that does not exist, a time limit <= 0, a NaN action):
    named before any work is done. A TypeError too, as unknown keyword arguments are in Python."""
