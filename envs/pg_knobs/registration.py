"""Registers the PostgreSQL knob-tuning family, `sysgym/PgKnobs-v0` (real measurements: nondeterministic), and
the old family name `knob_tuning` as an alias (its PostgreSQL presets resolve here, its serving presets to
`serving_knobs`)."""
from sysgym.envs.pg_knobs.evaluate import evaluate
from sysgym.envs.pg_knobs.generator import GENERATOR, PRESETS
from sysgym.envs.pg_knobs.instance import PgInstance, load
from sysgym.family import Family
from sysgym.instances import read_json
from sysgym.registry import register_env, register_family, register_family_alias

register_family(Family(
    name="pg_knobs", generator=GENERATOR, evaluate=evaluate, load=load, instance_types=(PgInstance,),
    objective="tps_mean", sense="max", env_ids=("sysgym/PgKnobs-v0",),
    description="Tune a real PostgreSQL's knobs under pgbench: mean throughput of the measured runs "
                "(OtterTune, CDBTune, LlamaTune)",
    secondary=("latency_ms_mean", "tps_ci95"),
    nondeterministic_presets=tuple(PRESETS), tiny_preset="tiny",
))
register_env("sysgym/PgKnobs-v0", "sysgym.envs.pg_knobs.env:PgKnobsEnv", family="pg_knobs", nondeterministic=True)

# `knob_tuning` (before the split) glued both knob families: its specs keep resolving by preset.
KNOB_TUNING_SERVING_PRESETS = ("serving", "serving-tiny")  # serving_knobs' presets from before the split
KNOB_TUNING_SERVING_FORMAT = "sysgym.knob_tuning.serving_instance/1"  # a saved serving_knobs instance


def resolve_knob_tuning(preset: str | None) -> str:
    """The family an old `knob_tuning/<preset>` spec now belongs to (`pg_knobs` by default, as before)."""
    if preset in KNOB_TUNING_SERVING_PRESETS:
        return "serving_knobs"
    if preset is not None and preset.startswith("file:"):
        try:
            data = read_json(preset[len("file:"):])
        except (OSError, ValueError):
            return "pg_knobs"  # pg_knobs' loader then names what is wrong with the file
        if isinstance(data, dict) and data.get("format") == KNOB_TUNING_SERVING_FORMAT:
            return "serving_knobs"
    return "pg_knobs"


register_family_alias("knob_tuning", resolve_knob_tuning)
