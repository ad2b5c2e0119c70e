"""The Megatron-style training cost model: time and memory of a `TrainingPlan` (the family's only scorer).

Every GPU cost comes from `sysgym.kernels` (operator roofline models fitted on measured A100 profiles,
alpha-beta NCCL collectives on the cluster's links). This module only composes them the way Megatron-LM
executes a training iteration:

* Per layer and micro-batch: forward = the kernels' GEMM, attention and element-wise operator times;
  backward = 2 x forward (Narayanan et al. SC'21, Sec. 5.1: "the backward pass is twice as expensive");
  full recomputation adds one forward, selective recomputation adds the attention core's forward
  (Korthikanti et al. 2022, Sec. 4.2).
* Tensor parallelism: 2 all-reduces of the layer's activations in forward and 2 in backward
  (Shoeybi et al. 2019, Fig. 4); with sequence parallelism each becomes an all-gather plus a
  reduce-scatter of the same volume (Korthikanti et al. 2022, Sec. 4.2.2). Not overlapped (Megatron 2021).
* Pipeline: stage `i` needs tau_i per micro-batch; 1F1B takes (m - 1) max tau + sum tau for m micro-batches,
  which is (m + p - 1) tau for equal stages, i.e. the (p - 1)/m bubble; interleaving with v chunks per GPU
  shrinks the bubble to (p - 1)/(m v) (Narayanan et al. SC'21, Sec. 2.2) at v times the point-to-point
  messages. Messages are split over the tensor-parallel ranks (scatter/gather optimisation, Sec. 4.1).
* Data parallelism: after the pipeline flush every stage all-reduces its fp32 gradients (Megatron's DDP
  main_grad buffers), or reduce-scatters them and all-gathers fp16 parameters with the distributed
  optimizer / ZeRO-1/2; ZeRO-3 also all-gathers parameters for every micro-batch's forward and backward,
  overlapped with compute (DeepSpeed prefetching). Then the Adam step streams the (sharded) optimizer state.
  Tied embeddings add an all-reduce of the embedding gradient between the first and last stage.
* Memory: mixed-precision Adam keeps 2 (fp16 weights) + 4 (fp32 gradients) + 12 (fp32 master weights,
  momentum, variance) = 18 bytes per parameter (Megatron-LM docs, "Distributed Optimizer"); the distributed
  optimizer / ZeRO-1 shards the 12, ZeRO-2 also the 4, ZeRO-3 also the 2 (Rajbhandari et al. SC'20).
  Activations per layer follow Korthikanti et al. (2022), Table 2 (generalised to gated MLPs and grouped-query
  attention); under 1F1B stage i holds p - i micro-batches, the first stage p (1 + (p - 1)/(p v)) with
  interleaving (Korthikanti et al., Sec. 4.2.3 / Megatron's warm-up count).

Two constants are fitted (data/constants.json): `compute_scale` (GPU time of training kernels relative to
the kernels' operator fit, made on inference profiles) and `network_scale` (collectives that cross nodes
relative to the kernels' alpha-beta fit, whose inter-node terms come from few measurements), on Table 1
rows 1.7B, 18.4B and 145.6B of Narayanan et al. only.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from sysgym import kernels
from sysgym.envs.parallel_plan.plan import TrainingPlan, legality
from sysgym.kernels.calibration import load_calibration
from sysgym.kernels.collectives import collective_seconds
from sysgym.kernels.hardware import Cluster
from sysgym.kernels.memory import dtype_bytes
from sysgym.kernels.operators import gemm_seconds, memory_bound_seconds

GIB = 2.0 ** 30
# Bytes per parameter of mixed-precision Adam (Megatron-LM docs "Distributed Optimizer", table of bytes per
# parameter: fp16/bf16 param 2, fp32 grad 4, fp32 main param + Adam m + v = 12; 18 in all).
PARAM_BYTES, GRAD_BYTES, OPTIMIZER_BYTES = 2.0, 4.0, 12.0
# Bytes the Adam step moves per (local) parameter: reads grad, master, m, v (4 x 4) and writes master, m, v
# (3 x 4) and the fp16 copy (2) -- apex FusedAdam / Megatron's multi-tensor apply.
ADAM_STEP_BYTES = 30.0
# Bytes per logit element the vocab-parallel cross-entropy streams: max, sum-exp and normalise passes over
# fp32 logits (Megatron-LM `vocab_parallel_cross_entropy`) -> 3 x 4.
CROSS_ENTROPY_BYTES = 12.0
# Bytes per attention-score element of the unfused (pre-FlashAttention) attention core: fused scale-mask-
# softmax reads and writes fp16 (4), dropout reads and writes fp16 and writes a 1-byte mask (5).
UNFUSED_SOFTMAX_BYTES = 9.0
_COMPUTE_CACHE: dict[tuple, tuple[float, float, float, float]] = {}
RECOMPUTE_CODE = {"none": 0, "selective": 1, "full": 2}


@dataclass(frozen=True)
class CostConstants:
    compute_scale: float = 1.0
    network_scale: float = 1.0
    source: str = "unfitted defaults"
    fit: dict = field(default_factory=dict, compare=False, hash=False)


@lru_cache(maxsize=1)
def default_constants() -> CostConstants:
    """The shipped fit (data/constants.json, written by `python -m sysgym.envs.parallel_plan.calibration`)."""
    try:
        text = resources.files(__package__).joinpath("data", "constants.json").read_text(encoding="utf-8")
    except FileNotFoundError:
        return CostConstants()
    data = json.loads(text)
    return CostConstants(compute_scale=float(data["compute_scale"]), network_scale=float(data["network_scale"]),
                         source=data.get("source", ""), fit=data)


@dataclass(frozen=True)
class MemoryBreakdown:
    """Per-GPU memory in GiB of the most loaded pipeline stage (`stage`)."""

    parameters: float
    gradients: float
    optimizer: float
    activations: float
    total: float
    stage: int = 0

    def to_dict(self) -> dict[str, float]:
        return {"parameters": self.parameters, "gradients": self.gradients, "optimizer": self.optimizer,
                "activations": self.activations, "total": self.total, "stage": self.stage}


@dataclass(frozen=True)
class TrainingEstimate:
    plan: TrainingPlan
    iteration_time_s: float
    tflops_per_gpu: float
    mfu: float
    memory_gib: MemoryBreakdown
    feasible: bool
    reason: str | None = None
    rule: str | None = None  # the broken rule ("memory" when only the memory limit is exceeded)
    num_microbatches: int = 0
    memory_limit_gib: float = 0.0
    time_breakdown_s: dict[str, float] = field(default_factory=dict)
    stage_memory_gib: tuple[float, ...] = ()

    @property
    def legal(self) -> bool:
        return self.rule in (None, "memory")

    def to_dict(self) -> dict[str, Any]:
        return {"plan": self.plan.to_dict(), "iteration_time_s": self.iteration_time_s,
                "tflops_per_gpu": self.tflops_per_gpu, "mfu": self.mfu, "memory_gib": self.memory_gib.to_dict(),
                "feasible": self.feasible, "reason": self.reason, "rule": self.rule,
                "num_microbatches": self.num_microbatches, "memory_limit_gib": self.memory_limit_gib,
                "time_breakdown_s": dict(self.time_breakdown_s)}


def _as_array(x) -> np.ndarray:
    return np.asarray(x, dtype=float)


class CostModel:
    """Prices plans of one (model, cluster, seq_len). Vectorised: every `*_terms` method takes numpy arrays.

    Per-layer operator times depend only on (tp, micro_batch, sequence_parallel); they are computed once per
    distinct triple with `sysgym.kernels` and cached, so pricing thousands of plans costs numpy arithmetic.
    """

    def __init__(self, model, cluster, seq_len: int, *, flash_attention: bool = False,
                 constants: CostConstants | None = None, calibration=None):
        self.spec = kernels.models.get(model)
        self.cluster: Cluster = kernels.get_cluster(cluster)
        self.gpu = self.cluster.gpu
        if int(seq_len) != seq_len or seq_len < 1:
            raise ValueError(f"seq_len must be a positive integer, got {seq_len!r}")
        self.seq_len = int(seq_len)
        self.flash_attention = bool(flash_attention)
        self.constants = constants or default_constants()
        self.cal = load_calibration(calibration)
        self.dtype = self.cal.dtype
        self.act_bytes = float(dtype_bytes(self.dtype))
        self.coll_params = self.cal.params.get("collective")
        self.peak_flops = self.gpu.peak_flops(self.dtype)
        self._layer_cache: dict[tuple[int, int, bool], tuple[float, ...]] = {}
        self._views: dict[tuple[int, int], Cluster] = {}
        spec, s = self.spec, self.seq_len
        self.layer_params = float(spec.layer_params())
        self.tied = bool(spec.learned_pos_emb)  # GPT-style models tie the LM head (kernels.models convention)
        self.vocab_params = float(spec.vocab_size * spec.hidden_size)
        self.pos_params = float(spec.max_seq_len * spec.hidden_size) if spec.learned_pos_emb else 0.0
        self.final_norm_params = float(spec.hidden_size * (2 if spec.bias else 1))
        h = spec.hidden_size
        mlp = spec.mlp_params() * (spec.top_k if spec.is_moe else 1)
        # Forward FLOPs per sequence: the matmuls (2 per weight per token) and attention scores and values
        # counted over the full s x s matrix, as Narayanan et al. SC'21 Eq. 3 counts them.
        self.layer_matmul_flops = 2.0 * s * (h * spec.qkv_size + h * h + mlp)
        self.layer_attn_flops = 4.0 * s * s * h
        self.head_flops = 2.0 * s * h * spec.vocab_size

    # -- per-layer terms -----------------------------------------------------------------------------------
    def _layer_scalar(self, t: int, b: int, sp: bool) -> tuple[float, ...]:
        key = (t, b, sp)
        if key in self._layer_cache:
            return self._layer_cache[key]
        fwd, attn, emb, head = self._layer_compute(t, b, sp)
        spec = self.spec
        tokens = float(b * self.seq_len)
        # Tensor-parallel communication of one layer's forward: 2 all-reduces of b*s*h activations, or with
        # sequence parallelism 2 all-gathers + 2 reduce-scatters of the same (full) size.
        nbytes = tokens * spec.hidden_size * self.act_bytes
        g = self._tp_group_gpn(t)
        if t == 1:
            comm = 0.0
        elif sp:
            comm = 2 * (self._coll("all_gather", nbytes, t, g) + self._coll("reduce_scatter", nbytes, t, g))
        else:
            comm = 2 * self._coll("all_reduce", nbytes, t, g)
        if t > 1:  # the vocab-parallel embedding's all-reduce
            emb += self._coll("all_reduce", nbytes, t, g)
        # One pipeline message: a micro-batch's activations, split over the t ranks (scatter/gather).
        p2p_bytes = nbytes / t
        p2p_intra = self._coll("send_recv", p2p_bytes, 2, 2)
        p2p_inter = self._coll("send_recv", p2p_bytes, 2, 1)
        out = (fwd + attn, attn, comm, emb, head, p2p_intra, p2p_inter)
        self._layer_cache[key] = out
        return out

    def _layer_compute(self, t: int, b: int, sp: bool) -> tuple[float, float, float, float]:
        """(layer forward without attention core, attention core, embedding, LM head + loss), seconds."""
        key = (self.spec, self.gpu, id(self.cal), self.seq_len, self.flash_attention, t, b, sp)
        hit = _COMPUTE_CACHE.get(key)
        if hit is not None:
            return hit
        spec, s, gpu, cal = self.spec, self.seq_len, self.gpu, self.cal
        tokens = float(b * s)
        gemm_ops = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")
        ops = kernels.predict_op_times(gpu, spec, tokens, tp=t, calibration=cal, ops=gemm_ops + ("mlp_act",))
        # Norms, residual adds (2 per layer) and RoPE run on the tokens a rank holds: all of them without
        # sequence parallelism, 1/t of them with it.
        local = tokens / t if sp else tokens
        elem_ops = ("input_layernorm", "post_attention_layernorm", "add")
        elem = kernels.predict_op_times(gpu, spec, local, tp=t, calibration=cal, ops=elem_ops)
        fwd = sum(ops.values()) + elem["input_layernorm"] + elem["post_attention_layernorm"] + 2 * elem["add"]
        if not spec.learned_pos_emb:
            fwd += kernels.predict_op_times(gpu, spec, tokens, tp=t, calibration=cal, ops=("attn_rope",))[
                "attn_rope"]
        fwd *= 1e-3
        attn = self._attention_core(t, b)
        # First stage: the (vocab-parallel) embedding gather.
        emb = kernels.predict_op_times(gpu, spec, tokens, tp=t, calibration=cal, ops=("emb",))["emb"] * 1e-3
        # Last stage: final norm, the LM-head GEMM (vocab split over t) and the cross-entropy.
        gparams = cal.class_params("gemm")
        head = float(gemm_seconds(gpu, tokens, spec.vocab_size / t, spec.hidden_size, gparams, self.act_bytes,
                                  self.dtype))
        head += float(memory_bound_seconds(gpu, tokens * spec.vocab_size / t * CROSS_ENTROPY_BYTES,
                                           cal.class_params("act")))
        head += elem["input_layernorm"] * 1e-3
        out = (fwd, attn, emb, head)
        if len(_COMPUTE_CACHE) > 100_000:
            _COMPUTE_CACHE.clear()
        _COMPUTE_CACHE[key] = out
        return out

    def _attention_core(self, t: int, b: int) -> float:
        """Forward time (s) of softmax(QK^T)V for b sequences on one of t tensor-parallel ranks."""
        spec, s, gpu, cal = self.spec, self.seq_len, self.gpu, self.cal
        if self.flash_attention:
            return kernels.predict_attention_time(gpu, spec, prefill_lens=[s] * b, tp=t, calibration=cal) * 1e-3
        heads = spec.num_heads / t
        hd = spec.head_dim
        g = cal.class_params("gemm")
        rows = b * heads * s  # batched GEMMs priced as one GEMM with the batch folded into m
        qk = gemm_seconds(gpu, rows, s, hd, g, self.act_bytes, self.dtype)
        pv = gemm_seconds(gpu, rows, hd, s, g, self.act_bytes, self.dtype)
        soft = memory_bound_seconds(gpu, b * heads * s * s * UNFUSED_SOFTMAX_BYTES, cal.class_params("act"))
        return float(qk + pv + soft)

    def layer_terms(self, t, b, sp) -> dict[str, np.ndarray]:
        t, b, sp = np.broadcast_arrays(np.asarray(t, int), np.asarray(b, int), np.asarray(sp, bool))
        names = ("fwd", "attn", "tp_comm", "emb", "head", "p2p_intra", "p2p_inter")
        if t.size and t.min() == t.max() and b.min() == b.max() and sp.min() == sp.max():
            vals1 = self._layer_scalar(int(t.flat[0]), int(b.flat[0]), bool(sp.flat[0]))
            return {name: np.full(t.shape, vals1[j]) for j, name in enumerate(names)}
        keys = np.stack([t.ravel(), b.ravel(), sp.ravel().astype(int)], axis=1)
        uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
        table = np.array([self._layer_scalar(int(k[0]), int(k[1]), bool(k[2])) for k in uniq], float)
        vals = table[inverse.ravel()]
        return {name: vals[:, j].reshape(t.shape) for j, name in enumerate(names)}

    # -- collectives -----------------------------------------------------------------------------------------
    def _tp_group_gpn(self, t: int) -> int:
        return min(t, self.cluster.gpus_per_node)

    def _view(self, n: int, gpn: int) -> Cluster:
        """The links one communication group sees: n ranks, gpn of them per node (ranks placed node by node)."""
        key = (n, gpn)
        view = self._views.get(key)
        if view is None:
            c = self.cluster
            view = Cluster(gpu=c.gpu, num_nodes=max(1, math.ceil(n / gpn)), gpus_per_node=gpn,
                           intra_node=c.intra_node, inter_node=c.inter_node, name=f"{c.name}-group")
            self._views[key] = view
        return view

    def _coll(self, kind: str, nbytes, n: int, gpn: int):
        if n <= 1:
            return np.zeros_like(_as_array(nbytes)) if np.ndim(nbytes) else 0.0
        view = self._view(n, gpn)
        sec = collective_seconds(kind, nbytes, n, view, params=self.coll_params)
        # The fitted network constant scales only traffic that crosses nodes (InfiniBand); NVLink collectives
        # keep the kernels' fit on measured DGX A100 collectives.
        return sec * self.constants.network_scale if view.num_nodes > 1 else sec

    def coll_groups(self, kind: str, nbytes, n, gpn) -> np.ndarray:
        """Vectorised collective time over arrays of sizes, group sizes and ranks-per-node."""
        nbytes, n, gpn = np.broadcast_arrays(_as_array(nbytes), np.asarray(n, int), np.asarray(gpn, int))
        if n.size and n.min() == n.max() and gpn.min() == gpn.max():
            return np.asarray(self._coll(kind, nbytes, int(n.flat[0]), int(gpn.flat[0])), float) * np.ones(n.shape)
        out = np.zeros(nbytes.shape, float)
        flat_n, flat_g = n.ravel(), gpn.ravel()
        keys = flat_n * 100003 + flat_g
        for key in np.unique(keys):
            sel = (keys == key).reshape(n.shape)
            nn, gg = int(flat_n[keys == key][0]), int(flat_g[keys == key][0])
            out[sel] = self._coll(kind, nbytes[sel], nn, gg)
        return out

    def dp_group_gpn(self, t, d) -> np.ndarray:
        """Ranks of one data-parallel group per node: Megatron orders ranks tp fastest, then dp, then pp."""
        gpn = self.cluster.gpus_per_node
        t, d = np.asarray(t, int), np.asarray(d, int)
        return np.minimum(d, np.maximum(1, gpn // t))

    # -- stages ----------------------------------------------------------------------------------------------
    def stage_terms(self, cfg: dict[str, np.ndarray], i, n, r) -> dict[str, np.ndarray]:
        """Per-stage costs, broadcast over arrays.

        cfg: t, p, d, b, v, sp, base (0 none / 1 selective / 2 full), z (ZeRO stage), dopt, m (micro-batches).
        i: stage index; n: its layers (per GPU, all chunks); r: its fully recomputed layers (ignored when
        base is full: then all n are).
        Returns tau (s per micro-batch), end (s: gradient sync + optimizer step), memory parts (bytes),
        params (per GPU), inflight (micro-batches of activations held).
        """
        t, p, d, b, v = (np.asarray(cfg[k], int) for k in ("t", "p", "d", "b", "v"))
        sp, base, z = np.asarray(cfg["sp"], bool), np.asarray(cfg["base"], int), np.asarray(cfg["z"], int)
        dopt, m = np.asarray(cfg["dopt"], bool), np.asarray(cfg["m"], int)
        i, n, r = np.asarray(i, int), np.asarray(n, float), np.asarray(r, float)
        (t, p, d, b, v, sp, base, z, dopt, m, i, n, r) = np.broadcast_arrays(t, p, d, b, v, sp, base, z, dopt, m,
                                                                              i, n, r)
        lt = self.layer_terms(t, b, sp)
        first = i == 0
        last = i == p - 1
        n_full = np.where(base == 2, n, r)
        n_sel = np.where(base == 1, n - n_full, 0.0)
        cs = self.constants.compute_scale
        compute = (3.0 * n * lt["fwd"] + n_full * lt["fwd"] + n_sel * lt["attn"]
                   + np.where(first, 3.0 * lt["emb"], 0.0) + np.where(last, 3.0 * lt["head"], 0.0))
        gpn = self.cluster.gpus_per_node
        inter = (t * d * p) > gpn
        p2p = np.where(p > 1, 2.0 * v * np.where(inter, lt["p2p_inter"], lt["p2p_intra"]), 0.0)
        comm = (2.0 * n + n_full) * lt["tp_comm"] + p2p
        # Parameters on one GPU of the stage.
        params = n * self.layer_params / t
        params = params + np.where(first, self.vocab_params / t + self.pos_params, 0.0)
        head_params = 0.0 if self.tied else self.vocab_params
        params = params + np.where(last, self.final_norm_params + head_params / t, 0.0)
        if self.tied:  # the last stage keeps a copy of the tied word embedding when pp > 1 (Megatron)
            params = params + np.where(last & (p > 1), self.vocab_params / t, 0.0)
        dgpn = self.dp_group_gpn(t, d)
        tau = cs * compute + comm
        z3 = z == 3
        if np.any(z3):
            gather = 2.0 * self.coll_groups("all_gather", PARAM_BYTES * params * d, d, dgpn)
            tau = np.where(z3, np.maximum(cs * compute, gather) + comm, tau)
        # End of iteration: gradient synchronisation, then the optimizer step.
        shard_opt = (z >= 1) | dopt
        grad_bytes = GRAD_BYTES * params
        allreduce = self.coll_groups("all_reduce", grad_bytes, d, dgpn)
        rs = self.coll_groups("reduce_scatter", grad_bytes, d, dgpn)
        ag = self.coll_groups("all_gather", PARAM_BYTES * params, d, dgpn)
        sync = np.where(z3, rs, np.where(shard_opt, rs + ag, allreduce))
        if self.tied:
            emb_sync = self.coll_groups("all_reduce", GRAD_BYTES * self.vocab_params / t * np.ones_like(n), 2,
                                        np.where(inter, 1, 2))
            sync = sync + np.where((p > 1) & (first | last), emb_sync, 0.0)
        local = params / np.where(shard_opt, d, 1)
        step = memory_bound_seconds(self.gpu, ADAM_STEP_BYTES * local, self.cal.class_params("add"))
        end = sync + cs * step
        # Memory.
        mem_params = PARAM_BYTES * params / np.where(z3, d, 1)
        mem_grads = GRAD_BYTES * params / np.where(z >= 2, d, 1)
        mem_opt = OPTIMIZER_BYTES * params / np.where(shard_opt, d, 1)
        act = self.activation_bytes(t, b, sp, base, n, n_full, first, last)
        inflight = np.where(v > 1, (2.0 * (p - i - 1) + (v - 1) * p + 1) / v, (p - i).astype(float))
        inflight = np.minimum(inflight, m)
        mem_act = act * inflight
        return {"tau": tau, "end": end, "compute": cs * compute, "tp_comm": (2.0 * n + n_full) * lt["tp_comm"],
                "p2p": p2p, "sync": sync, "step": cs * step, "params": params,
                "mem_params": mem_params, "mem_grads": mem_grads, "mem_opt": mem_opt, "mem_act": mem_act,
                "mem_total": mem_params + mem_grads + mem_opt + mem_act, "inflight": inflight}

    def activation_bytes(self, t, b, sp, base, n, n_full, first, last) -> np.ndarray:
        """Activation bytes one micro-batch leaves on a stage (Korthikanti et al. 2022, Table 2).

        Per layer, in units of s*b*h bytes at 2-byte activations: 10 not split by tensor parallelism (layer-norm
        inputs, QKV and MLP inputs, two dropout masks) + 24/t split (Q, K, V, projection input, MLP
        intermediates) + 5 a s / (h t) for the attention scores; sequence parallelism splits the first term
        too; selective recomputation (and FlashAttention) drops the score term; full recomputation keeps only
        the layer input (2 s b h, / t with sequence parallelism). The 24 is 8 (attention, with K, V scaled by
        the KV heads) + 4 f / h (MLP of width f; 6 f / h when gated).
        """
        spec, s = self.spec, self.seq_len
        h, a, f = spec.hidden_size, spec.num_heads, spec.ffn_hidden_size
        t = np.asarray(t, float)
        kv_frac = np.maximum(1.0, spec.num_kv_heads / t) * t / spec.num_heads  # KV heads replicate past t
        split = 4.0 + 4.0 * kv_frac + (6.0 if spec.gated_mlp else 4.0) * f / h
        sbh = s * np.asarray(b, float) * h
        unsplit = np.where(sp, 10.0 / t, 10.0)
        score = 0.0 if self.flash_attention else 5.0 * a * s / h
        keep_scores = (np.asarray(base) == 0)
        per_layer = sbh * (unsplit + split / t + np.where(keep_scores, score / t, 0.0))
        full_layer = sbh * 2.0 / np.where(sp, t, 1.0)
        act = (n - n_full) * per_layer + n_full * full_layer
        # First stage: the embedding's dropout mask (1 byte per element). Last stage: final layer-norm input
        # and the fp32 logits the cross-entropy keeps (4 s b V / t).
        act = act + np.where(first, sbh / np.where(sp, t, 1.0), 0.0)
        act = act + np.where(last, 2.0 * sbh / np.where(sp, t, 1.0) + 4.0 * s * np.asarray(b, float)
                             * spec.vocab_size / t, 0.0)
        return act

    # -- plans -----------------------------------------------------------------------------------------------
    def flops_per_iteration(self, global_batch: int, full_frac, sel_frac) -> tuple[np.ndarray, float]:
        """(hardware FLOPs, model FLOPs) of one iteration. Hardware FLOPs count recomputation (Narayanan et
        al. SC'21 Eq. 3 when every layer is fully recomputed); model FLOPs do not (the MFU convention)."""
        L = self.spec.num_layers
        layer = self.layer_matmul_flops + self.layer_attn_flops
        model = global_batch * (3.0 * L * layer + 3.0 * self.head_flops)
        extra = global_batch * L * (np.asarray(full_frac) * layer + np.asarray(sel_frac) * self.layer_attn_flops)
        return model + extra, model

    def uniform(self, cfg: dict[str, np.ndarray], global_batch: int) -> dict[str, np.ndarray]:
        """Iteration time and memory of plans with equal stages (no explicit partition), vectorised."""
        L = self.spec.num_layers
        p = np.asarray(cfg["p"], int)
        n = L / p
        zeros = np.zeros_like(n)
        st0 = self.stage_terms(cfg, 0, n, zeros)
        stl = self.stage_terms(cfg, p - 1, n, zeros)
        stm = self.stage_terms(cfg, np.minimum(1, p - 1), n, zeros)
        single = p == 1
        tau_sum = np.where(single, st0["tau"], st0["tau"] + stl["tau"] + np.maximum(p - 2, 0) * stm["tau"])
        tau_max = np.maximum(np.maximum(st0["tau"], stl["tau"]), np.where(p > 2, stm["tau"], 0.0))
        end = np.maximum(np.maximum(st0["end"], stl["end"]), np.where(p > 2, stm["end"], 0.0))
        base = np.asarray(cfg["base"], int)
        out = self._combine(cfg, tau_sum, tau_max, end, global_batch, full_frac=(base == 2).astype(float),
                            sel_frac=(base == 1).astype(float))
        worst_last = stl["mem_total"] > st0["mem_total"]
        for key in ("mem_params", "mem_grads", "mem_opt", "mem_act", "mem_total"):
            out[key] = np.where(worst_last, stl[key], st0[key])
        out["worst_stage"] = np.where(worst_last, p - 1, 0)
        out["compute_s"] = (np.asarray(cfg["m"]) * st0["compute"])
        return out

    def _combine(self, cfg, tau_sum, tau_max, end, global_batch, full_frac, sel_frac) -> dict[str, np.ndarray]:
        m = np.asarray(cfg["m"], float)
        v = np.asarray(cfg["v"], float)
        pipe = (m - 1.0) * tau_max + tau_sum / v + (1.0 - 1.0 / v) * tau_max
        time = pipe + end
        hw, model = self.flops_per_iteration(global_batch, full_frac, sel_frac)
        gpus = self.cluster.num_gpus
        return {"time": time, "pipeline": pipe, "end": end, "tau_max": tau_max, "tau_sum": tau_sum,
                "tflops": hw / (time * gpus) / 1e12, "mfu": model / (time * gpus * self.peak_flops)}

    def partitioned(self, plan: TrainingPlan, global_batch: int, m: int) -> tuple[dict, list[dict]]:
        """Iteration terms of a plan with an explicit partition and/or per-stage recompute counts."""
        L, p = self.spec.num_layers, plan.pp
        sizes = plan.partition or (L // p,) * p
        rcl = plan.recompute_layers or (0,) * p
        cfg = plan_cfg(plan, m)
        stages = [self.stage_terms(cfg, i, sizes[i], rcl[i]) for i in range(p)]
        taus = [float(st["tau"]) for st in stages]
        ends = [float(st["end"]) for st in stages]
        base = RECOMPUTE_CODE[plan.recompute]
        full = L if base == 2 else sum(rcl)
        sel = (L - full) if base == 1 else 0
        out = self._combine(cfg, float(sum(taus)), max(taus), max(ends), global_batch, full / L, sel / L)
        return out, stages


def plan_cfg(plan: TrainingPlan, m: int) -> dict[str, Any]:
    return {"t": plan.tp, "p": plan.pp, "d": plan.dp, "b": plan.micro_batch, "v": plan.virtual_stages,
            "sp": plan.sequence_parallel, "base": RECOMPUTE_CODE[plan.recompute], "z": plan.zero_stage,
            "dopt": plan.distributed_optimizer, "m": m}


@lru_cache(maxsize=64)
def _cached_model(model, cluster, seq_len, flash_attention, constants, calibration) -> CostModel:
    return CostModel(model, cluster, seq_len, flash_attention=flash_attention, constants=constants,
                     calibration=calibration)


def cost_model(model, cluster, seq_len: int, *, flash_attention: bool = False,
               constants: CostConstants | None = None, calibration=None) -> CostModel:
    """A (cached) CostModel; model and cluster are kernels names or objects."""
    spec = kernels.models.get(model)
    clus = kernels.get_cluster(cluster)
    try:
        return _cached_model(spec, clus, int(seq_len), bool(flash_attention), constants, calibration)
    except TypeError:  # unhashable calibration object
        return CostModel(spec, clus, seq_len, flash_attention=flash_attention, constants=constants,
                         calibration=calibration)


def clear_caches() -> None:
    """Forget the cached per-layer operator prices and cost models (benchmarks time a cold start with it)."""
    _COMPUTE_CACHE.clear()
    _cached_model.cache_clear()


def memory_limit_bytes(cluster: Cluster, memory_limit_gib: float | None) -> float:
    return float(memory_limit_gib) * GIB if memory_limit_gib is not None else cluster.gpu.memory_bytes


def estimate_training(model, cluster, plan: TrainingPlan, *, seq_len: int, global_batch: int,
                      memory_limit_gib: float | None = None, flash_attention: bool = False,
                      constants: CostConstants | None = None, calibration=None) -> TrainingEstimate:
    """Time, throughput and per-GPU memory of one training iteration of `plan` (the family's scorer).

    model / cluster: `sysgym.kernels` names or objects (`ModelSpec`, `Cluster`). memory_limit_gib: per-GPU
    budget (default: the GPU's memory). An illegal plan comes back with `feasible=False`, `rule` naming the
    broken rule and `reason` the detail; a legal plan that does not fit has rule "memory".
    """
    if not isinstance(plan, TrainingPlan):
        raise TypeError(f"plan must be a TrainingPlan, got {type(plan).__name__}")
    cm = cost_model(model, cluster, seq_len, flash_attention=flash_attention, constants=constants,
                    calibration=calibration)
    if int(global_batch) != global_batch or global_batch < 1:
        raise ValueError(f"global_batch must be a positive integer, got {global_batch!r}")
    global_batch = int(global_batch)
    limit = memory_limit_bytes(cm.cluster, memory_limit_gib)
    spec = cm.spec
    broken = legality(plan, num_layers=spec.num_layers, num_heads=spec.num_heads, num_gpus=cm.cluster.num_gpus,
                      seq_len=cm.seq_len, global_batch=global_batch)
    if broken is not None:
        nan = float("nan")
        return TrainingEstimate(plan=plan, iteration_time_s=math.inf, tflops_per_gpu=0.0, mfu=0.0,
                                memory_gib=MemoryBreakdown(nan, nan, nan, nan, nan), feasible=False,
                                reason=f"illegal plan: {broken[0]}: {broken[1]}", rule=broken[0],
                                memory_limit_gib=limit / GIB)
    m = global_batch // (plan.dp * plan.micro_batch)
    if plan.partition is None and plan.recompute_layers is None:
        out = cm.uniform(plan_cfg(plan, m), global_batch)
        stage_mem = None
        worst = int(out["worst_stage"])
        mem = {k: float(out[k]) for k in ("mem_params", "mem_grads", "mem_opt", "mem_act", "mem_total")}
        tp_comm = None
    else:
        out, stages = cm.partitioned(plan, global_batch, m)
        stage_mem = tuple(float(st["mem_total"]) / GIB for st in stages)
        worst = int(np.argmax(stage_mem))
        mem = {k: float(stages[worst][k]) for k in ("mem_params", "mem_grads", "mem_opt", "mem_act", "mem_total")}
        tp_comm = stages
    if stage_mem is None:
        cfg = plan_cfg(plan, m)
        stages = [cm.stage_terms(cfg, i, spec.num_layers // plan.pp, 0) for i in range(plan.pp)] \
            if plan.pp <= 512 else []
        stage_mem = tuple(float(st["mem_total"]) / GIB for st in stages)
        tp_comm = stages
    breakdown = MemoryBreakdown(parameters=mem["mem_params"] / GIB, gradients=mem["mem_grads"] / GIB,
                                optimizer=mem["mem_opt"] / GIB, activations=mem["mem_act"] / GIB,
                                total=mem["mem_total"] / GIB, stage=worst)
    time = float(out["time"])
    crit = max(tp_comm, key=lambda st: float(st["tau"])) if tp_comm else None
    tb = {"pipeline_s": float(out["pipeline"]), "bubble_s": float(out["pipeline"]) - m * float(out["tau_max"]),
          "grad_sync_and_optimizer_s": float(out["end"])}
    if crit is not None:
        tb.update(compute_s=m * float(crit["compute"]), tp_comm_s=m * float(crit["tp_comm"]),
                  p2p_s=m * float(crit["p2p"]), grad_sync_s=float(crit["sync"]), optimizer_s=float(crit["step"]))
    feasible = mem["mem_total"] <= limit
    reason = None if feasible else (f"out of memory: stage {worst} needs {mem['mem_total'] / GIB:.1f} GiB per GPU, "
                                    f"the limit is {limit / GIB:.1f} GiB")
    return TrainingEstimate(plan=plan, iteration_time_s=time, tflops_per_gpu=float(out["tflops"]),
                            mfu=float(out["mfu"]), memory_gib=breakdown, feasible=bool(feasible), reason=reason,
                            rule=None if feasible else "memory", num_microbatches=m, memory_limit_gib=limit / GIB,
                            time_breakdown_s=tb, stage_memory_gib=stage_mem)
