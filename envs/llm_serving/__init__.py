"""LLM serving: a fast iteration-level simulator of paged-KV serving replicas, the literature's request
schedulers (vLLM, Orca, Sarathi-Serve, Past-Future, VTC, SJF), cluster routing, memory planning, metrics.

Public API: `load_trace`, `simulate`, `plan_memory` (and `generate_trace`, `Trace`, `ServingResult`).
"""
from sysgym.envs.llm_serving.instance import PRESETS, ServingInstance, generate, load
from sysgym.envs.llm_serving.memory import MemoryPlan, plan_memory
from sysgym.envs.llm_serving.schedulers import SCHEDULERS, make_scheduler, peak_tokens
from sysgym.envs.llm_serving.serving import ROUTERS, RequestRecords, ServingResult, simulate
from sysgym.envs.llm_serving.workloads import Trace, fit_lengths, generate_trace, load_trace

__all__ = ["PRESETS", "ROUTERS", "SCHEDULERS", "MemoryPlan", "RequestRecords", "ServingInstance", "ServingResult",
           "Trace", "fit_lengths", "generate", "generate_trace", "load", "load_trace", "make_scheduler",
           "peak_tokens", "plan_memory", "simulate"]
