"""Serving-engine knobs on the LLM-serving simulator (`sysgym.envs.llm_serving.simulate`).

The knobs are vLLM's engine arguments (vLLM `EngineArgs`): `max_num_batched_tokens`, `max_num_seqs`,
the chunked-prefill chunk size (Sarathi-Serve's token budget), `block_size`, `gpu_memory_utilization`
(the memory fraction; the simulator's `memory_margin = 1 - fraction`) and the scheduler. The objective is
SLO goodput (`slo_goodput_rps`: requests per second that meet both the TTFT and the TPOT SLO, DistServe).

A configuration the engine cannot run is a crash, as for PostgreSQL: too little memory for the weights and
one request's KV cache (vLLM fails at start-up with an out-of-memory error), or a non-chunking scheduler
whose `max_num_batched_tokens` is below the longest request (vLLM refuses to start: max_num_batched_tokens
must be >= max_model_len without chunked prefill). Tuners score a crash as the worst value seen so far.
The simulator is deterministic, so one measurement per configuration is exact.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from sysgym.errors import InfeasibleSolutionError, InvalidInstanceError, UnknownNameError
from sysgym.instances import format_spec

from .knobs import Knob, KnobSpace

FORMAT = "sysgym.knob_tuning.serving_instance/1"

# Defaults are vLLM's (EngineArgs, v0.4-0.6): max_num_seqs 256, gpu_memory_utilization 0.9, block_size 16,
# max_num_batched_tokens = max(max_model_len, 2048) without chunked prefill (4096 for Llama-2's context);
# chunk 512 is Sarathi-Serve's token budget (Agrawal et al., OSDI'24). Ranges span what vLLM accepts in
# practice: block sizes 8/16/32 (vLLM's CLI choices), memory fraction 0.1..0.98.
SCHEDULER_CHOICES = ("vllm", "orca", "sarathi", "sjf", "past_future")
SERVING_KNOBS = (
    Knob("max_num_batched_tokens", "integer", None, "engine", 4096, 256, 16384, log=True),
    Knob("max_num_seqs", "integer", None, "engine", 256, 4, 512, log=True),
    Knob("chunk_size", "integer", None, "engine", 512, 64, 4096, log=True),
    Knob("block_size", "enum", None, "engine", "16", choices=("8", "16", "32")),
    Knob("gpu_memory_utilization", "real", None, "engine", 0.9, 0.1, 0.98),
    Knob("scheduler", "enum", None, "engine", "vllm", choices=SCHEDULER_CHOICES),
)


def serving_space() -> KnobSpace:
    return KnobSpace("serving-engine", SERVING_KNOBS)


@dataclass(frozen=True)
class ServingKnobInstance:
    """An LLM-serving workload (an `llm_serving` preset + overrides + seed) whose engine knobs are tuned."""

    serving_preset: str = "overload"
    serving_params: dict[str, Any] = field(default_factory=dict)
    serving_seed: int = 0
    trials: int = 30
    name: str = "knob_tuning/serving-custom"

    def __post_init__(self) -> None:
        from sysgym.envs.llm_serving import PRESETS as SERVING_PRESETS

        if self.serving_preset not in SERVING_PRESETS:
            raise UnknownNameError("llm_serving preset", self.serving_preset, SERVING_PRESETS)
        if self.trials < 1:
            raise InvalidInstanceError(f"{self.name}: trials must be >= 1, got {self.trials}")

    def serving_instance(self):
        """The `llm_serving` instance (trace + deployment); deterministic in the seed."""
        cache = self.__dict__.get("_serving")
        if cache is None:
            from sysgym.envs.llm_serving import generate as serving_generate

            cache = serving_generate(seed=self.serving_seed, preset=self.serving_preset, **self.serving_params)
            object.__setattr__(self, "_serving", cache)
        return cache

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **{k: v for k, v in asdict(self).items()}}

    def digest(self) -> str:
        import hashlib

        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


SERVING_PRESETS: dict[str, dict[str, Any]] = {
    # 400 requests at 8 req/s on one Llama-2-7B / A100-80GB replica: overloaded, so the knobs matter.
    "serving": dict(serving_preset="overload", serving_params={"num_requests": 400}, trials=30),
    "serving-tiny": dict(serving_preset="overload", serving_params={"num_requests": 120}, trials=6),
}


def generate_serving(*, seed: int = 0, preset: str = "serving", **params: Any) -> ServingKnobInstance:
    fields = {"serving_preset", "serving_params", "trials"}
    unknown = sorted(set(params) - fields)
    if unknown:
        raise TypeError(f"knob_tuning {preset}: unknown parameter(s) {', '.join(unknown)}; known: "
                        f"{', '.join(sorted(fields))}")
    cfg = {**SERVING_PRESETS[preset], **params}
    return ServingKnobInstance(**cfg, serving_seed=int(seed), name=format_spec("knob_tuning", preset, seed, params))


def check_config(config: dict[str, Any]) -> dict[str, Any]:
    """Validate a serving configuration against the knob space; fills the defaults."""
    space = serving_space()
    space.check(config)
    full = {**space.defaults(), **config}
    out: dict[str, Any] = {}
    for k in space.knobs:
        v = full[k.name]
        if k.vartype == "enum":
            if str(v) not in k.choices:
                raise InfeasibleSolutionError("range", f"{k.name}: {v!r} is not allowed (allowed: "
                                                       f"{', '.join(k.choices)})")
            out[k.name] = str(v)
            continue
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise InfeasibleSolutionError("range", f"{k.name}: {v!r} is not a number") from None
        if k.vartype == "integer" and not x.is_integer():
            raise InfeasibleSolutionError("range", f"{k.name}: {v!r} is not a whole number")
        if not k.lo <= x <= k.hi:
            raise InfeasibleSolutionError("range", f"{k.name}: {v!r} is out of range: allowed {k.lo:g}..{k.hi:g}")
        out[k.name] = int(x) if k.vartype == "integer" else x
    return out


def simulate_kwargs(config: dict[str, Any]) -> dict[str, Any]:
    """`simulate` keyword arguments for a checked configuration."""
    kw: dict[str, Any] = {"scheduler": config["scheduler"], "max_num_seqs": config["max_num_seqs"],
                          "max_num_batched_tokens": config["max_num_batched_tokens"],
                          "block_size": int(config["block_size"]),
                          "memory_margin": round(1.0 - float(config["gpu_memory_utilization"]), 6)}
    if config["scheduler"] == "sarathi":
        kw["chunk_size"] = config["chunk_size"]
    return kw


def evaluate_serving(instance: ServingKnobInstance, config: dict[str, Any], *,
                     raise_on_infeasible: bool = True) -> dict[str, Any]:
    """Run the serving simulator with the engine configuration: `slo_goodput_rps` is the objective."""
    from sysgym.envs.llm_serving import simulate

    try:
        checked = check_config(config)
    except (InfeasibleSolutionError, UnknownNameError) as exc:
        err = exc if isinstance(exc, InfeasibleSolutionError) else InfeasibleSolutionError("knob space", str(exc))
        if raise_on_infeasible:
            raise err from None
        return {"feasible": False, "violation": str(err), "objective": None, "crashed": False}
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
    metrics["objective"] = metrics["slo_goodput_rps"]
    metrics["objective_runs"] = [metrics["objective"]]
    metrics["num_blocks"] = result.plan.num_blocks
    return metrics


def _crash(metrics: dict[str, Any], reason: str) -> dict[str, Any]:
    metrics.update(crashed=True, error=reason, objective=0.0, slo_goodput_rps=0.0, objective_runs=[])
    return metrics
