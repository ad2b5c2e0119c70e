"""The serving-knob evaluator: the only scorer. It runs the LLM-serving simulator (`sysgym.envs.llm_serving`'s
public `simulate`) on the instance's workload with an engine configuration. The family's objective is SLO
goodput (`slo_goodput_rps`: requests per second that meet both the TTFT and the TPOT SLO, DistServe).

A configuration is a dict {knob: value} over `knobs.SERVING_KNOBS`; knobs left out take vLLM's defaults. A knob
outside the space or a value outside its range is infeasible (`InfeasibleSolutionError` naming the knob and the
allowed range). A configuration the engine cannot run is a crash, as for PostgreSQL: too little memory for
the weights and one request's KV cache (vLLM fails at start-up with an out-of-memory error), or a non-chunking
scheduler whose `max_num_batched_tokens` is below the longest request (vLLM refuses to start:
max_num_batched_tokens must be >= max_model_len without chunked prefill). A crash scores 0 here; tuners score
it as the worst value seen so far. The simulator is deterministic, so one measurement per configuration is exact.
"""
from __future__ import annotations

from typing import Any

from sysgym.envs.knob_space import config_of
from sysgym.errors import FamilyMismatchError, InfeasibleSolutionError, InvalidInstanceError, UnknownNameError
from sysgym.solution import Solution

from .instance import ServingKnobInstance
from .knobs import check_config, simulate_kwargs


def evaluate(instance: ServingKnobInstance, solution: Solution | dict[str, Any] | None, *,
             raise_on_infeasible: bool = True) -> dict[str, Any]:
    """Simulate the workload under the configuration: `slo_goodput_rps` (the objective, maximised), the
    simulator's latency/throughput metrics, `crashed` and its `error`, the checked `config`."""
    from sysgym.envs.llm_serving import simulate

    if not isinstance(instance, ServingKnobInstance):
        raise FamilyMismatchError("serving_knobs", instance, "serving_knobs.evaluate")
    config = config_of(solution)
    try:
        checked = check_config(config)
    except (InfeasibleSolutionError, UnknownNameError) as exc:
        err = exc if isinstance(exc, InfeasibleSolutionError) else InfeasibleSolutionError("knob space", str(exc))
        if raise_on_infeasible:
            raise err from None
        return {"feasible": False, "violation": str(err), "slo_goodput_rps": None, "crashed": False}
    serving = instance.serving_instance()
    kw = {**serving.simulate_kwargs(), **simulate_kwargs(checked)}
    metrics: dict[str, Any] = {"feasible": True, "crashed": False, "error": None, "config": checked,
                               "deterministic": True}
    max_tokens = serving.max_tokens
    if max_tokens is None:
        from sysgym import kernels

        max_tokens = kernels.models.get(serving.model).max_seq_len
    if checked["scheduler"] != "sarathi" and checked["max_num_batched_tokens"] < max_tokens:
        return _crash(metrics, f"engine refuses to start: max_num_batched_tokens {checked['max_num_batched_tokens']}"
                               f" < max_model_len {max_tokens} without chunked prefill (scheduler "
                               f"{checked['scheduler']})")
    try:
        result = simulate(serving.trace, **kw)
    except InvalidInstanceError as exc:  # the memory planner: weights + one request do not fit
        return _crash(metrics, f"out of memory: {exc}")
    except (ValueError, RuntimeError) as exc:
        return _crash(metrics, f"engine failed: {exc}")
    metrics.update({k: v for k, v in result.metrics.items() if isinstance(v, (int, float))})
    metrics["num_blocks"] = result.plan.num_blocks
    return metrics


def _crash(metrics: dict[str, Any], reason: str) -> dict[str, Any]:
    metrics.update(crashed=True, error=reason, slo_goodput_rps=0.0)
    return metrics
