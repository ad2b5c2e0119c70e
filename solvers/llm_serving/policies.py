"""The literature's request schedulers as registered methods (`llm_serving.vllm`, ...).

`solve(instance)` replays the instance's trace through the simulator with the scheduler and returns the
per-request records as the Solution's decisions; `evaluate` re-checks them and recomputes the metrics.
`policy()` gives the scheduler object itself (`schedulers.py`, the one implementation of each name): the
simulator calls it, and it drives `sysgym/LlmServing-v0` when the env is built with it
(`sysgym.make("LlmServing-v0", instance=inst, scheduler=pol)`, then `pol.act(obs, mask)`).
`make_scheduler(**params)` is how the simulator finds a scheduler by name (through the core registry).
"""
from __future__ import annotations

import time
from typing import Any, ClassVar

from sysgym.envs.llm_serving import ServingInstance, simulate
from sysgym.solution import Solution
from sysgym.solver import Solver, register
from sysgym.solvers.llm_serving.schedulers import Scheduler, build


class SchedulerSolver(Solver):
    """A registered scheduler: `solve` simulates it on the instance; `policy()` is the scheduler object."""

    family = "llm_serving"
    kind = "heuristic"
    scheduler: ClassVar[str] = ""

    @classmethod
    def make_scheduler(cls, **params: Any) -> Scheduler:
        """A fresh scheduler of this name with `params` (any knob of the scheduler, not only the options)."""
        return build(cls.scheduler, **params)

    def scheduler_params(self, instance: ServingInstance | None = None) -> dict[str, Any]:
        """This method's options on `instance`'s deployment: an option left at None keeps the instance's."""
        kwargs = instance.simulate_kwargs() if instance is not None else {}
        return {k: v for k, v in self.config.items() if v is not None or k not in kwargs}

    def solve(self, instance: ServingInstance, *, time_limit=None, seed: int = 0) -> Solution:
        t0 = time.perf_counter()
        kwargs = {**instance.simulate_kwargs(), **self.scheduler_params(instance)}
        result = simulate(instance.trace, scheduler=self.scheduler, seed=seed, **kwargs)
        m = result.metrics
        stats = {k: m[k] for k in ("ttft_p50", "ttft_p99", "tbt_p50", "tbt_p99", "e2e_p99", "throughput_rps",
                                   "num_preemptions", "num_iterations")}
        return Solution(result.records(), float(m["e2e_mean"]), "feasible", time.perf_counter() - t0, stats=stats)

    def policy(self, instance: ServingInstance | None = None, seed: int = 0) -> Scheduler:
        """The scheduler object (unbound) with this method's options on `instance`'s deployment (the batch
        cap every scheduler of the instance keeps)."""
        params = self.scheduler_params(instance)
        if instance is not None and instance.max_num_seqs is not None and params.get("max_num_seqs") is None:
            params["max_num_seqs"] = instance.max_num_seqs
        if self.scheduler == "sjf" and params.get("predictor") == "noisy":
            params.setdefault("seed", seed)  # as `simulate` does: the prediction noise follows the run's seed
        return self.make_scheduler(**params)


@register
class Vllm(SchedulerSolver):
    """vLLM v0: FCFS, watermark admission, newest-first recompute preemption, prefill-only iterations."""

    name, scheduler, kind = "llm_serving.vllm", "vllm", "baseline"

    def __init__(self, max_num_seqs: int | None = None, max_num_batched_tokens: int | None = None,
                 watermark: float = 0.01, preemption_mode: str = "recompute"):
        super().__init__(max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens,
                         watermark=watermark, preemption_mode=preemption_mode)


@register
class Orca(SchedulerSolver):
    """Orca: iteration-level batching with worst-case KV reservation (never preempts)."""

    name, scheduler = "llm_serving.orca", "orca"

    def __init__(self, max_num_seqs: int | None = None, max_num_batched_tokens: int | None = None,
                 reserve: str = "max"):
        super().__init__(max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens, reserve=reserve)


@register
class Sarathi(SchedulerSolver):
    """Sarathi-Serve / DeepSpeed-FastGen: stall-free chunked prefill under a per-iteration token budget."""

    name, scheduler = "llm_serving.sarathi", "sarathi"

    def __init__(self, chunk_size: int = 512, max_num_seqs: int | None = None, watermark: float = 0.01,
                 preemption_mode: str = "recompute"):
        super().__init__(chunk_size=chunk_size, max_num_seqs=max_num_seqs, watermark=watermark,
                         preemption_mode=preemption_mode)


@register
class PastFuture(SchedulerSolver):
    """LightLLM Past-Future: admit while the predicted peak KV use fits (predicted or oracle lengths)."""

    name, scheduler = "llm_serving.past_future", "past_future"

    def __init__(self, predictor: str = "past", quantile: float = 0.9, history: int = 1000,
                 max_num_seqs: int | None = None, watermark: float = 0.01):
        super().__init__(predictor=predictor, quantile=quantile, history=history, max_num_seqs=max_num_seqs,
                         watermark=watermark)


@register
class Vtc(SchedulerSolver):
    """Virtual Token Counter fair scheduling with counter lift."""

    name, scheduler = "llm_serving.vtc", "vtc"

    def __init__(self, w_prompt: float = 1.0, w_output: float = 2.0, max_num_seqs: int | None = None,
                 watermark: float = 0.01):
        super().__init__(w_prompt=w_prompt, w_output=w_output, max_num_seqs=max_num_seqs, watermark=watermark)


@register
class Sjf(SchedulerSolver):
    """Shortest job first on predicted output length (oracle, or with log-normal prediction error)."""

    name, scheduler = "llm_serving.sjf", "sjf"

    def __init__(self, predictor: str = "oracle", noise_sigma: float = 0.5, max_num_seqs: int | None = None,
                 watermark: float = 0.01):
        super().__init__(predictor=predictor, noise_sigma=noise_sigma, max_num_seqs=max_num_seqs, watermark=watermark)


def policy(name: str, **params: Any) -> Scheduler:
    """The scheduler `name` (vllm, orca, sarathi, past_future, vtc, sjf) as a policy object."""
    return build(name, **params)
