"""The parallel-plan evaluator: the only scorer of every method (DESIGN.md contract 2).

A solution's `decisions` is a `TrainingPlan` or its `to_dict()`. The plan is re-checked from scratch
(legality rules, then the per-GPU memory limit) and priced by `estimate_training`.
"""
from __future__ import annotations

from typing import Any

from sysgym.envs.parallel_plan.cost import TrainingEstimate
from sysgym.envs.parallel_plan.instance import PlanInstance
from sysgym.envs.parallel_plan.plan import TrainingPlan
from sysgym.errors import InfeasibleSolutionError
from sysgym.solution import Solution


def as_plan(decisions: Any) -> TrainingPlan:
    if isinstance(decisions, Solution):
        decisions = decisions.decisions
    if isinstance(decisions, TrainingPlan):
        return decisions
    if isinstance(decisions, dict):
        try:
            return TrainingPlan.from_dict(decisions)
        except (TypeError, ValueError) as exc:
            raise InfeasibleSolutionError("format", f"not a TrainingPlan: {exc}") from None
    raise InfeasibleSolutionError("format", f"decisions must be a TrainingPlan or its dict, got {type(decisions)}")


def metrics_of(est: TrainingEstimate) -> dict[str, Any]:
    mem = est.memory_gib
    # "objective" repeats the family objective for tools that read that generic key (experiments/run.py).
    return {"iteration_time_s": est.iteration_time_s, "objective": est.iteration_time_s,
            "tflops_per_gpu": est.tflops_per_gpu, "mfu": est.mfu,
            "memory_gib": mem.total, "memory_parameters_gib": mem.parameters,
            "memory_gradients_gib": mem.gradients, "memory_optimizer_gib": mem.optimizer,
            "memory_activations_gib": mem.activations, "memory_limit_gib": est.memory_limit_gib,
            "num_microbatches": est.num_microbatches, "feasible": est.feasible, "plan": est.plan.describe()}


def evaluate(inst: PlanInstance, solution: Solution | TrainingPlan | dict, *,
             raise_on_infeasible: bool = True) -> dict[str, Any]:
    """Metrics of a plan: `iteration_time_s` (the objective), `tflops_per_gpu`, `mfu`, memory per GPU (GiB)."""
    try:
        plan = as_plan(solution)
    except InfeasibleSolutionError as exc:
        if raise_on_infeasible:
            raise
        return {"feasible": False, "violation": str(exc), "iteration_time_s": None}
    est = inst.estimate(plan)
    if not est.feasible:
        if raise_on_infeasible:
            raise InfeasibleSolutionError(est.rule or "plan", est.reason or "infeasible")
        return {**metrics_of(est), "feasible": False, "violation": est.reason, "iteration_time_s": None,
                "objective": None}
    return metrics_of(est)
