"""The parallel-plan generator: a `PlanInstance` from a preset (a published training set-up), with explicit
arguments overriding its fields.

Presets name published training set-ups:
* `tiny`: Llama-3-70B cut to 7 layers on 2 DGX A100 nodes with a 10 GiB budget per GPU: small enough to
  enumerate every layer-to-stage partition (tests compare DP and CP-SAT with it), and the odd layer count, the
  128k-vocabulary LM head and the budget make unequal stages and per-stage recomputation pay.
* `small`: Llama-2-7B on 2 DGX A100 nodes, sequence 4096, batch 128 (Llama 2 trained at 4k context).
* `medium`: Llama-2-70B on 8 DGX A100 nodes, sequence 4096, global batch 1024 (the issue's CLI example;
  Touvron et al. 2023 used 4M-token batches = 1024 x 4096).
* `gpt3`: GPT-3 175B on 1024 A100s, sequence 2048, batch 1536 (Narayanan et al. SC'21, Sec. 5.2 and Table 1's
  175B-class rows).
* `1t`: the 1T-parameter GPT of Table 1 on 3072 A100s (384 DGX nodes), batch 3072.
* `tight`: Llama-2-13B on one DGX A100 with a 40 GiB budget per GPU (memory-bound: recomputation and ZeRO
  matter).
* `long`: Llama-3-8B at 128K tokens per sequence (Llama 3.1's long-context training length) on 8 DGX A100
  nodes, 32 sequences (4M tokens) per batch, FlashAttention: context parallelism is in the plan space.
* `hetero`: Llama-2-70B on 8 DGX A100 nodes, half on 200 Gb/s InfiniBand, half on 100 Gb/s RoCE, Ethernet
  between the halves (kernels preset dgx-a100-ib-roce, the setting of Holmes, Yang et al. ICPP'24): placement
  of stages on node groups is in the plan space.
* `two_tier`: Llama-2-70B on two racks of 8 DGX A100 nodes behind an oversubscribed spine (dgx-a100-two-tier).
The generator is deterministic (the seed is recorded in the name for replay; nothing here is random).
"""
from __future__ import annotations

from typing import Any

from sysgym import kernels
from sysgym.envs.parallel_plan.instance import PlanInstance
from sysgym.errors import InvalidArgumentError, UnknownNameError
from sysgym.generators import Generator
from sysgym.specs import format_spec

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"model": "llama-3-70b", "num_layers": 7, "cluster": "dgx-a100", "nodes": 2, "seq_len": 4096,
             "global_batch": 32, "memory_limit_gib": 10.0},
    "small": {"model": "llama-2-7b", "cluster": "dgx-a100", "nodes": 2, "seq_len": 4096, "global_batch": 128},
    "medium": {"model": "llama-2-70b", "cluster": "dgx-a100", "nodes": 8, "seq_len": 4096, "global_batch": 1024},
    "gpt3": {"model": "gpt3-175b", "cluster": "dgx-a100", "nodes": 128, "seq_len": 2048, "global_batch": 1536},
    "1t": {"model": "gpt-1t", "cluster": "dgx-a100", "nodes": 384, "seq_len": 2048, "global_batch": 3072},
    "tight": {"model": "llama-2-13b", "cluster": "dgx-a100", "nodes": 1, "seq_len": 4096, "global_batch": 64,
              "memory_limit_gib": 40.0},
    "long": {"model": "llama-3-8b", "cluster": "dgx-a100", "nodes": 8, "seq_len": 131072, "global_batch": 32,
             "flash_attention": True},
    "hetero": {"model": "llama-2-70b", "cluster": "dgx-a100-ib-roce", "seq_len": 4096, "global_batch": 256},
    "two_tier": {"model": "llama-2-70b", "cluster": "dgx-a100-two-tier", "seq_len": 4096, "global_batch": 512},
}


def generate_v0(*, seed: int = 0, preset: str | None = None, model: str | None = None,
                num_layers: int | None = None, cluster: str | None = None, nodes: int | None = None,
                seq_len: int | None = None, global_batch: int | None = None, memory_limit_gib: float | None = None,
                flash_attention: bool | None = None) -> PlanInstance:
    """An instance from a preset, with explicit arguments overriding its fields."""
    params: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise UnknownNameError("parallel_plan preset", preset, PRESETS)
        params.update(PRESETS[preset])
    given = {"model": model, "num_layers": num_layers, "cluster": cluster, "nodes": nodes, "seq_len": seq_len,
             "global_batch": global_batch, "memory_limit_gib": memory_limit_gib, "flash_attention": flash_attention}
    params.update({k: v for k, v in given.items() if v is not None})
    missing = [k for k in ("model", "cluster", "seq_len", "global_batch") if k not in params]
    if missing:
        raise InvalidArgumentError(f"generate() needs {', '.join(missing)} (or a preset: {', '.join(PRESETS)})")
    spec = _known(kernels.models.get, "model", params["model"], kernels.models.list())
    if params.get("num_layers") is not None:
        spec = spec.replace(num_layers=int(params["num_layers"]), name=f"{spec.name}-{int(params['num_layers'])}l")
    overrides = {"num_nodes": int(params["nodes"])} if params.get("nodes") is not None else {}
    clus = _known(kernels.get_cluster, "cluster", params["cluster"], kernels.list_clusters())
    if overrides and clus.heterogeneous:
        raise InvalidArgumentError(f"cluster {clus.name!r} lists its node groups; it takes no `nodes` override")
    if overrides:
        clus = kernels.get_cluster(clus, **overrides)
    explicit = {k: v for k, v in given.items() if v is not None}
    name = format_spec("parallel_plan", preset or "custom", seed, explicit if preset else params)
    return PlanInstance(model=spec, cluster=clus, seq_len=params["seq_len"], global_batch=params["global_batch"],
                        memory_limit_gib=params.get("memory_limit_gib"),
                        flash_attention=bool(params.get("flash_attention", False)), name=name)


def _known(getter, kind: str, name, known: list[str]):
    try:
        return getter(name)
    except KeyError:
        raise UnknownNameError(kind, str(name), known) from None


# The family's generator: v0 is what every spec without a version suffix names.
GENERATOR = Generator("parallel_plan", presets=PRESETS, versions={0: generate_v0}, default_preset="tiny")
generate = GENERATOR
