"""LLM serving: a fast iteration-level simulator of paged-KV serving replicas, cluster routing, memory
planning and metrics; the literature's request schedulers (vLLM, Orca, Sarathi-Serve, Past-Future, VTC, SJF)
are the family's methods in `sysgym.solvers.llm_serving`, found by name through the registry.

Modules: `instance` (trace + deployment), `generator` (presets, `GENERATOR`), `traces` (the `Trace` model,
Azure/BurstGPT loaders, fitted trace generators), `memory` (KV planner), `latency` (batch latency from the
hardware model), `replica` (one replica's iteration loop and the scheduler protocol it calls), `simulator`
(`simulate`, routing, results), `metrics`, `evaluate` (the only scorer), `env` (`LlmServing-v0`,
`LlmRouting-v0`), `plots`.

Public API: `load_trace`, `simulate`, `plan_memory`, `VIDUR_CONFIG` (and `generate`, `load`, `generate_trace`, `Trace`,
`ServingResult`, `make_scheduler`).
"""
from sysgym.envs.llm_serving.generator import GENERATOR, PRESETS, generate
from sysgym.envs.llm_serving.instance import ServingInstance, load
from sysgym.envs.llm_serving.latency import BatchLatency
from sysgym.envs.llm_serving.memory import VIDUR_CONFIG, MemoryPlan, plan_memory
from sysgym.envs.llm_serving.replica import Scheduler, make_scheduler, scheduler_names
from sysgym.envs.llm_serving.simulator import ROUTERS, RequestRecords, ServingResult, simulate
from sysgym.envs.llm_serving.traces import Trace, fit_lengths, generate_trace, load_trace

__all__ = ["GENERATOR", "PRESETS", "ROUTERS", "VIDUR_CONFIG", "BatchLatency", "MemoryPlan", "RequestRecords",
           "Scheduler", "ServingInstance", "ServingResult", "Trace", "fit_lengths", "generate", "generate_trace",
           "load", "load_trace", "make_scheduler", "plan_memory", "scheduler_names", "simulate"]
