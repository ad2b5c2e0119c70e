"""Parallel-plan search for LLM training (Megatron-style cost model; exhaustive, DP, CP-SAT, Optuna, RL).

`estimate_training(model, cluster, plan, *, seq_len, global_batch)` is the family's only scorer;
`PlanInstance(model, cluster, seq_len, global_batch, memory_limit_gib=None)` is what the solvers take;
`generate(preset=..., seed=...)` makes one from a preset (`generator.py`), `load(path)` reads a saved one.
"""
from sysgym.envs.parallel_plan.cost import (
    CostModel,
    MemoryBreakdown,
    TrainingEstimate,
    cost_model,
    estimate_training,
)
from sysgym.envs.parallel_plan.evaluate import evaluate
from sysgym.envs.parallel_plan.generator import GENERATOR, PRESETS, generate
from sysgym.envs.parallel_plan.instance import PlanInstance, load
from sysgym.envs.parallel_plan.plan import RECOMPUTE, TrainingPlan, legality

__all__ = ["GENERATOR", "PRESETS", "RECOMPUTE", "CostModel", "MemoryBreakdown", "PlanInstance",
           "TrainingEstimate", "TrainingPlan", "cost_model", "estimate_training", "evaluate", "generate", "legality",
           "load"]
