"""Seeded power-capping instances: a window of an Azure LLM inference trace served by a row of GPU servers.

Sources:
* Requests: the packaged Azure LLM inference traces ("azure-conv-2023", "azure-code-2023"; Patel et al.,
  Splitwise, ISCA'24), read through `sysgym.datasets` (the columns the serving family's `load_trace` reads;
  families do not import each other). The seed picks where the window starts; inter-arrival times are scaled
  by one factor so the row receives `rate_per_server` x servers requests per second (the trace's burstiness
  kept, its level set). Requests arrive during the first `arrival_share` of the horizon (ASSUMPTION: 0.9, so
  requests in flight can finish before the horizon; what has not finished by then misses its SLO). Prompt +
  output are clipped to the model's context (output first to half of it).
* Routing: round robin over the servers (the serving family's default router).
* Budget: `budget_fraction` x nameplate (servers x tp x TDP). Default 1 / 1.3: POLCA deploys 30 % more servers
  in the same row power (Patel et al., ASPLOS'24, abstract and Sec. 6).
* Clock levels: fractions of the maximum SM clock; A100's boost clock is 1410 MHz (A100 whitepaper, Table 1), so
  1.0 / 0.9 / 0.8 / 0.7 / 0.6 are about 1410 / 1270 / 1130 / 990 / 850 MHz, all above the lowest application
  clock (210 MHz, `nvidia-smi -q -d SUPPORTED_CLOCKS` on A100). POLCA caps with frequency (not power) limits.
* SLOs: TTFT 2 s and TPOT 0.2 s, the serving family's defaults (`sysgym.envs.llm_serving.metrics`).
* Engine: at most 256 running requests (vLLM's `max_num_seqs` default) and 2048 batched tokens per iteration
  (chunked prefill; vLLM's default `max_num_batched_tokens` with chunked prefill on is 2048 in v0.6 for
  `max_model_len` <= 2048 and the model length otherwise; 2048 keeps prefill chunks in the range Sarathi-Serve
  runs), 90 % of GPU memory for weights + KV (vLLM's `gpu_memory_utilization` default 0.9).
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from sysgym import kernels
from sysgym.envs.power_cap.instance import PowerCapInstance
from sysgym.errors import InvalidArgumentError, UnknownNameError
from sysgym.generators import Generator
from sysgym.specs import format_spec

TRACES = ("azure-conv-2023", "azure-code-2023")
LEVELS = (1.0, 0.9, 0.8, 0.7, 0.6)
BUDGET_FRACTION = 1 / 1.3  # POLCA: 30 % more servers under the same power
SLO_TTFT_S, SLO_TPOT_S = 2.0, 0.2

PRESETS: dict[str, dict[str, Any]] = {
    # ASSUMPTION (load levels): 4.5 conv requests/s per server keeps llama-2-7b on one A100 just below saturation
    # in this model (uncapped: every request within its SLOs, GPUs busy ~97 % of the time, row power over the
    # 1/1.3 budget in most intervals: POLCA's regime); a 0.8 clock cap then costs a few % of SLO attainment and
    # 0.7 about 30 %. The code trace's prompts are longer (mean ~1.7k tokens against ~1.2k) and arrive in bursts,
    # so its rate is 1/s per server (uncapped: ~80 % SLO attainment, bursts at TDP).
    "tiny": {"num_servers": 4, "num_intervals": 20, "interval_s": 2.0, "rate_per_server": 4.5,
             "trace": "azure-conv-2023"},
    "small": {"num_servers": 8, "num_intervals": 60, "interval_s": 2.0, "rate_per_server": 4.5,
              "trace": "azure-conv-2023"},
    "code": {"num_servers": 8, "num_intervals": 60, "interval_s": 2.0, "rate_per_server": 1.0,
             "trace": "azure-code-2023"},
    "standard": {"num_servers": 12, "num_intervals": 120, "interval_s": 2.0, "rate_per_server": 4.5,
                 "trace": "azure-conv-2023"},
}


@dataclass(frozen=True)
class _Trace:
    arrival: np.ndarray
    prompt: np.ndarray
    output: np.ndarray


@lru_cache(maxsize=2)
def _trace(name: str) -> _Trace:
    """The packaged trace's columns (checksum-verified by `sysgym.datasets`), sorted by arrival; every request
    has at least one prompt and one output token (the first output token comes out of the prefill)."""
    from sysgym import datasets

    cols = datasets.load(name).read()
    order = np.argsort(cols["arrived_at"], kind="stable")
    return _Trace(np.asarray(cols["arrived_at"], float)[order],
                  np.maximum(1, np.asarray(cols["num_prefill_tokens"])[order].astype(np.int64)),
                  np.maximum(1, np.asarray(cols["num_decode_tokens"])[order].astype(np.int64)))


def generate_v0(*, seed: int = 0, preset: str | None = None, num_servers: int | None = None,
                num_intervals: int | None = None, interval_s: float | None = None,
                rate_per_server: float | None = None, trace: str | None = None, model: str = "llama-2-7b",
                gpu: str = "a100-80gb", tp: int = 1, budget_fraction: float = BUDGET_FRACTION,
                levels: tuple[float, ...] | list[float] = LEVELS, slo_ttft_s: float = SLO_TTFT_S,
                slo_tpot_s: float = SLO_TPOT_S, overbudget_weight: float = 1.0,
                dvfs_exponent: float = kernels.energy.DVFS_EXPONENT, max_num_seqs: int = 256,
                max_batched_tokens: int = 2048, kv_fraction: float = 0.9,
                arrival_share: float = 0.9) -> PowerCapInstance:
    """A row of LLM servers serving a window of an Azure LLM trace under an oversubscribed power budget.

    `preset` fills the row's size and load (`tiny` 4 servers / 40 s, `small` 8 / 120 s, `code` the same on the
    code trace, `standard` 12 / 240 s); explicit arguments override them. See the module doc for the sources.
    """
    explicit = {k: v for k, v in locals().items() if k in _DEFAULTS and k not in ("seed", "preset")
                and v is not None and _differs(v, _DEFAULTS[k])}
    base = dict(PRESETS[preset]) if preset is not None else {}
    p = {**base, **{k: v for k, v in explicit.items() if k in PRESETS["tiny"]}}
    missing = [k for k in PRESETS["tiny"] if k not in p]
    if missing:
        raise InvalidArgumentError(f"power_cap/custom needs {missing} (or a preset)")
    n_s, n_i, dt = int(p["num_servers"]), int(p["num_intervals"]), float(p["interval_s"])
    rate, trace_name = float(p["rate_per_server"]), str(p["trace"])
    if trace_name not in TRACES:
        raise UnknownNameError("power_cap trace", trace_name, TRACES)
    if n_s < 1 or n_i < 1 or not (dt > 0 and rate > 0 and 0 < arrival_share <= 1 and 0 < budget_fraction):
        raise InvalidArgumentError("need num_servers, num_intervals >= 1, interval_s, rate_per_server, "
                                   "budget_fraction > 0 and arrival_share in (0, 1]")
    tr = _trace(trace_name)
    rng = np.random.default_rng([int(seed), 0x504F57])  # this family's stream ("POW")
    window = n_i * dt * arrival_share
    want = rate * n_s
    # Enough trace requests for the window at the target rate, from a seeded start.
    trace_rate = len(tr.arrival) / max(float(tr.arrival[-1] - tr.arrival[0]), 1e-9)
    need = int(math.ceil(want * window * 1.5)) + 8
    if need >= len(tr.arrival):
        raise InvalidArgumentError(f"{trace_name} has {len(tr.arrival)} requests; this row needs about {need}")
    start = int(rng.integers(0, len(tr.arrival) - need))
    arr = tr.arrival[start:start + need] - tr.arrival[start]
    arr = arr * (trace_rate / want)  # time scaled: the trace's rate becomes the target
    keep = arr < window
    arr, prompt, output = arr[keep], tr.prompt[start:start + need][keep], tr.output[start:start + need][keep]
    ctx = kernels.models.get(model).max_seq_len
    output = np.minimum(output, ctx // 2)
    prompt = np.minimum(prompt, ctx - output)
    server_of = np.arange(len(arr)) % n_s
    spec_params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in explicit.items()}
    name = format_spec("power_cap", preset or "custom", seed, spec_params)
    gpu_tdp = kernels.get_gpu(gpu).tdp_w
    return PowerCapInstance(
        model=model, gpu=gpu, num_servers=n_s, tp=tp, arrival=np.round(arr, 6), prompt=prompt, output=output,
        server_of=server_of, interval_s=dt, num_intervals=n_i, budget_w=budget_fraction * n_s * tp * gpu_tdp,
        levels=tuple(levels), slo_ttft_s=slo_ttft_s, slo_tpot_s=slo_tpot_s, overbudget_weight=overbudget_weight,
        dvfs_exponent=dvfs_exponent, max_num_seqs=max_num_seqs, max_batched_tokens=max_batched_tokens,
        kv_fraction=kv_fraction, name=name,
        source={"trace": trace_name, "start_request": start, "time_scale": trace_rate / want,
                "budget_fraction": budget_fraction})


def _differs(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return [float(x) for x in a] != [float(x) for x in b]
    return a != b


_DEFAULTS = {k: p.default for k, p in inspect.signature(generate_v0).parameters.items()}
GENERATOR = Generator("power_cap", presets=PRESETS, versions={0: generate_v0}, default_preset="small")
generate = GENERATOR
