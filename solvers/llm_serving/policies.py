"""The literature's request schedulers as registered methods (`llm_serving.vllm`, ...) and policy objects.

`solve(instance)` replays the instance's trace through the simulator with the scheduler and returns the
per-request records as the Solution's decisions; `evaluate` re-checks them and recomputes the metrics.
`policy(name).act(observation)` drives `sysgym/LlmServing-v0` with the same admission order.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from sysgym.envs.llm_serving.instance import ServingInstance
from sysgym.envs.llm_serving.serving import simulate
from sysgym.solution import Solution
from sysgym.solvers.base import Solver, register


class _SchedulerSolver(Solver):
    family = "llm_serving"
    kind = "heuristic"
    scheduler = ""

    def solve(self, instance: ServingInstance, *, time_limit=None, seed: int = 0) -> Solution:
        t0 = time.perf_counter()
        kwargs = instance.simulate_kwargs()
        kwargs.update({k: v for k, v in self.config.items() if v is not None or k not in kwargs})
        result = simulate(instance.trace, scheduler=self.scheduler, seed=seed, **kwargs)
        m = result.metrics
        stats = {k: m[k] for k in ("ttft_p50", "ttft_p99", "tbt_p50", "tbt_p99", "e2e_p99", "throughput_rps",
                                   "num_preemptions", "num_iterations")}
        return Solution(result.records(), float(m["e2e_mean"]), "feasible", time.perf_counter() - t0, stats=stats)

    def policy(self) -> SchedulerPolicy:
        return SchedulerPolicy(self.scheduler)


_COMMON = dict(max_num_seqs=None, max_num_batched_tokens=None, watermark=0.01, preemption_mode="recompute")


@register
class Vllm(_SchedulerSolver):
    """vLLM v0: FCFS, watermark admission, newest-first recompute preemption, prefill-only iterations."""

    name, scheduler, kind = "llm_serving.vllm", "vllm", "baseline"

    def __init__(self, max_num_seqs: int | None = None, max_num_batched_tokens: int | None = None,
                 watermark: float = 0.01, preemption_mode: str = "recompute"):
        super().__init__(max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens,
                         watermark=watermark, preemption_mode=preemption_mode)


@register
class Orca(_SchedulerSolver):
    """Orca: iteration-level batching with worst-case KV reservation (never preempts)."""

    name, scheduler = "llm_serving.orca", "orca"

    def __init__(self, max_num_seqs: int | None = None, max_num_batched_tokens: int | None = None,
                 reserve: str = "max"):
        super().__init__(max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens, reserve=reserve)


@register
class Sarathi(_SchedulerSolver):
    """Sarathi-Serve / DeepSpeed-FastGen: stall-free chunked prefill under a per-iteration token budget."""

    name, scheduler = "llm_serving.sarathi", "sarathi"

    def __init__(self, chunk_size: int = 512, max_num_seqs: int | None = None, watermark: float = 0.01,
                 preemption_mode: str = "recompute"):
        super().__init__(chunk_size=chunk_size, max_num_seqs=max_num_seqs, watermark=watermark,
                         preemption_mode=preemption_mode)


@register
class PastFuture(_SchedulerSolver):
    """LightLLM Past-Future: admit while the predicted peak KV use fits (predicted or oracle lengths)."""

    name, scheduler = "llm_serving.past_future", "past_future"

    def __init__(self, predictor: str = "past", quantile: float = 0.9, history: int = 1000,
                 max_num_seqs: int | None = None, watermark: float = 0.01):
        super().__init__(predictor=predictor, quantile=quantile, history=history, max_num_seqs=max_num_seqs,
                         watermark=watermark)


@register
class Vtc(_SchedulerSolver):
    """Virtual Token Counter fair scheduling with counter lift."""

    name, scheduler = "llm_serving.vtc", "vtc"

    def __init__(self, w_prompt: float = 1.0, w_output: float = 2.0, max_num_seqs: int | None = None,
                 watermark: float = 0.01):
        super().__init__(w_prompt=w_prompt, w_output=w_output, max_num_seqs=max_num_seqs, watermark=watermark)


@register
class Sjf(_SchedulerSolver):
    """Shortest job first on predicted output length (oracle, or with log-normal prediction error)."""

    name, scheduler = "llm_serving.sjf", "sjf"

    def __init__(self, predictor: str = "oracle", noise_sigma: float = 0.5, max_num_seqs: int | None = None,
                 watermark: float = 0.01):
        super().__init__(predictor=predictor, noise_sigma=noise_sigma, max_num_seqs=max_num_seqs, watermark=watermark)


class SchedulerPolicy:
    """`act(observation) -> action` for `sysgym/LlmServing-v0`, mirroring a scheduler's admission order.

    The env's action is 0 (run the iteration), 1 + i (admit waiting slot i) or 1 + W + j (preempt running
    slot j); `observation["mask"]` marks the valid ones. The policy admits the first valid waiting request
    in its order (FCFS by arrival for vllm/orca/sarathi/past_future, shortest predicted output for sjf,
    least-served client for vtc), runs the iteration when none is admissible, and when the run is masked
    (a decode lacks a KV block) preempts the newest running request.
    """

    ORDER_FEATURE = {"sjf": 3, "vtc": 5}  # waiting-feature column to minimise; default: arrival (column 1)

    def __init__(self, scheduler: str = "vllm"):
        from sysgym.envs.llm_serving.schedulers import SCHEDULERS
        from sysgym.errors import UnknownNameError

        if scheduler not in SCHEDULERS:
            raise UnknownNameError("scheduler", scheduler, SCHEDULERS)
        self.scheduler = scheduler

    def act(self, observation: dict[str, Any]) -> int:
        mask = np.asarray(observation["mask"], bool)
        waiting, running = observation["waiting"], observation["running"]
        w = len(waiting)
        admit = np.flatnonzero(mask[1:1 + w])
        if len(admit):
            col = self.ORDER_FEATURE.get(self.scheduler, 1)
            key = waiting[admit, col] + 1e-6 * waiting[admit, 1]
            return int(1 + admit[int(np.argmin(key))])
        if mask[0]:
            return 0
        pre = np.flatnonzero(mask[1 + w:])
        if len(pre):
            return int(1 + w + pre[int(np.argmax(running[pre, 1]))])  # newest arrival
        raise RuntimeError("no valid action in the observation's mask")


def policy(name: str) -> SchedulerPolicy:
    return SchedulerPolicy(name)
