"""Registers the serving-knob family and `sysgym/ServingKnobs-v0` (the serving simulator: deterministic)."""
from sysgym.envs.serving_knobs.evaluate import evaluate
from sysgym.envs.serving_knobs.generator import GENERATOR
from sysgym.envs.serving_knobs.instance import ServingKnobInstance, load
from sysgym.family import Family
from sysgym.registry import register_env, register_family

register_family(Family(
    name="serving_knobs", generator=GENERATOR, evaluate=evaluate, load=load, instance_types=(ServingKnobInstance,),
    objective="slo_goodput_rps", sense="max", env_ids=("sysgym/ServingKnobs-v0",),
    description="Tune the serving engine's knobs (vLLM engine arguments) on the LLM-serving simulator: SLO "
                "goodput (OtterTune/LlamaTune methods on a simulated engine)",
    secondary=("slo_attainment", "ttft_p99", "tpot_p99"),
    tiny_preset="tiny",
))
register_env("sysgym/ServingKnobs-v0", "sysgym.envs.serving_knobs.env:ServingKnobsEnv", family="serving_knobs")
