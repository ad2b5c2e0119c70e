"""The public prediction functions (milliseconds)."""
from __future__ import annotations

import numpy as np

from sysgym.errors import UnknownNameError

from . import models as _models
from .calibration import Calibration, load_calibration
from .collectives import collective_seconds
from .hardware import GPU, Cluster, get_gpu
from .layer import OP_CLASS, gemm_shapes, memory_op_bytes
from .memory import dtype_bytes
from .models import ModelSpec
from .operators import (
    decode_attention_bytes,
    decode_attention_seconds,
    gemm_seconds,
    memory_bound_seconds,
    prefill_attention_seconds,
)


def _check_tp(tp) -> int:
    if int(tp) != tp or tp < 1:
        raise ValueError(f"tp must be a positive integer, got {tp!r}")
    return int(tp)


def _tokens(num_tokens) -> np.ndarray:
    t = np.asarray(num_tokens, dtype=float)
    if np.any(~np.isfinite(t)) or np.any(t < 0):
        raise ValueError("num_tokens must be finite and >= 0")
    return t


def _out(x, scalar: bool):
    return float(x) if scalar else x


def predict_op_times(gpu: str | GPU, model: str | ModelSpec, num_tokens, tp: int = 1, *,
                     calibration: str | Calibration | None = None, dtype: str | None = None,
                     ops=None) -> dict[str, float | np.ndarray]:
    """Per-layer operator times (ms) for one transformer layer processing `num_tokens` tokens.

    `num_tokens` may be a scalar (floats back) or an array (arrays back). `dtype` defaults to the
    calibration's (fp16 for the shipped A100 fit).
    """
    gpu, spec, tp = get_gpu(gpu), _models.get(model), _check_tp(tp)
    cal = load_calibration(calibration)
    dtype = dtype or cal.dtype
    b = dtype_bytes(dtype)
    scalar = np.ndim(num_tokens) == 0
    t = _tokens(num_tokens)
    wanted = tuple(ops) if ops is not None else tuple(OP_CLASS)
    unknown = [op for op in wanted if op not in OP_CLASS]
    if unknown:
        raise UnknownNameError("operator", ", ".join(unknown), OP_CLASS)
    shapes = gemm_shapes(spec, tp)
    nbytes = memory_op_bytes(spec, t, tp, b)
    out = {}
    for op in wanted:
        params = cal.class_params(OP_CLASS[op])
        if op in shapes:
            n, k = shapes[op]
            sec = gemm_seconds(gpu, t, n, k, params, b, dtype)
        else:
            sec = memory_bound_seconds(gpu, nbytes[op], params)
        out[op] = _out(np.where(t > 0, sec * 1e3, 0.0), scalar)
    return out


# Operator class that prices prefill attention, per kind of kernel (predict_attention_time's `kernel`).
PREFILL_CLASS = {"serving": "attn_prefill", "training": "attn_train"}


def predict_attention_time(gpu: str | GPU, model: str | ModelSpec, *, prefill_lens=(),
                           decode_context_lens=(), tp: int = 1,
                           calibration: str | Calibration | None = None, dtype: str | None = None,
                           block_size: int = 16, kernel: str = "serving") -> float:
    """Attention time (ms) of one layer for a batch of prefills and decodes on one GPU.

    prefill_lens: ints (a whole prompt) or (chunk_len, past_len) pairs for chunked prefill.
    decode_context_lens: the context length each decoding request attends to.
    kernel: "serving" prices prefills with the `attn_prefill` class (fitted on a serving engine's paged
    FlashAttention, the shipped A100 file: vidur's vLLM profile); "training" with `attn_train`, the dense
    FlashAttention-2 forward of a training step (literature efficiencies unless a calibration fits them).
    """
    if kernel not in PREFILL_CLASS:
        raise UnknownNameError("attention kernel", kernel, PREFILL_CLASS)
    gpu, spec, tp = get_gpu(gpu), _models.get(model), _check_tp(tp)
    cal = load_calibration(calibration)
    dtype = dtype or cal.dtype
    b = dtype_bytes(dtype)
    heads = spec.num_heads / tp
    kv_heads = max(1.0, spec.num_kv_heads / tp)
    chunks, pasts = [], []
    for item in prefill_lens:
        chunk, past = (item if np.ndim(item) else (item, 0))
        chunks.append(chunk)
        pasts.append(past)
    chunks, pasts = np.asarray(chunks, dtype=float), np.asarray(pasts, dtype=float)
    ctx = np.asarray(list(decode_context_lens), dtype=float)
    if np.any(chunks < 0) or np.any(pasts < 0) or np.any(ctx < 0):
        raise ValueError("attention lengths must be >= 0")
    total = 0.0
    if chunks.size:
        p = cal.class_params(PREFILL_CLASS[kernel])
        sec = prefill_attention_seconds(gpu, chunks, chunks + pasts, heads, kv_heads, spec.head_dim, p,
                                        b, dtype)
        total += float(np.sum(sec)) + p["overhead_us"] * 1e-6
    if ctx.size:
        p = cal.class_params("attn_decode")
        kv = decode_attention_bytes(ctx, kv_heads, spec.head_dim, b, block_size)
        total += float(decode_attention_seconds(gpu, kv.sum(), p, ctx.size, kv_heads, spec.head_dim, b)) + \
            p["overhead_us"] * 1e-6
    return total * 1e3


def predict_collective_time(kind: str, size_bytes, num_workers: int, cluster: str | Cluster, *,
                            calibration: str | Calibration | None = None, algorithm: str = "auto"):
    """Collective time (ms); intra- vs inter-node follows from num_workers and gpus_per_node."""
    cal = load_calibration(calibration)
    params = cal.params.get("collective")
    sec = collective_seconds(kind, size_bytes, num_workers, cluster, params=params, algorithm=algorithm)
    return sec * 1e3
