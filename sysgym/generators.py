"""The generator contract: one object per family that makes its instances from (preset, seed, parameters).

A `Generator` wraps the family's generating function(s), one per version:

    GENERATOR = Generator("vm_resched", presets=PRESETS, versions={0: generate_v0, 1: generate_v1})
    GENERATOR(seed=3, preset="medium")             # the newest version
    GENERATOR(seed=3, preset="medium", version=0)  # what specs without a version suffix always name
    GENERATOR.spec("medium", 3, {"mnl": 30})       # 'vm_resched-v1/medium?mnl=30&seed=3'

Each versioned function takes `seed` (a non-negative int, checked here before any work), `preset` and the
preset's parameter overrides, and returns an instance whose `name` is `Generator.spec(...)` of those
arguments. Changing what a version produces for the same arguments is a bug: make a new version instead
(the pinned-digest test in tests/test_conformance.py catches it).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sysgym.errors import GeneratorVersionError, UnknownNameError
from sysgym.specs import check_seed, format_spec


class Generator:
    """A family's instance generator: presets, versions and the spec format (see module doc)."""

    def __init__(self, family: str, *, presets: Mapping[str, Mapping[str, Any]],
                 versions: Mapping[int, Callable[..., Any]], default_preset: str | None = None,
                 preset_versions: Mapping[str, int] | None = None, custom: bool = True):
        if not versions:
            raise ValueError(f"{family}: a generator needs at least one version")
        self.family = family
        self.presets = presets
        self.versions = dict(sorted(versions.items()))
        self.version = max(self.versions)  # what new instances are made with
        self.default_preset = default_preset or next(iter(presets), None)
        # Presets that first appeared in a later version start there (older versions do not know them).
        self.preset_versions = dict(preset_versions or {})
        self.custom = custom  # whether "custom" (explicit parameters only) is a valid preset

    @property
    def description(self) -> str:
        """The newest version's docstring (what `sysgym list` shows)."""
        return (self.versions[self.version].__doc__ or "").strip()

    def check(self, *, seed: Any = 0, preset: str | None = None, version: int | None = None
              ) -> tuple[int, str | None, int]:
        """Validate (seed, preset, version) before any work; returns them normalised."""
        seed = check_seed(seed)
        version = self.version if version is None else int(version)
        if version not in self.versions:
            raise GeneratorVersionError(self.family, version, self.versions)
        if preset is not None and preset != "custom" and preset not in self.presets:
            known = [*self.presets, *(["custom"] if self.custom else [])]
            raise UnknownNameError(f"{self.family} preset", preset, known)
        if preset == "custom" and not self.custom:
            raise UnknownNameError(f"{self.family} preset", preset, self.presets)
        if preset is not None and version < self.preset_versions.get(preset, 0):
            known = [p for p in self.presets if self.preset_versions.get(p, 0) <= version]
            raise UnknownNameError(f"{self.family}-v{version} preset", preset, known)
        return seed, preset, version

    def __call__(self, *, seed: Any = 0, preset: str | None = None, version: int | None = None, **params: Any):
        seed, preset, version = self.check(seed=seed, preset=preset, version=version)
        # None and "custom" both mean: explicit parameters only (each family names such instances "custom").
        return self.versions[version](seed=seed, preset=None if preset == "custom" else preset, **params)

    generate = __call__

    def spec(self, preset: str, seed: int, params: Mapping[str, Any] | None = None, version: int | None = None) -> str:
        """The replayable name of the instance these arguments make."""
        return format_spec(self.family, preset, seed, dict(params or {}),
                           version=self.version if version is None else version)

    def __repr__(self) -> str:
        return f"Generator({self.family!r}, presets={list(self.presets)}, versions={list(self.versions)})"
