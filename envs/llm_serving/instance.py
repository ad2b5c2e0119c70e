"""The LLM-serving instance: a request trace plus the serving deployment it runs on, and its generator.

Generated instances use the seeded trace generator (`workloads.generate_trace`) whose length
distributions are fitted on the Azure LLM inference 2023 conversation trace (Splitwise, ISCA'24) and
whose arrivals are Poisson or Gamma (BurstGPT). Loaded instances wrap a trace file (`load(path)`).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sysgym.envs.llm_serving.metrics import DEFAULT_SLO_TPOT_S, DEFAULT_SLO_TTFT_S
from sysgym.envs.llm_serving.workloads import Trace, generate_trace, load_trace
from sysgym.errors import UnknownNameError
from sysgym.instances import format_spec


@dataclass(frozen=True, eq=False)
class ServingInstance:
    """A trace and a deployment. `name` is the replayable spec; `simulate_kwargs()` feeds `simulate`."""

    trace: Trace
    model: str = "llama-2-7b"
    gpu: str = "a100-80gb"
    tp: int = 1
    pp: int = 1
    num_replicas: int = 1
    router: str = "round_robin"
    block_size: int = 16
    max_tokens: int | None = None
    memory_semantics: str = "vllm"
    num_blocks: int | None = None  # override of the planned KV blocks per replica (small experiments)
    max_num_seqs: int | None = None  # batch cap every scheduler keeps (None: each scheduler's default)
    slo_ttft_s: float = DEFAULT_SLO_TTFT_S
    slo_tpot_s: float = DEFAULT_SLO_TPOT_S
    name: str = "llm_serving/custom"

    def simulate_kwargs(self) -> dict[str, Any]:
        return {"model": self.model, "gpu": self.gpu, "tp": self.tp, "pp": self.pp,
                "num_replicas": self.num_replicas, "router": self.router, "block_size": self.block_size,
                "max_tokens": self.max_tokens, "memory_semantics": self.memory_semantics,
                "num_blocks": self.num_blocks, "slo_ttft_s": self.slo_ttft_s, "slo_tpot_s": self.slo_tpot_s,
                **({"max_num_seqs": self.max_num_seqs} if self.max_num_seqs is not None else {})}

    @property
    def num_requests(self) -> int:
        return len(self.trace)

    def to_dict(self) -> dict[str, Any]:
        return {"trace": self.trace.to_dict(), **self.simulate_kwargs(), "name": self.name}

    def digest(self) -> str:
        body = {**self.simulate_kwargs(), "trace": self.trace.digest()}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]

    def with_(self, **changes) -> ServingInstance:
        return replace(self, **changes)


# Presets. Rates are chosen relative to one Llama-2-7B replica on an A100-80GB, which this model saturates
# at about 5 req/s of Azure-conv-like requests (the full conv trace, 5.5 req/s, overloads it).
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
_TRACE_KEYS = ("num_requests", "rate", "process", "cv", "lengths", "num_clients", "client_weights", "client_rates",
               "max_prompt", "max_output")
_DEPLOY_KEYS = ("model", "gpu", "tp", "pp", "num_replicas", "router", "block_size", "max_tokens",
                "memory_semantics", "num_blocks", "max_num_seqs", "slo_ttft_s", "slo_tpot_s")


def generate(*, seed: int = 0, preset: str | None = None, **params: Any) -> ServingInstance:
    """A seeded instance: `preset` fills defaults, keyword arguments override them (trace generator
    arguments of `generate_trace` and deployment fields of `ServingInstance`)."""
    merged: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise UnknownNameError("llm_serving preset", preset, PRESETS)
        merged.update(PRESETS[preset])
    merged.update(params)
    unknown = [k for k in merged if k not in _TRACE_KEYS + _DEPLOY_KEYS]
    if unknown:
        raise TypeError(f"unknown llm_serving generator parameter(s) {unknown}; known: "
                        f"{', '.join(_TRACE_KEYS + _DEPLOY_KEYS)}")
    trace_kw = {k: merged[k] for k in _TRACE_KEYS if k in merged}
    deploy = {k: merged[k] for k in _DEPLOY_KEYS if k in merged}
    trace = generate_trace(seed=seed, **trace_kw)
    name = format_spec("llm_serving", preset or "custom", seed, params)
    return ServingInstance(trace=trace, name=name, **deploy)


def load(path: str | Path, format: str = "azure", **deploy: Any) -> ServingInstance:  # noqa: A002
    """An instance replaying a trace file (Azure or BurstGPT format) on the given deployment."""
    trace = load_trace(path, format=format)
    return ServingInstance(trace=trace, name=f"llm_serving/file:{path}", **deploy)
