"""Knob tuning (OtterTune, CDBTune, LlamaTune): configure a real PostgreSQL, measured with pgbench."""
from sysgym.envs.knob_tuning.evaluate import evaluate, space_for
from sysgym.envs.knob_tuning.instance import PRESETS, PgInstance, generate, load
from sysgym.envs.knob_tuning.knobs import SUBSETS, Knob, KnobSpace, load_knob_csv, resolve_space
from sysgym.envs.knob_tuning.server import (
    ApplyResult,
    KnobValueError,
    PgbenchError,
    PostgresError,
    PostgresServer,
    find_bin_dir,
)

__all__ = ["PRESETS", "SUBSETS", "ApplyResult", "Knob", "KnobSpace", "KnobValueError", "PgInstance",
           "PgbenchError", "PostgresError", "PostgresServer", "evaluate", "find_bin_dir", "generate", "load",
           "load_knob_csv", "resolve_space", "space_for"]
