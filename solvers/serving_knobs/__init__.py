"""Serving-knob methods: `serving_knobs.{default,random,tpe,gp,cmaes,llamatune}` (the shared tuners of
`sysgym.solvers.tuning` on the LLM-serving simulator). Importing registers them. The simulator is
deterministic: nothing is re-measured and the gain over the defaults is exact.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sysgym.envs.serving_knobs.evaluate import evaluate
from sysgym.envs.serving_knobs.instance import ServingKnobInstance
from sysgym.envs.serving_knobs.knobs import serving_space
from sysgym.solvers.tuning import KnobTuning, TuningProblem, register_methods


class ServingProblem(TuningProblem):
    """A serving workload on the simulator: one exact measurement per configuration."""

    objective = "slo_goodput_rps"
    deterministic = True

    def __init__(self, instance: ServingKnobInstance):
        super().__init__(instance, serving_space())

    def measure(self, config: dict[str, Any], seed_offset: int, repetitions: int | None = None) -> dict[str, Any]:
        return evaluate(self.instance, config)

    def show(self, value: float) -> str:
        return f"{value:.3f} req/s"


class ServingKnobs(KnobTuning):
    family = "serving_knobs"

    @contextlib.contextmanager
    def open(self, instance: ServingKnobInstance) -> Iterator[ServingProblem]:
        yield ServingProblem(instance)


METHODS = register_methods(ServingKnobs)
