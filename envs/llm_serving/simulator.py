"""`simulate(...)`: replay a request trace on one or more serving replicas (`replica.Replica`, one iteration
loop each); `ServingResult` holds the per-request records and the metrics.

Schedulers are named (`scheduler="vllm"`, ...): the registered method `llm_serving.<name>` makes each one
(`replica.make_scheduler`, through the core registry); a scheduler object (`Scheduler` protocol) works too.

Cluster routing (`router=`): ``round_robin``; ``least_outstanding`` (fewest routed-but-unfinished
requests, as vLLM production-stack / Ray Serve's default); ``jsq`` (join the shortest *waiting* queue);
``power_of_two`` (Mitzenmacher's two random choices, least outstanding of the two). State-dependent
routers advance every replica to the arrival time before choosing. Routers are part of an instance's
deployment; `sysgym/LlmRouting-v0` lets an agent route instead.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from sysgym import kernels
from sysgym.envs.llm_serving.latency import BatchLatency
from sysgym.envs.llm_serving.memory import MemoryPlan, plan_memory
from sysgym.envs.llm_serving.metrics import DEFAULT_SLO_TPOT_S, DEFAULT_SLO_TTFT_S, compute_metrics
from sysgym.envs.llm_serving.pipeline import PIPELINES, PipelineReplica, StageSends
from sysgym.envs.llm_serving.replica import Replica, RequestState, Scheduler, make_scheduler, request_arrays
from sysgym.envs.llm_serving.traces import Trace, as_trace
from sysgym.errors import InvalidArgumentError, InvalidInstanceError, UnknownNameError

ROUTERS = ("round_robin", "least_outstanding", "jsq", "power_of_two")


class RequestRecords:
    """Per-request records, columnar: arrays by field name, plus each request's token timestamps.

    `records[i]` is a dict for request i (with `token_times`); `records.arrays` the columns.
    """

    def __init__(self, arrays: dict[str, np.ndarray], token_time: np.ndarray, token_offsets: np.ndarray):
        self.arrays = arrays
        self.token_time = token_time
        self.token_offsets = token_offsets

    def __len__(self) -> int:
        return len(self.arrays["arrival"])

    def __getitem__(self, i: int) -> dict[str, Any]:
        i = int(i)
        out = {k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in self.arrays.items()}
        out["token_times"] = self.token_time[self.token_offsets[i]:self.token_offsets[i + 1]]
        return out

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __getattr__(self, name: str) -> np.ndarray:
        arrays = self.__dict__.get("arrays", {})
        if name in arrays:
            return arrays[name]
        raise AttributeError(name)


@dataclass
class ServingResult:
    metrics: dict[str, float]
    requests: RequestRecords
    iterations: dict[str, np.ndarray]
    memory_trace: list[np.ndarray]  # per replica: (T, 2) array of (time, blocks in use)
    plan: MemoryPlan
    config: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)

    def records(self) -> dict[str, Any]:
        """The decisions a `Solution` carries and the evaluator re-checks."""
        return {**self.requests.arrays, "token_time": self.requests.token_time,
                "token_offsets": self.requests.token_offsets, "iterations": self.iterations,
                "kv_area": self.stats["kv_area"], "tokens_processed": self.stats["tokens_processed"],
                "num_replicas": self.config["num_replicas"]}

    def plot(self, path, *, title: str | None = None):
        """Latency CDFs (TTFT, TBT, E2E) and KV blocks in use over time; returns the path."""
        from sysgym.envs.llm_serving.plots import plot_result

        return plot_result(self, path, title=title)


def collect(st: RequestState, replicas: list[Replica]) -> tuple[RequestRecords, dict[str, np.ndarray], dict]:
    """The per-request records, the iteration log and the run's totals of finished replicas (what
    `ServingResult.records()` joins, and what the envs' `decisions()` return)."""
    logs = [r.log.arrays() for r in replicas]
    iters = {k: np.concatenate([lg[k] for lg in logs]) for k in logs[0]}
    iters["replica"] = np.concatenate([np.full(len(lg["start"]), r.index) for r, lg in zip(replicas, logs)])
    arrays = {"arrival": st.arrival.copy(), "prompt": st.prompt, "output": st.output, "client": st.client.copy(),
              "first_scheduled": st.first_scheduled, "first_token": st.token_time[st.offsets[:-1]].copy(),
              "finish": st.finish, "num_preemptions": st.preemptions, "replica": st.replica}
    stats = {"kv_area": float(sum(r.kv_area for r in replicas)),
             "tokens_processed": int(sum(r.tokens_processed for r in replicas)),
             "num_iterations": int(sum(r.iterations for r in replicas))}
    return RequestRecords(arrays, st.token_time, st.offsets), iters, stats


def records_of(st: RequestState, replicas: list[Replica]) -> dict[str, Any]:
    """`ServingResult.records()` of replicas driven outside `simulate` (the envs)."""
    records, iters, stats = collect(st, replicas)
    return {**records.arrays, "token_time": records.token_time, "token_offsets": records.token_offsets,
            "iterations": iters, "kv_area": stats["kv_area"], "tokens_processed": stats["tokens_processed"],
            "num_replicas": len(replicas)}


def router_choice(router: str, replicas: list[Replica], i: int, rng: np.random.Generator) -> int:
    """The replica `router` sends request `i` to (the replicas advanced to its arrival)."""
    if router == "least_outstanding":
        return min(range(len(replicas)), key=lambda i: (replicas[i].outstanding(), i))
    if router == "jsq":
        return min(range(len(replicas)), key=lambda i: (replicas[i].num_waiting, replicas[i].outstanding(), i))
    if router == "power_of_two":
        a, b = rng.choice(len(replicas), size=2, replace=len(replicas) < 2)
        return int(a) if (replicas[a].outstanding(), a) <= (replicas[b].outstanding(), b) else int(b)
    return i % len(replicas)


def dispatch(replicas: list[Replica], arrival: np.ndarray, router: str, seed: int, routes=None) -> None:
    """Route requests 0..n-1 (arriving at `arrival`, non-decreasing) to `replicas` and run them to the end.
    `routes` fixes the routing; state-dependent routers advance every replica to each arrival first."""
    n, k = len(arrival), len(replicas)
    if routes is not None:
        for i in range(n):
            replicas[routes[i]].add(i)
    elif router == "round_robin" or k == 1:
        for i in range(n):
            replicas[i % k].add(i)
    else:
        rng = np.random.default_rng([int(seed), 0x524F55])
        for i in range(n):
            t = float(arrival[i])
            for r in replicas:
                r.run(until=t)
            for r in replicas:
                r.ingest()
            j = router_choice(router, replicas, i, rng)
            replicas[j].add(i)
            replicas[j].ingest()
    for r in replicas:
        r.run()


def build_replicas(trace: Trace, *, model: str, gpu: str, tp: int, pp: int, block_size: int,
                   max_tokens: int | None, memory_margin: float = 0.1, memory_semantics: str = "vllm",
                   num_blocks: int | None = None, oversize: str = "truncate", iteration_overhead_s: float = 0.0,
                   calibration=None, schedulers: list[Scheduler], max_num_seqs: int | None = None,
                   pipeline: str = "sequential", classes: tuple[type, type] = (Replica, PipelineReplica),
                   first_index: int = 0) -> tuple[RequestState, list[Replica], MemoryPlan, int]:
    """The replicas of one run (one per scheduler object, which each binds): memory plan, effective request
    lengths (truncated to `max_tokens`), latency model. Returns (request state, replicas, plan, truncated).
    With pp > 1, `pipeline="micro_batch"` builds `pipeline.PipelineReplica`s (up to pp batches in flight);
    ``"sequential"`` (the default here, and what `sysgym/LlmServing-v0` steps) runs one batch at a time.
    `classes` are the (plain, pipelined) replica classes, `first_index` the first replica's index."""
    spec = kernels.models.get(model)
    max_tokens = int(max_tokens or spec.max_seq_len)
    probe = schedulers[0]
    mnbt = probe.max_num_batched_tokens
    plan = plan_memory(spec, gpu, tp=tp, pp=pp, block_size=block_size, max_tokens=max_tokens,
                       memory_margin=memory_margin, semantics=memory_semantics,
                       max_num_batched_tokens=mnbt if mnbt and mnbt >= max_tokens else None)
    if num_blocks is not None:
        plan = replace(plan, num_blocks=int(num_blocks),
                       kv_cache_bytes=num_blocks * block_size * plan.kv_bytes_per_token)
    prompt, output, truncated = request_arrays(trace, max_tokens, oversize)
    need = -(-(prompt + output) // block_size)
    room = plan.num_blocks - int(probe.watermark * plan.num_blocks)
    if len(need) and need.max() > room:
        i = int(np.argmax(need))
        raise InvalidInstanceError(f"request {i} needs {int(need[i])} KV blocks ({int(prompt[i])} + {int(output[i])} "
                                   f"tokens) but a replica has {plan.num_blocks} blocks ({room} above the watermark)")
    st = RequestState(trace, prompt, output)
    budget = probe.max_num_batched_tokens or max(max_tokens, 4096)
    max_batch_tokens = budget + (max_num_seqs or probe.max_num_seqs or plan.max_batch_size)
    if pp > 1 and pipeline == "micro_batch":
        # stages price their share of a pp=1 iteration; sends and the overhead are the pipeline's own
        lat = BatchLatency(spec, gpu, tp=tp, pp=1, block_size=block_size, max_batch_tokens=max_batch_tokens,
                           calibration=calibration)
        sends = StageSends(spec, lat.gpu, tp, pp, lat.calibration)
        replicas = [classes[1](i, st, plan, lat, s, pp=pp, sends=sends, iteration_overhead_s=iteration_overhead_s,
                               max_num_seqs=max_num_seqs) for i, s in enumerate(schedulers, first_index)]
        return st, replicas, plan, truncated
    lat = BatchLatency(spec, gpu, tp=tp, pp=pp, block_size=block_size, max_batch_tokens=max_batch_tokens,
                       iteration_overhead_s=iteration_overhead_s, calibration=calibration)
    replicas = [classes[0](i, st, plan, lat, s, max_num_seqs=max_num_seqs)
                for i, s in enumerate(schedulers, first_index)]
    return st, replicas, plan, truncated


def simulate(requests, *, model: str = "llama-2-7b", gpu: str = "a100-80gb", scheduler: str | Scheduler = "vllm",
             tp: int = 1, pp: int = 1, num_replicas: int = 1, router: str = "round_robin", seed: int = 0,
             block_size: int = 16, max_tokens: int | None = None, memory_margin: float = 0.1,
             memory_semantics: str = "vllm", num_blocks: int | None = None, iteration_overhead_s: float = 0.0,
             oversize: str = "truncate", slo_ttft_s: float = DEFAULT_SLO_TTFT_S,
             slo_tpot_s: float = DEFAULT_SLO_TPOT_S, calibration=None, routes=None, pipeline: str = "micro_batch",
             **scheduler_params: Any) -> ServingResult:
    """Simulate serving `requests` (a `Trace`, request dicts, or an (N, 3) array) and score the run.

    `scheduler_params` go to the scheduler (`max_num_seqs`, `max_num_batched_tokens`, `watermark`,
    `preemption_mode`, `chunk_size`, ... see `sysgym.solvers.llm_serving.schedulers`). `max_tokens` (default:
    the model's context length) bounds prompt + output; longer requests are truncated as vidur does
    (`oversize="error"` refuses them). `num_blocks` overrides the planned KV blocks (small experiments).
    `routes` (optional, one replica index per request) fixes the routing (the routing env uses it).
    `pipeline` (pp > 1): ``"micro_batch"`` keeps up to pp batches in flight (`pipeline.PipelineReplica`, as
    vLLM's and Sarathi-Serve's PP engines); ``"sequential"`` runs one batch through all stages at a time.
    """
    trace: Trace = as_trace(requests)
    if router not in ROUTERS:
        raise UnknownNameError("router", router, ROUTERS)
    if pipeline not in PIPELINES:
        raise UnknownNameError("pipeline mode", pipeline, PIPELINES)
    if int(num_replicas) < 1:
        raise InvalidArgumentError(f"num_replicas must be >= 1, got {num_replicas}")
    if scheduler == "sjf" and scheduler_params.get("predictor") == "noisy":
        scheduler_params.setdefault("seed", seed)  # the prediction noise follows the run's seed
    probe = make_scheduler(scheduler, **scheduler_params)
    schedulers = [probe] + [probe.clone() for _ in range(int(num_replicas) - 1)]
    spec = kernels.models.get(model)
    st, replicas, plan, truncated = build_replicas(
        trace, model=model, gpu=gpu, tp=tp, pp=pp, block_size=block_size, max_tokens=max_tokens,
        memory_margin=memory_margin, memory_semantics=memory_semantics, num_blocks=num_blocks, oversize=oversize,
        iteration_overhead_s=iteration_overhead_s, calibration=calibration, schedulers=schedulers,
        pipeline=pipeline)
    n = len(trace)
    if routes is not None:
        routes = np.asarray(routes, np.int64)
        if len(routes) != n or (routes < 0).any() or (routes >= num_replicas).any():
            raise InvalidArgumentError(f"routes needs one replica index in [0, {num_replicas}) per request")
    dispatch(replicas, trace.arrival, router, seed, routes)
    unfinished = np.flatnonzero(np.isnan(st.finish))
    if len(unfinished):
        raise RuntimeError(f"simulation ended with {len(unfinished)} unfinished requests (first: {unfinished[0]})")
    records, iters, stats = collect(st, replicas)
    stats["num_truncated"] = truncated
    config = {"model": spec.name, "gpu": kernels.get_gpu(gpu).name, "scheduler": probe.name, "tp": int(tp),
              "pp": int(pp), "num_replicas": int(num_replicas), "router": router, "seed": int(seed),
              "block_size": int(block_size), "max_tokens": plan.max_tokens, "num_blocks": plan.num_blocks,
              "max_num_seqs": replicas[0].max_num_seqs, "token_budget": replicas[0].token_budget,
              "scheduler_params": probe.params(), **({"pipeline": pipeline} if pp > 1 else {})}
    result = ServingResult({}, records, iters, [np.asarray(r.memory_trace, float).reshape(-1, 2) for r in replicas],
                           plan, config, stats)
    result.metrics = compute_metrics(result.records(), slo_ttft_s=slo_ttft_s, slo_tpot_s=slo_tpot_s,
                                     model=spec.name, gpu=config["gpu"], num_gpus=tp * pp * int(num_replicas),
                                     num_blocks=plan.num_blocks)
    result.metrics["num_truncated"] = truncated
    result.metrics["num_iterations"] = stats["num_iterations"]
    return result
