"""Operator cost models, vectorised over numpy arrays. All functions return seconds.

Every model is a roofline built from the GPU's published specs (peak FLOP/s, memory bandwidth, SM count,
L2 size) times a few efficiency parameters fitted per operator class (see calibration.py). Because the
parameters are efficiencies, not times, a calibration made on one GPU predicts another from its specs.
"""
from __future__ import annotations

import numpy as np

from .hardware import GPU

# Output tile of a tensor-core GEMM CTA: 128x128 on Ampere/Hopper CUTLASS/cuBLAS kernels
# (CUTLASS "Efficient GEMM" doc); used only to count how much work each SM gets.
GEMM_TILE = 128.0


def _roofline(compute_s, memory_s, sharpness):
    """Smooth max of the two roofline limits; sharpness -> inf gives max(), 1 gives the sum.

    Real kernels neither fully overlap loads with math nor serialise them, so the p-norm fits better.
    """
    p = float(sharpness)
    big = np.maximum(compute_s, memory_s)
    big = np.where(big > 0, big, 1.0)
    return big * ((compute_s / big) ** p + (memory_s / big) ** p) ** (1.0 / p)


def gemm_seconds(gpu: GPU, m, n, k, params: dict, dtype_bytes: float = 2.0, dtype: str = "bf16"):
    """C[m,n] = A[m,k] @ B[k,n].

    Efficiency depends on shape two ways: arithmetic intensity (the roofline) and how many output tiles
    each SM gets (`fill`: small GEMMs leave SMs idle), which uses the GPU's SM count.
    """
    m = np.asarray(m, dtype=float)
    flops = 2.0 * m * n * k
    waves = (m / GEMM_TILE) * (n / GEMM_TILE) / gpu.sm_count
    fill = np.maximum(waves / (waves + params["fill_waves"]), 1e-12)  # m = 0 gives 0 work, not 0/0
    compute = flops / (gpu.peak_flops(dtype) * params["eta_compute"] * fill)
    memory = (m * k + k * n + m * n) * dtype_bytes / (gpu.memory_bw * params["eta_memory"])
    return params["overhead_us"] * 1e-6 + _roofline(compute, memory, params["sharpness"])


def memory_bound_seconds(gpu: GPU, nbytes, params: dict):
    """A bandwidth-bound kernel moving `nbytes` (element-wise ops, norms, embedding gathers).

    Small transfers cannot keep enough loads in flight (`fill`); working sets that fit in L2 are served
    faster than HBM (`l2_gain`), which is why measured bandwidth peaks at a few MB and then falls.
    """
    nbytes = np.asarray(nbytes, dtype=float)
    fill = np.maximum(nbytes / (nbytes + params["fill_bytes"]), 1e-12)
    l2_bytes = max(gpu.l2_mb, 1e-3) * 1e6
    in_l2 = 1.0 / (1.0 + (nbytes / l2_bytes) ** 2)
    bw = gpu.memory_bw * params["eta_memory"] * fill * (1.0 + params["l2_gain"] * in_l2)
    return params["overhead_us"] * 1e-6 + nbytes / np.maximum(bw, 1e-30)


def prefill_attention_seconds(gpu: GPU, q_len, kv_len, num_heads, num_kv_heads, head_dim, params: dict,
                              dtype_bytes: float = 2.0, dtype: str = "bf16"):
    """FlashAttention-2 forward, causal: q_len new tokens attend to kv_len = past + q_len keys.

    FLOPs = 4 * heads * head_dim * q_len * (past + q_len / 2) (QK^T and PV, causal mask halves the new
    block; Dao 2023, FlashAttention-2 paper, Sec. 4.1 FLOP count). Bytes: Q, K, V read once, O written.
    """
    q = np.asarray(q_len, dtype=float)
    kv = np.asarray(kv_len, dtype=float)
    past = np.maximum(kv - q, 0.0)
    flops = 4.0 * num_heads * head_dim * q * (past + q / 2.0)
    nbytes = (2.0 * q * num_heads + 2.0 * kv * num_kv_heads) * head_dim * dtype_bytes
    blocks = np.ceil(q / GEMM_TILE) * num_heads / gpu.sm_count  # FA2 parallelises over q-blocks x heads
    fill = np.maximum(blocks / (blocks + params["fill_waves"]), 1e-12)
    compute = flops / (gpu.peak_flops(dtype) * params["eta_compute"] * fill)
    memory = nbytes / (gpu.memory_bw * params["eta_memory"])
    return _roofline(compute, memory, params["sharpness"])


def decode_attention_bytes(context_lens, num_kv_heads, head_dim, dtype_bytes: float = 2.0,
                           block_size: int = 16):
    """KV bytes one decode step reads: paged caches read whole blocks (vLLM PagedAttention, SOSP'23)."""
    ctx = np.asarray(context_lens, dtype=float)
    if block_size > 1:
        ctx = np.ceil(ctx / block_size) * block_size
    return 2.0 * ctx * num_kv_heads * head_dim * dtype_bytes


def decode_attention_seconds(gpu: GPU, total_kv_bytes, params: dict):
    """Memory-bound: a batched decode kernel streams every request's KV blocks once."""
    nbytes = np.asarray(total_kv_bytes, dtype=float)
    return nbytes / (gpu.memory_bw * params["eta_memory"])
