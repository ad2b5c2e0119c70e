"""Instance specs: the replayable name of an instance (CompilerGym-style URIs), with a generator version.

    vm_resched/small?seed=3                  family vm_resched, generator version 0, preset small, seed 3
    vm_resched-v1/medium?seed=0&mnl=30       generator version 1, parameter override mnl=30
    vm_resched/custom?seed=0&num_pms=4       generated from explicit parameters only
    vm_resched/file:/path/to/x.json          a saved instance or a trace file

Version 0 is written without a suffix, so every spec written before versions existed still names the
instance it named then (and its digest is unchanged). A generator that changes what it produces for the same
parameters gets a new version; the old version stays reproducible under its old specs.
"""
from __future__ import annotations

import json
import operator
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote

from sysgym.errors import InvalidSpecError

_HEAD = re.compile(r"^(?P<family>[A-Za-z_][A-Za-z0-9_]*)(?:-v(?P<version>\d+))?$")


@dataclass(frozen=True)
class Spec:
    """A parsed instance spec; `str(spec)` gives the canonical text back."""

    family: str
    preset: str  # a preset name, "custom", or "file:<path>"
    seed: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    version: int = 0

    @property
    def is_file(self) -> bool:
        return self.preset.startswith("file:")

    @property
    def path(self) -> str:
        if not self.is_file:
            raise InvalidSpecError(f"spec {self} names no file")
        return self.preset[len("file:"):]

    def __str__(self) -> str:
        if self.is_file:
            return f"{family_head(self.family, self.version)}/{self.preset}"
        return format_spec(self.family, self.preset, 0 if self.seed is None else self.seed, self.params,
                           version=self.version)


def family_head(family: str, version: int = 0) -> str:
    return family if not version else f"{family}-v{int(version)}"


def check_seed(seed: Any, what: str = "seed") -> int:
    """A seed is a non-negative integer (not a float, not a bool): anything else is a named error."""
    if isinstance(seed, bool) or not hasattr(type(seed), "__index__"):  # ints and numpy integers, not 1.5
        raise InvalidSpecError(f"{what} must be a non-negative integer, got {seed!r} ({type(seed).__name__})")
    value = operator.index(seed)
    if value < 0:
        raise InvalidSpecError(f"{what} must be a non-negative integer, got {value}")
    return value


def format_spec(family: str, preset: str, seed: int, params: dict[str, Any] | None = None, *,
                version: int = 0) -> str:
    query = [("seed", str(check_seed(seed)))]
    for key in sorted(params or {}):
        query.append((key, json.dumps(params[key], sort_keys=True, separators=(",", ":"))))
    return f"{family_head(family, version)}/{preset}?" + "&".join(f"{k}={quote(v, safe=':,[]{}')}" for k, v in query)


def parse(spec: str) -> Spec:
    """Parse a spec; a malformed one raises `InvalidSpecError` naming what is wrong."""
    if not isinstance(spec, str) or "/" not in spec:
        raise InvalidSpecError(f"instance spec {spec!r} must look like '<family>[-v<N>]/<preset>?seed=N'")
    head, rest = spec.split("/", 1)
    m = _HEAD.match(head)
    if not m:
        raise InvalidSpecError(f"instance spec {spec!r}: {head!r} is not '<family>' or '<family>-v<N>'")
    family, version = m.group("family"), int(m.group("version") or 0)
    if rest.startswith("file:"):
        if len(rest) == len("file:"):
            raise InvalidSpecError(f"instance spec {spec!r} names no file after 'file:'")
        return Spec(family, rest, None, {}, version)
    preset, _, query = rest.partition("?")
    if not preset:
        raise InvalidSpecError(f"instance spec {spec!r} names no preset")
    params: dict[str, Any] = {}
    seed = None
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "seed":
            if not re.fullmatch(r"\d+", value):
                raise InvalidSpecError(f"instance spec {spec!r}: seed must be a non-negative integer, got {value!r}")
            seed = int(value)
            continue
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return Spec(family, preset, seed, params, version)


def parse_spec(spec: str) -> tuple[str, str, int | None, dict[str, Any]]:
    """(family, preset-or-file, seed, params): the tuple form older code reads (the version is dropped)."""
    s = parse(spec)
    return s.family, s.preset, s.seed, s.params
