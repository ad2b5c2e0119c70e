"""Registers the knob-tuning family, `sysgym/PgKnobs-v0` (real measurements: nondeterministic) and
`sysgym/ServingKnobs-v0` (the serving simulator: deterministic)."""
from sysgym.envs.knob_tuning.evaluate import evaluate
from sysgym.envs.knob_tuning.instance import PRESETS, PgInstance, generate, load
from sysgym.envs.knob_tuning.serving import SERVING_PRESETS, ServingKnobInstance
from sysgym.family import Family
from sysgym.generators import Generator
from sysgym.registry import register_env, register_family

register_family(Family(
    name="knob_tuning",
    generator=Generator("knob_tuning", presets={**PRESETS, **SERVING_PRESETS}, versions={0: generate}),
    evaluate=evaluate, load=load, instance_types=(PgInstance, ServingKnobInstance),
    objective="objective", sense="max", env_ids=("sysgym/PgKnobs-v0", "sysgym/ServingKnobs-v0"),
    description="Tune a real PostgreSQL's knobs under pgbench (objective: tps_mean) or the serving engine's "
                "knobs on the LLM-serving simulator (objective: slo_goodput_rps) -- OtterTune, CDBTune, LlamaTune",
    nondeterministic_presets=tuple(PRESETS),
))
register_env("sysgym/PgKnobs-v0", "sysgym.envs.knob_tuning.env:PgKnobsEnv", family="knob_tuning",
             nondeterministic=True)
register_env("sysgym/ServingKnobs-v0", "sysgym.envs.knob_tuning.serving_env:ServingKnobsEnv", family="knob_tuning")
