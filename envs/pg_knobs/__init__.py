"""PostgreSQL knob tuning (OtterTune, CDBTune, LlamaTune): configure a real PostgreSQL, measured with pgbench.

instance.py (PgInstance, load), generator.py (GENERATOR, presets), knobs.py (knob subsets from pg_settings, the
LlamaTune space), evaluate.py (the only scorer: apply + pgbench, objective `tps_mean`), env.py
(`sysgym/PgKnobs-v0`). The server, split by responsibility: server.py (PostgresServer: lifecycle and
connection), settings.py (pg_settings, apply/reset, rollback, pg_stat counters), pgbench.py (runs),
stats.py (mean, spread, confidence interval of repeated runs), units.py (knob values and units),
binaries.py (which binaries; running as an unprivileged user under root), ports.py, cleanup.py (exit,
Ctrl-C, SIGKILL of the owner), errors.py.
"""
from sysgym.envs.knob_space import Knob, KnobSpace
from sysgym.envs.pg_knobs.binaries import find_bin_dir
from sysgym.envs.pg_knobs.errors import KnobValueError, PgbenchError, PostgresError
from sysgym.envs.pg_knobs.evaluate import evaluate, space_for
from sysgym.envs.pg_knobs.generator import GENERATOR, PRESETS, generate
from sysgym.envs.pg_knobs.instance import PgInstance, load
from sysgym.envs.pg_knobs.knobs import SUBSETS, load_knob_csv, resolve_space
from sysgym.envs.pg_knobs.server import PostgresServer
from sysgym.envs.pg_knobs.settings import ApplyResult

__all__ = ["GENERATOR", "PRESETS", "SUBSETS", "ApplyResult", "Knob", "KnobSpace", "KnobValueError", "PgInstance",
           "PgbenchError", "PostgresError", "PostgresServer", "evaluate", "find_bin_dir", "generate", "load",
           "load_knob_csv", "resolve_space", "space_for"]
