"""Batch latency of one serving iteration, priced by `sysgym.kernels` and cached per batch shape.

An iteration runs every transformer layer once over the batch's tokens (prefill chunks plus one token per
decoding request). Its time is

    num_layers x [linear/elementwise ops(T) + attention(batch) + 2 TP all-reduces of T x hidden fp16 values]
    + embedding(T) + (pp - 1) pipeline send/recv of T x hidden fp16 values + iteration_overhead

with T the batch's token count. Operator and collective times come from `kernels.predict_op_times` and
`kernels.predict_collective_time` (tabulated once for every T up to the largest batch, then looked up);
attention from the kernels' attention cost functions, the ones `kernels.predict_attention_time` sums: a prefill
chunk's attention is cached per (chunk, past) pair; decode attention is linear in the KV bytes the batch reads
(paged, whole blocks) once the batch size and the kernel's KV splits are fixed, so its per-KV-token cost is
cached per (batch size, KV blocks of the mean context) and fast-forwarded decode iterations are priced with
array arithmetic. `decompose_check()` verifies this against `predict_attention_time` (a test calls it).
Pipeline stages run one after the other inside an iteration (no cross-iteration micro-batching; a
conservative latency model for pp > 1).
"""
from __future__ import annotations

import math

import numpy as np

from sysgym import kernels
from sysgym.kernels.operators import (
    ATTN_TILE,
    DECODE_BLOCK_N,
    decode_num_splits,
    decode_round_factor,
    prefill_attention_parts,
)

FP16 = 2


class BatchLatency:
    """Seconds per iteration for one replica (`tp` x `pp` GPUs of `gpu` serving `model`)."""

    def __init__(self, model: str, gpu: str, *, tp: int = 1, pp: int = 1, block_size: int = 16,
                 max_batch_tokens: int = 8192, iteration_overhead_s: float = 0.0, calibration=None,
                 gpus_per_node: int = 8):
        self.spec = kernels.models.get(model)
        self.gpu = kernels.get_gpu(gpu)
        self.tp, self.pp, self.block_size = int(tp), int(pp), int(block_size)
        self.calibration = kernels.load_calibration(calibration)  # loaded once, passed to every kernels call
        self._pf_params = self.calibration.class_params("attn_prefill")
        self._dtype = self.calibration.dtype
        self._heads = self.spec.num_heads / self.tp
        self._kv_heads = max(1.0, self.spec.num_kv_heads / self.tp)
        self.cluster = kernels.Cluster(gpu=self.gpu, num_nodes=max(1, math.ceil(tp * pp / gpus_per_node)),
                                       gpus_per_node=gpus_per_node)
        self.layers = self.spec.num_layers
        self.overhead = float(iteration_overhead_s)
        self._base = np.zeros(0)
        self._extend(int(max_batch_tokens) + 1)
        self._prefill: dict[tuple[int, int], float] = {}
        self._prefill_lines: dict[tuple[int, int], tuple[float, ...]] = {}
        # Decode attention (one layer, seconds): overhead + KV tokens x per-token cost at full bandwidth x the
        # kernel's round factor (>= 1, a function of the CTA count: batch x KV heads x splits).
        dec = self.calibration.class_params("attn_decode")
        self._dec_params = dec
        self._kv_tok_bytes = 2.0 * self._kv_heads * self.spec.head_dim * kernels.dtype_bytes(self._dtype)
        self.decode_ovh = dec["overhead_us"] * 1e-6
        self.decode_coef = self._kv_tok_bytes / (self.gpu.memory_bw * dec["eta_memory"])  # a lower bound per token
        self._kv_heads_int = max(int(round(self._kv_heads)), 1)
        self._few_ctas = 0.8 * self.gpu.sm_count  # below this many CTAs the decode kernel splits the KV
        self._dec_coef: dict[tuple[int, int], float] = {}
        self.prefill_ovh = self._pf_params["overhead_us"] * 1e-6

    # -- kernels calls -------------------------------------------------------------------------------
    def _attn(self, prefill=(), decode=()) -> float:
        return kernels.predict_attention_time(self.gpu, self.spec, prefill_lens=list(prefill),
                                              decode_context_lens=list(decode), tp=self.tp,
                                              calibration=self.calibration, block_size=self.block_size) * 1e-3

    def _extend(self, n: int) -> None:
        """Tabulate the token-count-dependent part for T = 0..n-1."""
        t = np.arange(n, dtype=float)
        ops = kernels.predict_op_times(self.gpu, self.spec, t, tp=self.tp, calibration=self.calibration)
        emb = ops.pop("emb")
        per_layer = sum(ops.values())
        nbytes = t * self.spec.hidden_size * FP16
        comm = np.zeros(n)
        if self.tp > 1:
            comm += 2 * kernels.predict_collective_time("all_reduce", nbytes, self.tp, self.cluster,
                                                        calibration=self.calibration)
        base = self.layers * (per_layer + comm) + emb
        if self.pp > 1:
            p2p = kernels.predict_collective_time("send_recv", nbytes, 2, self.cluster, calibration=self.calibration)
            base = base + (self.pp - 1) * p2p
        base = base * 1e-3 + self.overhead
        base[0] = 0.0
        self._base = base
        self._base_list = base.tolist()  # the same floats, read per iteration without a numpy scalar

    def base(self, num_tokens: int) -> float:
        """Seconds of everything but attention for an iteration of `num_tokens` tokens."""
        if num_tokens >= len(self._base_list):
            self._extend(max(num_tokens + 1, 2 * len(self._base)))
        return self._base_list[num_tokens]

    def base_table(self, upto: int) -> np.ndarray:
        if upto >= len(self._base):
            self._extend(max(upto + 1, 2 * len(self._base)))
        return self._base

    def prefill_item(self, chunk: int, past: int) -> float:
        """Attention seconds (all layers, without the kernel's launch overhead) of one prefill chunk."""
        key = (int(chunk), int(past))
        v = self._prefill.get(key)
        if v is None:
            c, p = key
            # The kernels' cost (`prefill_attention_parts`, what `predict_attention_time` sums) is max(compute,
            # memory), each linear in the past once the chunk and the kernel's KV splits are fixed; the splits
            # depend on the keys' block count only when the chunk's CTAs are few. So the two lines are
            # evaluated once per (chunk, block bucket) and each (chunk, past) costs a few float operations.
            few = math.ceil(c / ATTN_TILE) * self._heads < 0.8 * self.gpu.sm_count
            nb = math.ceil((c + p) / DECODE_BLOCK_N) if few else 0
            lines = self._prefill_lines.get((c, nb))
            if lines is None:
                first = max(1, math.ceil(c / DECODE_BLOCK_N))  # the bucket of the chunk without past
                if nb == first:  # (a whole prompt's prefill): this bucket alone
                    lines = self._lines([c], [max((nb - 1) * DECODE_BLOCK_N + 1, c)], [nb * DECODE_BLOCK_N])[0]
                elif nb:
                    # a chunk with past context (chunked prefill): every block bucket of this chunk up to the
                    # model's context (or nb) at once, one numpy call instead of one per (chunk, bucket) met
                    # (~1,500 in a Sarathi replay of the Azure conv trace); each entry is element-wise
                    # arithmetic, so the values are those of the single-bucket call
                    nbs = np.arange(first, max(nb, math.ceil(self.spec.max_seq_len / DECODE_BLOCK_N)) + 1)
                    los = np.maximum((nbs - 1) * DECODE_BLOCK_N + 1, c)
                    for b, li in zip(nbs.tolist(), self._lines(np.full(len(nbs), c), los, nbs * DECODE_BLOCK_N)):
                        self._prefill_lines.setdefault((c, b), li)
                    lines = self._prefill_lines[(c, nb)]
                else:  # no split: tabulate every chunk size up to the batch budget at once (one numpy call)
                    top = max(c, len(self._base))
                    cs = np.arange(top, 0, -1)
                    cs = cs[np.ceil(cs / ATTN_TILE) * self._heads >= 0.8 * self.gpu.sm_count]
                    for ci, li in zip(cs.tolist(), self._lines(cs, cs, cs + 4096)):
                        self._prefill_lines[(ci, 0)] = li
                    lines = self._prefill_lines[(c, 0)]
                self._prefill_lines[(c, nb)] = lines
            a_c, b_c, a_m, b_m, p0 = lines
            v = max(a_c + b_c * (p - p0), a_m + b_m * (p - p0)) * self.layers
            self._prefill[key] = v
        return v

    def _lines(self, chunks, lo, hi) -> list[tuple[float, ...]]:
        """(compute at lo, its slope, memory at lo, its slope, lo - chunk) per chunk: the kernels' prefill parts
        evaluated at key counts lo and hi (inside one split bucket), as lines in the past context."""
        c = np.asarray(chunks, float)
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        comp, mem = prefill_attention_parts(self.gpu, np.r_[c, c], np.r_[lo, hi], self._heads, self._kv_heads,
                                            self.spec.head_dim, self._pf_params, kernels.dtype_bytes(self._dtype),
                                            self._dtype)
        n, span = len(c), np.maximum(hi - lo, 1.0)
        rows = zip(comp[:n], (comp[n:] - comp[:n]) / span, mem[:n], (mem[n:] - mem[:n]) / span, lo - c)
        return [tuple(float(x) for x in r) for r in rows]

    def _decode_coef_for(self, num_decodes: int, kv_tokens: float) -> float:
        """Seconds per KV token (one layer) of a decode batch of `num_decodes` requests reading `kv_tokens`."""
        ctas = num_decodes * self._kv_heads_int
        nb = 0 if ctas >= self._few_ctas else max(1, math.ceil(kv_tokens / (num_decodes * DECODE_BLOCK_N)))
        key = (num_decodes, nb)
        v = self._dec_coef.get(key)
        if v is None:
            splits = 1 if nb == 0 else decode_num_splits(ctas, self.gpu.sm_count, nb)
            v = self.decode_coef * float(decode_round_factor(self.gpu, self._dec_params, ctas, splits))
            self._dec_coef[key] = v
        return v

    def iteration(self, num_tokens: int, prefill_items=(), decode_kv_tokens: float = 0.0,
                  num_decodes: int = 0) -> float:
        """Seconds of one iteration. `decode_kv_tokens` is the sum over decoding requests of their
        context rounded up to whole blocks."""
        t = self.base(num_tokens)
        if prefill_items:
            attn, cached = 0, self._prefill
            for c, p in prefill_items:  # (a loop with the cache looked up here: called every iteration)
                v = cached.get((c, p))
                attn += self.prefill_item(c, p) if v is None else v
            t += attn + self.prefill_ovh * self.layers
        if num_decodes:
            coef = self._decode_coef_for(num_decodes, decode_kv_tokens)
            t += (self.decode_ovh + coef * decode_kv_tokens) * self.layers
        return t

    def decode_times(self, num_decodes: int, kv_tokens: np.ndarray) -> np.ndarray:
        """Seconds of pure-decode iterations with `num_decodes` requests and per-iteration KV token sums."""
        kv_tokens = np.asarray(kv_tokens, dtype=float)
        B = int(num_decodes)
        if B * self._kv_heads_int >= self._few_ctas or not len(kv_tokens):
            coef = self._decode_coef_for(B, float(kv_tokens[0]) if len(kv_tokens) else 0.0)
        else:
            # kv_tokens grows along a fast-forward: when its two ends share a split count, every entry does (the
            # ends in Python floats: two numpy reductions cost more than the arithmetic, same division either way)
            div = B * DECODE_BLOCK_N
            if max(math.ceil(float(kv_tokens[0]) / div), 1) == max(math.ceil(float(kv_tokens[-1]) / div), 1):
                coef = self._decode_coef_for(B, float(kv_tokens[0]))
            else:
                nb = np.maximum(np.ceil(kv_tokens / div), 1).astype(np.int64)
                coef = np.array([self._decode_coef_for(B, float(b) * B * DECODE_BLOCK_N) for b in nb])
        return self.base(B) + (self.decode_ovh + coef * kv_tokens) * self.layers

    def min_decode_time(self, num_decodes: int) -> float:
        return self.base(num_decodes) + self.decode_ovh * self.layers

    def decompose_check(self, prefill_items, decode_ctx) -> tuple[float, float]:
        """(kernels' attention time, this decomposition's) in seconds for one layer, for a test."""
        direct = self._attn(prefill=prefill_items, decode=decode_ctx)
        bs = self.block_size
        ours = 0.0
        if len(prefill_items):
            ours += sum(self.prefill_item(c, p) for c, p in prefill_items) / self.layers + self.prefill_ovh
        if len(decode_ctx):
            kv = float(np.sum(np.ceil(np.asarray(decode_ctx) / bs) * bs))
            ours += self.decode_ovh + self._decode_coef_for(len(decode_ctx), kv) * kv
        return direct, ours
