"""Registers the LLM-serving family and `sysgym/LlmServing-v0`, `sysgym/LlmRouting-v0`."""
from sysgym.envs.llm_serving.evaluate import evaluate
from sysgym.envs.llm_serving.generator import GENERATOR
from sysgym.envs.llm_serving.instance import ServingInstance, load
from sysgym.family import Family
from sysgym.registry import register_env, register_family

register_family(Family(
    name="llm_serving", generator=GENERATOR, evaluate=evaluate, load=load, instance_types=(ServingInstance,),
    objective="e2e_mean", sense="min", env_ids=("sysgym/LlmServing-v0", "sysgym/LlmRouting-v0"),
    description="Admit, batch and preempt LLM requests under KV-cache memory; route them to replicas "
                "(vLLM, Sarathi-Serve, Past-Future, VTC)",
    tiny_preset="tiny",
))
register_env("sysgym/LlmServing-v0", "sysgym.envs.llm_serving.env:LlmServingEnv", family="llm_serving")
register_env("sysgym/LlmRouting-v0", "sysgym.envs.llm_serving.env:LlmRoutingEnv", family="llm_serving")
