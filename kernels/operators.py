"""Operator cost models, vectorised over numpy arrays. All functions return seconds.

Every model is a roofline built from the GPU's published specs (peak FLOP/s, memory bandwidth, SM count,
L2 size) times a few efficiency parameters fitted per operator class (see calibration.py). Because the
parameters are efficiencies, not times, a calibration made on one GPU predicts another from its specs.
"""
from __future__ import annotations

import math

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


# Attention (FlashAttention-2 forward, prefill and split-KV decode). Both cost functions are built from the
# GPU's peak FLOP/s, HBM bandwidth and SM count times fitted efficiencies, so a fit made on one GPU predicts
# another from its catalogue specs (kernels/data/gpus.yaml); only `overhead_us` (kernel launch and the
# fixed prologue) is an absolute time, taken as the same on every GPU. Both return seconds WITHOUT the launch
# overhead: a batch pays `overhead_us` once per kernel, not once per request (see predict_attention_time).

# Q/K tile of FlashAttention-2's forward kernel: the measured A100 prefill times step every 64 new tokens
# (../shared/data/operator_profiles/a100/attention: chunks 160 and 192 cost the same, 224 and 256 too).
ATTN_TILE = 64.0
# K/V tokens per block of the split-KV decode kernel for head_dim <= 128 (flash-attention
# csrc/flash_attn/flash_api.cpp, `block_n = head_size <= 64 ? 256 : (head_size <= 128 ? 128 : 64)`).
DECODE_BLOCK_N = 128
# CTAs of the split-KV decode kernel resident per SM: its K and V tiles (2 x 128 x 128 fp16 = 64 KB) plus Q
# use ~80 KB of an A100/H100 SM's 164/228 KB shared memory, so two fit. The A100 profile shows it: decode time
# doubles where batch x kv_heads passes 2 x 108 (batch 54 -> 56), not where it passes 108.
DECODE_CTAS_PER_SM = 2


def prefill_attention_seconds(gpu: GPU, q_len, kv_len, num_heads, num_kv_heads, head_dim, params: dict,
                              dtype_bytes: float = 2.0, dtype: str = "bf16"):
    """FlashAttention-2 forward, causal: `q_len` new tokens (a chunk) attend to `kv_len` = past + q_len keys.
    Time = max(compute, memory) of `prefill_attention_parts`."""
    return np.maximum(*prefill_attention_parts(gpu, q_len, kv_len, num_heads, num_kv_heads, head_dim, params,
                                                dtype_bytes, dtype))


def prefill_attention_parts(gpu: GPU, q_len, kv_len, num_heads, num_kv_heads, head_dim, params: dict,
                            dtype_bytes: float = 2.0, dtype: str = "bf16"):
    """(compute, memory) seconds of a causal prefill chunk; both linear in the past context once the chunk and
    the kernel's KV splits are fixed (BatchLatency caches them so).

    Work, in Q tiles of ATTN_TILE rows: tile i of the chunk attends to the past plus the chunk up to its own
    end, so FLOPs = 4 * heads * head_dim * T * sum_i (past + (i + 1) T) -- linear in the past context,
    quadratic in the chunk (Dao 2023, FlashAttention-2, Sec. 4.1 FLOP count). The chunk's own causal block runs
    `causal_factor` times slower per FLOP than the past part, and each Q tile's masked diagonal tile costs
    `diag_tiles` full tiles (the measured A100 kernel reaches ~230 TFLOP/s on past keys, ~60 on a fresh chunk's
    causal block). Small problems cannot fill the SMs: `fill = waves / (waves + fill_waves)` with waves =
    CTAs (Q tiles x heads, times the KV splits flash-attention's heuristic adds when they are few) / SM count.
    Memory: every Q tile streams the K and V of its keys once per KV head (GQA heads share them through L2), at
    the decode kernel's streaming efficiency `eta_memory`.
    """
    q, kv = np.broadcast_arrays(np.asarray(q_len, dtype=float), np.asarray(kv_len, dtype=float))
    past = np.maximum(kv - q, 0.0)
    t = ATTN_TILE
    nq = np.ceil(q / t)
    per_head = 4.0 * head_dim * t  # FLOPs per (Q tile, key)
    past_flops = per_head * num_heads * nq * past
    chunk_flops = per_head * num_heads * t * nq * (nq + 1) / 2.0
    ctas = nq * num_heads
    splits = np.ones_like(ctas)
    few = (ctas > 0) & (ctas < 0.8 * gpu.sm_count)
    for c in np.unique(ctas[few]):
        sel = ctas == c
        splits[sel] = decode_num_splits(int(c), gpu.sm_count, np.ceil(kv[sel] / DECODE_BLOCK_N))
    waves = ctas * splits / gpu.sm_count
    fill = np.maximum(waves / (waves + params["fill_waves"]), 1e-12)  # q = 0 gives 0 work, not 0/0
    diag_flops = per_head * t * num_heads * nq  # one masked diagonal tile per Q tile and head
    compute = (past_flops + params["causal_factor"] * chunk_flops + params["diag_tiles"] * diag_flops) / (
        gpu.peak_flops(dtype) * params["eta_compute"] * fill)
    kv_reads = 2.0 * num_kv_heads * head_dim * dtype_bytes * (nq * past + t * nq * (nq + 1) / 2.0)
    q_o = 2.0 * q * num_heads * head_dim * dtype_bytes
    memory = (kv_reads + q_o) / (gpu.memory_bw * params["eta_memory"])
    return compute, memory


def decode_attention_bytes(context_lens, num_kv_heads, head_dim, dtype_bytes: float = 2.0,
                           block_size: int = 16):
    """KV bytes one decode step reads: paged caches read whole blocks (vLLM PagedAttention, SOSP'23)."""
    ctx = np.asarray(context_lens, dtype=float)
    if block_size > 1:
        ctx = np.ceil(ctx / block_size) * block_size
    return 2.0 * ctx * num_kv_heads * head_dim * dtype_bytes


def _num_splits_one(ctas: int, num_sms: int, n_blocks: int, max_splits: int = 128) -> int:
    """flash-attention's `num_splits_heuristic` (csrc/flash_attn/flash_api.cpp, v2.x), verbatim in Python:
    no split when the CTAs almost fill the SMs; else the fewest splits whose wave efficiency is within 85 %
    of the best."""
    if ctas >= 0.8 * num_sms:
        return 1
    max_splits = min(max_splits, num_sms, n_blocks)
    eff = []
    for s in range(1, max_splits + 1):
        eligible = s == 1 or -(-n_blocks // s) != -(-n_blocks // (s - 1))
        waves = ctas * s / num_sms
        eff.append(waves / math.ceil(waves) if eligible else 0.0)
    best = max(eff, default=0.0)
    for s, e in enumerate(eff, start=1):
        if e > 0 and e >= 0.85 * best:
            return s
    return 1


_SPLITS: dict[tuple[int, int, int], int] = {}


def decode_num_splits(ctas: int, num_sms: int, n_blocks) -> np.ndarray:
    """Splits of the KV sequence per (request, KV head) CTA, for an array of KV-block counts."""
    nb = np.maximum(np.asarray(n_blocks, dtype=np.int64), 1)
    if ctas >= 0.8 * num_sms:
        return np.ones(nb.shape)
    uniq, inv = np.unique(nb, return_inverse=True)
    out = np.empty(len(uniq))
    for i, b in enumerate(uniq.tolist()):
        key = (int(ctas), int(num_sms), b)
        if key not in _SPLITS:
            _SPLITS[key] = _num_splits_one(*key)
        out[i] = _SPLITS[key]
    return out[inv].reshape(nb.shape)


def decode_attention_seconds(gpu: GPU, total_kv_bytes, params: dict, num_seqs=1, num_kv_heads: float = 1.0,
                             head_dim: int = 128, dtype_bytes: float = 2.0):
    """Split-KV decode (one query token per request), memory-bound: `num_seqs` requests whose KV caches hold
    `total_kv_bytes` in all (vectorised over total_kv_bytes; the mean context sets the splits).

    One CTA per (request, KV head, split) streams its share X of the KV bytes; DECODE_CTAS_PER_SM run per SM.
    Full rounds of CTAs stream at `eta_memory` x HBM bandwidth; the last, partial round of n CTAs takes as long
    as max(n, slots / sm_share) CTAs would (a lone CTA cannot pull more than `sm_share` times its fair share
    of bandwidth). Splits follow flash-attention's heuristic on the GPU's SM count.
    """
    nbytes = np.asarray(total_kv_bytes, dtype=float)
    seqs = max(int(num_seqs), 1)
    ctas = seqs * max(int(round(num_kv_heads)), 1)
    ctx = nbytes / (seqs * 2.0 * num_kv_heads * head_dim * dtype_bytes)  # mean tokens per request
    splits = decode_num_splits(ctas, gpu.sm_count, np.ceil(ctx / DECODE_BLOCK_N))
    return nbytes * decode_round_factor(gpu, params, ctas, splits) / (gpu.memory_bw * params["eta_memory"])


def decode_round_factor(gpu: GPU, params: dict, ctas: int, splits) -> np.ndarray:
    """Time of the decode kernel's rounds of CTAs over the time at full bandwidth (>= 1; see
    decode_attention_seconds). Depends only on the CTA count, so a batch's time is linear in its KV bytes."""
    units = ctas * np.asarray(splits, dtype=float)
    slots = DECODE_CTAS_PER_SM * gpu.sm_count
    full = np.floor(units / slots)
    tail = units - full * slots
    equiv = full * slots + np.where(tail > 0, np.maximum(tail, slots / params["sm_share"]), 0.0)
    return equiv / units
