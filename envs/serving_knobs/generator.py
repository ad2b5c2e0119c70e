"""Presets of the serving-knob family: which LLM-serving workload the engine knobs are tuned for, and the budget.

`serving` and `serving-tiny` are the presets of the family from before the split (`knob_tuning/serving?seed=0`):
they make the same problems as `small` and `tiny` and keep their old names, so instances rebuilt from specs
written then have the digests their records hold.
"""
from __future__ import annotations

from typing import Any

from sysgym.generators import Generator
from sysgym.specs import format_spec

from .instance import ServingKnobInstance

PRESETS: dict[str, dict[str, Any]] = {
    # 120 requests, 6 trials: tests and quick demos.
    "tiny": dict(serving_preset="overload", serving_params={"num_requests": 120}, trials=6),
    # 400 requests at 8 req/s on one Llama-2-7B / A100-80GB replica: overloaded, so the knobs matter.
    "small": dict(serving_preset="overload", serving_params={"num_requests": 400}, trials=30),
    # The same two problems under their names from before the split (specs `knob_tuning/<preset>?seed=N`).
    "serving": dict(serving_preset="overload", serving_params={"num_requests": 400}, trials=30),
    "serving-tiny": dict(serving_preset="overload", serving_params={"num_requests": 120}, trials=6),
}
LEGACY_PRESETS = ("serving", "serving-tiny")  # named under the old family name `knob_tuning`
PARAMS = ("serving_preset", "serving_params", "trials")


def generate_v0(*, seed: int = 0, preset: str | None = None, **params: Any) -> ServingKnobInstance:
    """An LLM-serving workload whose engine knobs are tuned: a preset (default `small`) with overrides of
    `serving_preset`, `serving_params` and `trials`; `seed` seeds the workload."""
    preset = preset or "small"
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise TypeError(f"serving_knobs {preset}: unknown parameter(s) {', '.join(unknown)}; known: "
                        f"{', '.join(PARAMS)}")
    cfg = {**PRESETS[preset], **params}
    family = "knob_tuning" if preset in LEGACY_PRESETS else "serving_knobs"
    return ServingKnobInstance(**cfg, serving_seed=int(seed), name=format_spec(family, preset, seed, params))


# The family's generator: v0 is what every spec without a version suffix names.
GENERATOR = Generator("serving_knobs", presets=PRESETS, versions={0: generate_v0}, default_preset="small",
                      custom=False)
generate = GENERATOR
