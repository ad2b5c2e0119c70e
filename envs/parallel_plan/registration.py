"""Registers the parallel-plan family and `sysgym/ParallelPlan-v0`."""
from sysgym.envs.parallel_plan.evaluate import evaluate
from sysgym.envs.parallel_plan.generator import GENERATOR
from sysgym.envs.parallel_plan.instance import PlanInstance, load
from sysgym.family import Family
from sysgym.registry import register_env, register_family

register_family(Family(
    name="parallel_plan", generator=GENERATOR, evaluate=evaluate, load=load, instance_types=(PlanInstance,),
    objective="iteration_time_s", sense="min", env_ids=("sysgym/ParallelPlan-v0",),
    description="Data/tensor/pipeline/sequence parallel plan of LLM training (Megatron-style cost model)",
    # `tiny` (a 10 GiB budget per GPU) leaves the Megatron rules of thumb without a plan that fits, so every
    # solver's conformance check runs on `small` (Llama-2-7B on 2 DGX A100 nodes), which every method solves.
    tiny_preset="small",
))
register_env("sysgym/ParallelPlan-v0", "sysgym.envs.parallel_plan.env:ParallelPlanEnv", family="parallel_plan")
