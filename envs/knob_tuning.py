"""`knob_tuning`: the old name of two families, kept as an alias. New code uses them directly:

* `sysgym.envs.pg_knobs`: a real PostgreSQL under pgbench (objective `tps_mean`, env `sysgym/PgKnobs-v0`);
* `sysgym.envs.serving_knobs`: the serving engine's knobs on the LLM-serving simulator (objective
  `slo_goodput_rps`, env `sysgym/ServingKnobs-v0`).

This module re-exports their public names under the old import path, with `generate` choosing the family by
preset (`serving`, `serving-tiny`: serving knobs; the others: PostgreSQL), `evaluate` by the instance's type and
`load` by the file's format. The family name (`sysgym.get_family("knob_tuning")`, specs
`knob_tuning/<preset>?seed=N`) resolves the same way (`sysgym.envs.pg_knobs.registration`), and the solver names
`knob_tuning.<method>` resolve to the method of the instance's family (`sysgym.solvers.tuning`).
"""
from __future__ import annotations

import os
from typing import Any

from sysgym.envs.knob_space import Knob, KnobSpace
from sysgym.envs.pg_knobs import (
    PRESETS,
    SUBSETS,
    ApplyResult,
    KnobValueError,
    PgbenchError,
    PgInstance,
    PostgresError,
    PostgresServer,
    find_bin_dir,
    load_knob_csv,
    resolve_space,
    space_for,
)
from sysgym.envs.pg_knobs import evaluate as pg_evaluate
from sysgym.envs.pg_knobs import generate as pg_generate
from sysgym.envs.pg_knobs import load as pg_load
from sysgym.envs.pg_knobs.registration import KNOB_TUNING_SERVING_FORMAT, resolve_knob_tuning
from sysgym.envs.serving_knobs import PRESETS as SERVING_PRESETS
from sysgym.envs.serving_knobs import ServingKnobInstance, serving_space
from sysgym.envs.serving_knobs import evaluate as serving_evaluate
from sysgym.envs.serving_knobs import generate as serving_generate
from sysgym.envs.serving_knobs import load as serving_load
from sysgym.instances import read_json


def generate(*, seed: int = 0, preset: str | None = None, **params: Any):
    """`knob_tuning`'s generator as before the split: the `serving*` presets give a `ServingKnobInstance`, the
    others (default `small`) a `PgInstance`."""
    if resolve_knob_tuning(preset) == "serving_knobs":
        return serving_generate(seed=seed, preset=preset, **params)
    return pg_generate(seed=seed, preset=preset, **params)


def evaluate(instance: PgInstance | ServingKnobInstance, solution: Any, **options: Any) -> dict[str, Any]:
    """The evaluator of the instance's family (`pg_knobs.evaluate` or `serving_knobs.evaluate`)."""
    if isinstance(instance, ServingKnobInstance):
        return serving_evaluate(instance, solution, **options)
    return pg_evaluate(instance, solution, **options)


def load(path: str | os.PathLike) -> PgInstance | ServingKnobInstance:
    """A saved instance of either family, told apart by its file format."""
    data = read_json(path)
    if isinstance(data, dict) and data.get("format") == KNOB_TUNING_SERVING_FORMAT:
        return serving_load(path)
    return pg_load(path)


__all__ = ["PRESETS", "SERVING_PRESETS", "SUBSETS", "ApplyResult", "Knob", "KnobSpace", "KnobValueError",
           "PgInstance", "PgbenchError", "PostgresError", "PostgresServer", "ServingKnobInstance", "evaluate",
           "find_bin_dir", "generate", "load", "load_knob_csv", "resolve_space", "serving_space", "space_for"]
