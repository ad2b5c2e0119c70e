"""A knob-tuning instance: which knobs, which pgbench workload, which measurement protocol, what budget.

It is a black-box problem: the instance holds no model of PostgreSQL, only what to measure and how.
The seed drives pgbench's own random streams (`--random-seed`), so a run is as repeatable as a real
server allows; the noise that is left is exposed as the spread of repeated runs.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from sysgym.errors import InvalidInstanceError, UnknownNameError
from sysgym.instances import format_spec

from .knobs import SUBSETS

FORMAT = "sysgym.knob_tuning.instance/1"


@dataclass(frozen=True)
class PgInstance:
    """pgbench on a fresh server: knobs to tune, workload, measurement protocol and trial budget."""

    knobs: str = "pgbench-core"  # a knob subset (knobs.SUBSETS)
    scale: int = 5  # pgbench -s (16 MB of data per unit)
    clients: int = 4  # pgbench -c
    duration_s: int = 3  # one measured run, seconds (pgbench -T)
    repetitions: int = 2  # measured runs per trial (mean and spread)
    warmup_s: int = 1  # an unmeasured run after applying a configuration (cache warm-up)
    read_only: bool = False  # pgbench -S (select-only) instead of TPC-B-like
    trials: int = 30  # the tuning budget every method gets
    final_repetitions: int = 3  # runs of the incumbent's final re-measurement
    seed: int = 0  # pgbench --random-seed base
    name: str = "knob_tuning/custom"

    def __post_init__(self) -> None:
        if self.knobs not in SUBSETS:
            raise UnknownNameError("knob subset", self.knobs, SUBSETS)
        for key in ("scale", "clients", "duration_s", "repetitions", "trials", "final_repetitions"):
            if int(getattr(self, key)) < 1:
                raise InvalidInstanceError(f"{self.name}: {key} must be >= 1, got {getattr(self, key)}")
        if self.warmup_s < 0:
            raise InvalidInstanceError(f"{self.name}: warmup_s must be >= 0, got {self.warmup_s}")

    def protocol(self) -> dict[str, Any]:
        return {"scale": self.scale, "clients": self.clients, "duration_s": self.duration_s,
                "repetitions": self.repetitions, "warmup_s": self.warmup_s, "read_only": self.read_only}

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


# Presets. Durations are short on purpose (the budget: 30 trials in 20 minutes on a 2-core
# machine); the spread of repeated runs says how far to trust them.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(knobs="tiny", scale=1, clients=2, duration_s=1, repetitions=1, warmup_s=0, trials=4,
                 final_repetitions=2),
    "small": dict(knobs="pgbench-core", scale=5, clients=4, duration_s=3, repetitions=2, warmup_s=1, trials=30,
                  final_repetitions=3),
    "readonly": dict(knobs="pgbench-core", scale=5, clients=4, duration_s=3, repetitions=2, warmup_s=1,
                     read_only=True, trials=30, final_repetitions=3),
    "llamatune": dict(knobs="llamatune-pg13", scale=5, clients=4, duration_s=3, repetitions=2, warmup_s=1,
                      trials=30, final_repetitions=3),
}


def generate(*, seed: int = 0, preset: str | None = None, **params: Any):
    """A PgInstance from a preset (default `small`) with overrides; `seed` seeds pgbench. The `serving*`
    presets give a `ServingKnobInstance` (engine knobs on the LLM-serving simulator) instead."""
    preset = preset or "small"
    from .serving import SERVING_PRESETS, generate_serving

    if preset in SERVING_PRESETS:
        return generate_serving(seed=seed, preset=preset, **params)
    if preset not in PRESETS:
        raise UnknownNameError("knob_tuning preset", preset, {**PRESETS, **SERVING_PRESETS})
    fields = set(PgInstance.__dataclass_fields__) - {"name", "seed"}
    unknown = sorted(set(params) - fields)
    if unknown:
        raise TypeError(f"knob_tuning: unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
    cfg = {**PRESETS[preset], **params}
    return PgInstance(**cfg, seed=int(seed), name=format_spec("knob_tuning", preset, seed, params))


def load(path: str) -> PgInstance:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if data.pop("format", None) != FORMAT:
        raise InvalidInstanceError(f"{path}: not a knob_tuning instance (format {FORMAT!r})")
    return PgInstance(**data)
