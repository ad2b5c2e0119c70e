"""Presets of the PostgreSQL knob-tuning family: knob subset, pgbench workload, protocol and budget.

Durations are short on purpose (the original budget: 30 trials in 20 minutes on a 2-core machine); the spread
of repeated runs says how far to trust them. Every preset is a real measurement (`nondeterministic_presets`).
"""
from __future__ import annotations

from typing import Any

from sysgym.generators import Generator
from sysgym.specs import format_spec

from .instance import FIELDS, PgInstance

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


def generate_v0(*, seed: int = 0, preset: str | None = None, **params: Any) -> PgInstance:
    """pgbench on a fresh PostgreSQL: a preset (default `small`) with overrides of its fields; `seed` seeds
    pgbench."""
    preset = preset or "small"
    fields = set(FIELDS) - {"name", "seed"}
    unknown = sorted(set(params) - fields)
    if unknown:
        raise TypeError(f"pg_knobs: unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
    cfg = {**PRESETS[preset], **params}
    return PgInstance(**cfg, seed=int(seed), name=format_spec("pg_knobs", preset, seed, params))


# The family's generator: v0 is what every spec without a version suffix names.
GENERATOR = Generator("pg_knobs", presets=PRESETS, versions={0: generate_v0}, default_preset="small", custom=False)
generate = GENERATOR
