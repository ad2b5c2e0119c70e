"""The serving engine's knobs: vLLM's engine arguments (vLLM `EngineArgs`) as a knob space.

`max_num_batched_tokens`, `max_num_seqs`, the chunked-prefill chunk size (Sarathi-Serve's token budget),
`block_size`, `gpu_memory_utilization` (the memory fraction; the simulator's `memory_margin = 1 - fraction`)
and the scheduler.
"""
from __future__ import annotations

from typing import Any

from sysgym.envs.knob_space import Knob, KnobSpace
from sysgym.errors import InfeasibleSolutionError

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
