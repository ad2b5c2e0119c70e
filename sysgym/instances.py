"""Named, replayable instances (CompilerGym-style URIs).

`vm_resched/medium?seed=3&mnl=30` means: family `vm_resched`, generator preset `medium`, seed 3,
parameter override `mnl=30`. `vm_resched/file:/path/to/x.json` loads a saved instance or trace.
A result record stores this spec, so `validate` can rebuild the exact instance.
"""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, quote

from sysgym.errors import SysgymError, UnknownNameError
from sysgym.registry import get_family


def format_spec(family: str, preset: str, seed: int, params: dict[str, Any] | None = None) -> str:
    query = [("seed", str(int(seed)))]
    for key in sorted(params or {}):
        query.append((key, json.dumps(params[key], sort_keys=True, separators=(",", ":"))))
    return f"{family}/{preset}?" + "&".join(f"{k}={quote(v, safe=':,[]{}')}" for k, v in query)


def parse_spec(spec: str) -> tuple[str, str, int | None, dict[str, Any]]:
    """Split a spec into (family, preset-or-file, seed, params)."""
    if "/" not in spec:
        raise SysgymError(f"instance spec {spec!r} must look like '<family>/<preset>?seed=N'")
    family, rest = spec.split("/", 1)
    if rest.startswith("file:"):
        return family, rest, None, {}
    preset, _, query = rest.partition("?")
    params: dict[str, Any] = {}
    seed = None
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "seed":
            seed = int(value)
            continue
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return family, preset, seed, params


def from_spec(spec: str) -> Any:
    """Rebuild the instance a spec names."""
    family_name, preset, seed, params = parse_spec(spec)
    family = get_family(family_name)
    if preset.startswith("file:"):
        if family.load is None:
            raise SysgymError(f"family {family_name!r} cannot load instances from files")
        return family.load(preset[len("file:"):])
    if preset == "custom":  # generated from explicit parameters only
        return family.generate(seed=0 if seed is None else seed, **params)
    if preset not in family.presets:
        raise UnknownNameError(f"{family_name} preset", preset, family.presets)
    return family.generate(seed=0 if seed is None else seed, preset=preset, **params)
