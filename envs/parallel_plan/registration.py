"""Registers the parallel-plan family and `sysgym/ParallelPlan-v0`."""
from sysgym.envs.parallel_plan.evaluate import evaluate
from sysgym.envs.parallel_plan.instance import PRESETS, PlanInstance, generate
from sysgym.family import Family
from sysgym.generators import Generator
from sysgym.registry import register_env, register_family

register_family(Family(
    name="parallel_plan", generator=Generator("parallel_plan", presets=PRESETS, versions={0: generate}),
    evaluate=evaluate, instance_types=(PlanInstance,),
    objective="iteration_time_s", sense="min", env_ids=("sysgym/ParallelPlan-v0",),
    description="Data/tensor/pipeline/sequence parallel plan of LLM training (Megatron-style cost model)",
))
register_env("sysgym/ParallelPlan-v0", "sysgym.envs.parallel_plan.env:ParallelPlanEnv", family="parallel_plan")
