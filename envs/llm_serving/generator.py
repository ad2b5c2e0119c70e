"""Seeded LLM-serving instances: a synthetic trace (`traces.generate_trace`: lengths fitted on the Azure LLM
inference 2023 traces, Poisson or Gamma arrivals as BurstGPT fits them) on a deployment.

Presets are chosen relative to one Llama-2-7B replica on an A100-80GB, which this model saturates at about
5 req/s of Azure-conv-like requests (the full conv trace, 5.5 req/s, overloads it).
"""
from __future__ import annotations

from typing import Any

from sysgym.envs.llm_serving.instance import DEPLOY_FIELDS, ServingInstance
from sysgym.envs.llm_serving.traces import generate_trace
from sysgym.errors import InvalidArgumentError, UnknownNameError
from sysgym.generators import Generator
from sysgym.specs import format_spec

PRESETS: dict[str, dict[str, Any]] = {
    # 20 short requests, a batch cap of 4 and a small KV cache: contention the CP-SAT bound can model.
    "tiny": {"num_requests": 20, "rate": 40.0, "max_prompt": 32, "max_output": 32, "num_blocks": 64,
             "max_tokens": 128, "max_num_seqs": 4},
    "small": {"num_requests": 300, "rate": 3.0},
    "medium": {"num_requests": 2000, "rate": 4.0},
    "overload": {"num_requests": 1000, "rate": 8.0},
    "bursty": {"num_requests": 1000, "rate": 3.0, "process": "gamma", "cv": 3.0},
    "multi_tenant": {"num_requests": 800, "num_clients": 4, "client_rates": [4.0, 1.0, 0.5, 0.5]},
    "code": {"num_requests": 1000, "rate": 2.6, "lengths": "azure_code", "process": "gamma", "cv": 13.0},
    "cluster": {"num_requests": 2000, "rate": 12.0, "num_replicas": 4, "router": "least_outstanding"},
}
TRACE_KEYS = ("num_requests", "rate", "process", "cv", "lengths", "num_clients", "client_weights", "client_rates",
              "max_prompt", "max_output")


def generate_v0(*, seed: int = 0, preset: str | None = None, **params: Any) -> ServingInstance:
    """A seeded instance: `preset` fills defaults, keyword arguments override them (trace generator
    arguments of `generate_trace` and deployment fields of `ServingInstance`)."""
    merged: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise UnknownNameError("llm_serving preset", preset, PRESETS)
        merged.update(PRESETS[preset])
    merged.update(params)
    unknown = [k for k in merged if k not in TRACE_KEYS + DEPLOY_FIELDS]
    if unknown:
        raise InvalidArgumentError(f"unknown llm_serving generator parameter(s) {unknown}; known: "
                                   f"{', '.join(TRACE_KEYS + DEPLOY_FIELDS)}")
    trace_kw = {k: merged[k] for k in TRACE_KEYS if k in merged}
    deploy = {k: merged[k] for k in DEPLOY_FIELDS if k in merged}
    trace = generate_trace(seed=seed, **trace_kw)
    name = format_spec("llm_serving", preset or "custom", seed, params)
    return ServingInstance(trace=trace, name=name, **deploy)


# The family's generator: v0 is what every spec without a version suffix names.
GENERATOR = Generator("llm_serving", presets=PRESETS, versions={0: generate_v0}, default_preset="small")
generate = GENERATOR
