"""Serving-engine knob tuning: vLLM's engine arguments tuned on the LLM-serving simulator for SLO goodput.

instance.py (ServingKnobInstance, load), generator.py (GENERATOR, presets), knobs.py (the engine's knob space),
evaluate.py (the only scorer: the simulator's run, objective `slo_goodput_rps`), env.py
(`sysgym/ServingKnobs-v0`). The workload and the simulator come from `sysgym.envs.llm_serving`'s public API.
"""
from sysgym.envs.serving_knobs.evaluate import evaluate
from sysgym.envs.serving_knobs.generator import GENERATOR, PRESETS, generate
from sysgym.envs.serving_knobs.instance import ServingKnobInstance, load
from sysgym.envs.serving_knobs.knobs import SCHEDULER_CHOICES, SERVING_KNOBS, check_config, serving_space

__all__ = ["GENERATOR", "PRESETS", "SCHEDULER_CHOICES", "SERVING_KNOBS", "ServingKnobInstance", "check_config",
           "evaluate", "generate", "load", "serving_space"]
