"""The Megatron-style training cost model: time and memory of a `TrainingPlan` (the family's only scorer).

Every GPU cost comes from `sysgym.kernels` (operator roofline models fitted on measured A100 profiles, NCCL
collectives on the cluster's links, each network with its own efficiencies). This module only composes them
the way Megatron-LM executes a training iteration; it fits nothing. Per term, with its source:

Compute, per layer and micro-batch (one GPU):
* Forward = the kernels' GEMMs, attention core and element-wise operators on the rank's tokens.
* Backward: GEMMs twice the forward (a data-gradient and a weight-gradient GEMM of the forward's FLOPs;
  Narayanan et al. SC'21, Sec. 5.1 "the backward pass is twice as expensive"). Bandwidth-bound kernels move
  what their backward reads and writes: layer norm and GeLU read x and dy and write dx (3 tensors vs 2
  forward: x1.5), bias-dropout-add reads dy and its 1-byte mask and writes dx (5 B vs 6 B per element),
  RoPE's inverse rotation as its forward.
* Attention core without FlashAttention: QK^T and PV as batched GEMMs, Megatron's fused scale-mask-softmax
  (read + write fp16: 4 B per score) and attention dropout (5 B) as single streaming kernels (SC'21 Sec. 4.2,
  fused kernels; priced with the kernels' one-pass streaming class `add`); backward 2x the GEMMs and 11 B
  per score (softmax: y, dy, dx; dropout: dy, mask, dx). With FlashAttention: the kernels' causal prefill
  model forward, 2.5x for the backward (FlashAttention-2 recomputes S and P: 5 matmuls to the forward's 2,
  Dao 2023, Sec. 3.1).
* Recomputation: full adds one forward per layer, selective the attention core's forward (Korthikanti et
  al. 2022, Sec. 5). The first stage adds the embedding (backward: scatter-add of the gathered rows, 2x), the
  last the final norm, the LM head GEMMs (backward 2x) and the vocab-parallel cross-entropy on fp32 logits
  (Megatron `vocab_parallel_cross_entropy`: 12 B per logit forward, 10 B backward) -- the stage imbalance
  that the embedding and LM head cause under Megatron's equal layer split.

Communication (collectives from `sysgym.kernels.collectives`, on the links each group crosses):
* Tensor parallelism: 2 all-reduces of the layer's activations per pass (forward, backward, recomputed
  forward; Shoeybi et al. 2019 Fig. 4), with sequence parallelism 2 all-gathers + 2 reduce-scatters
  (Korthikanti Sec. 4.2.2); the vocab-parallel embedding's all-reduce and the cross-entropy's 3 all-reduces
  of one float per token. Not overlapped (SC'21).
* Context parallelism (Megatron-Core `--context-parallel-size`, ring attention: Liu et al. 2023; as used by
  ByteScale and Zeppelin for long sequences): the sequence is split into 2c chunks, rank j holding chunks j and
  2c-1-j (load balance under the causal mask); each layer's attention passes the local K and V around the ring
  in c-1 steps, each step overlapped with the attention of the block at hand (exposed: what the transfer
  exceeds it by); the backward passes K, V and their gradients (2x). Needs FlashAttention (Megatron-Core runs
  context parallelism inside Transformer Engine's attention). Gradients reduce over the d x c ranks.
* Pipeline point-to-point (SC'21 Sec. 4.1): per micro-batch every stage exchanges one message with each
  neighbour (Megatron's send_forward_recv_backward / send_backward_recv_forward, blocking), v times with v
  interleaved chunks (Sec. 2.2.2: "the amount of communication also increases by v"); with the scatter/gather
  optimisation a GPU sends bsh/t over its own link and the receiver all-gathers the t pieces over NVLink (no
  gather with sequence parallelism, whose activations are already split). The link is the one the two stages
  cross: NVLink when both sit on one node, else the NIC of their node group, or the slowest link between two
  groups.
* Data parallelism: after its last backward every stage all-reduces its gradients -- in fp16 when training
  in fp16, in fp32 in bf16 (Megatron-LM arguments.py: --accumulate-allreduce-grads-in-fp32 is off by default
  and forced on for bf16; the kernels' A100 calibration is fp16, as Narayanan et al.'s runs) --, or
  reduce-scatters them and all-gathers fp16 parameters with the distributed optimizer /
  ZeRO-1/2; ZeRO-3 also all-gathers parameters for every micro-batch (overlapped with compute). Megatron SC'21
  does not overlap the reduction with backpropagation (Korthikanti et al. 2022, Sec. 6.3: "we do not use any
  overlapping of gradient all-reduces with back-propagation"), but stages finish their backward at different
  times: in the cool-down stage i ends i chunk-backwards before stage 0 (1F1B, interleaved alike), so its
  reduction overlaps the others' cool-down. `overlap_grad_reduce=True` models Megatron-Core's bucketed
  reduction during the last micro-batch's backward (40M-parameter buckets, Megatron-Core DDP default). Tied
  embeddings add an all-reduce of the embedding gradient between the first and last stage, after stage 0.
* Optimizer step (Megatron's MixedPrecisionOptimizer.step + apex FusedAdam), bandwidth-bound per local
  parameter: unscale and inf-check the fp32 gradients (read + write, 8 B), gradient-norm for clipping (read,
  4 B), Adam (read grad, master, m, v; write master, m, v, fp16 copy: 30 B), zero the gradient buffer (4 B).

Pipeline schedule (Narayanan et al. SC'21 Sec. 2.2): stage i needs tau_i per micro-batch; 1F1B takes
(m - 1) max tau + sum tau, i.e. (m + p - 1) tau for equal stages (bubble (p - 1)/m); interleaving with v
chunks per GPU: (m - 1) max tau + sum tau / v + (1 - 1/v) max tau = m tau + (p - 1) tau / v for equal stages
(warm-up and cool-down over chunks of tau/v, bubble (p - 1)/(m v)), each tau carrying its v-fold messages.

Memory: mixed-precision Adam keeps 2 (fp16 weights) + 4 (fp32 gradients) + 12 (fp32 master weights, momentum,
variance) = 18 bytes per parameter (Megatron-LM docs, "Distributed Optimizer"); the distributed optimizer /
ZeRO-1 shards the 12 over the d x c ranks, ZeRO-2 also the 4, ZeRO-3 also the 2 (Rajbhandari et al. SC'20).
Activations per layer follow Korthikanti et al. (2022), Table 2 (generalised to gated MLPs and grouped-query
attention) on the rank's s/c tokens; under 1F1B stage i holds p - i micro-batches, the first stage
p (1 + (p - 1)/(p v)) with interleaving (Korthikanti et al., Sec. 4.2.3 / Megatron's warm-up count).

Placement (heterogeneous clusters, `kernels.Cluster.node_groups`): `plan.placement` names the node group of
every pipeline stage (a stage's t c d GPUs, whole nodes, in one group: its data-parallel reduction runs on that
group's NICs); None places ranks in Megatron's order (tensor, context, data, pipeline) over the nodes in the
cluster's order, so a stage may straddle groups and reduce at the slower one's speed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
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
# Bytes the optimizer step moves per (local) parameter (see the module doc): unscale + inf check 8, norm 4,
# Adam 30, zero_grad 4.
OPTIMIZER_STEP_BYTES = 46.0
# Bytes per gradient element the data-parallel reduction moves, by training dtype (module doc).
GRAD_REDUCE_BYTES = {"fp16": 2.0, "float16": 2.0, "half": 2.0}  # any other dtype: fp32 (4)
# Bytes per logit element of the vocab-parallel cross-entropy on fp32 logits: forward max, sum-exp and normalise
# passes (3 x 4); backward reads the saved softmax (4), writes the fp32 gradient (4) and its fp16 copy (2).
CROSS_ENTROPY_BYTES, CROSS_ENTROPY_BWD_BYTES = 12.0, 10.0
# Bytes per attention score of the unfused attention core: fused scale-mask-softmax reads and writes fp16 (4),
# dropout reads and writes fp16 and writes a 1-byte mask (5); backward: softmax y, dy, dx (6), dropout dy,
# mask, dx (5).
UNFUSED_SOFTMAX_BYTES, UNFUSED_SOFTMAX_BWD_BYTES = 9.0, 11.0
# Backward / forward bytes of the bandwidth-bound layer operators (module doc).
BACKWARD_BYTES = {"norm": 1.5, "act": 1.5, "add": 5.0 / 6.0, "rope": 1.0}
FLASH_BACKWARD = 2.5  # FlashAttention-2 backward / forward (Dao 2023, Sec. 3.1: 5 matmuls vs 2)
GRAD_BUCKET_PARAMS = 40e6  # Megatron-Core DDP bucket_size default (overlap_grad_reduce)
RECOMPUTE_CODE = {"none": 0, "selective": 1, "full": 2}
# Link kinds of a communication path: 0 none, 1 NVLink (inside a node), 2 + k the NICs of node group k,
# 2 + G between groups (the slowest link they cross).
NONE, NVLINK = 0, 1
_COMPUTE_CACHE: dict[tuple, tuple[float, ...]] = {}


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


SCALAR_TERMS = ("fwd", "bwd", "attn_fwd", "emb_fwd", "emb_bwd", "head_fwd", "head_bwd")
KIND_TERMS = ("tp", "emb_tp", "ce_tp", "cp_fwd", "cp_bwd", "q")


class CostModel:
    """Prices plans of one (model, cluster, seq_len). Vectorised: `stage_terms` / `uniform` take numpy arrays.

    Per-layer operator times depend only on (tp, micro_batch, sequence_parallel, context_parallel); they are
    computed once per distinct tuple with `sysgym.kernels` and cached, so pricing thousands of plans costs numpy
    arithmetic. Communication times are tabulated per link kind (module constants NONE, NVLINK, then one per
    node group and one between groups).
    """

    def __init__(self, model, cluster, seq_len: int, *, flash_attention: bool = False, calibration=None,
                 overlap_grad_reduce: bool = False):
        self.spec = kernels.models.get(model)
        self.cluster: Cluster = kernels.get_cluster(cluster)
        self.gpu = self.cluster.gpu
        if int(seq_len) != seq_len or seq_len < 1:
            raise ValueError(f"seq_len must be a positive integer, got {seq_len!r}")
        self.seq_len = int(seq_len)
        self.flash_attention = bool(flash_attention)
        self.overlap_grad_reduce = bool(overlap_grad_reduce)
        self.cal = load_calibration(calibration)
        self.dtype = self.cal.dtype
        self.act_bytes = float(dtype_bytes(self.dtype))
        self.grad_reduce_bytes = GRAD_REDUCE_BYTES.get(str(self.dtype).lower(), 4.0)
        self.coll_params = self.cal.params.get("collective")
        self.peak_flops = self.gpu.peak_flops(self.dtype)
        self.gpn = self.cluster.gpus_per_node
        self.G = len(self.cluster.groups)
        self.CROSS = 2 + self.G
        self.K = 3 + self.G
        self.node_group = np.array(self.cluster.group_of_nodes(), dtype=np.int64)
        self._layer_cache: dict[tuple[int, int, bool, int], dict] = {}
        self._views: dict[tuple[int, int, int], Cluster] = {}
        self._coll_cache: dict[tuple, float] = {}
        self._flash_cache: dict[tuple[int, int], tuple[float, float]] = {}
        self._placements: list[tuple[int, ...] | None] = [None]
        self._place_index: dict[tuple[int, ...] | None, int] = {None: 0}
        self._place_arr = np.full((1, 1), -1, dtype=np.int64)
        spec, s = self.spec, self.seq_len
        self.layer_params = float(spec.layer_params())
        self.tied = bool(spec.learned_pos_emb)  # GPT-style models tie the LM head (kernels.models convention)
        self.vocab_params = float(spec.vocab_size * spec.hidden_size)
        self.pos_params = float(spec.max_seq_len * spec.hidden_size) if spec.learned_pos_emb else 0.0
        self.final_norm_params = float(spec.hidden_size * (2 if spec.bias else 1))
        h = spec.hidden_size
        mlp = spec.mlp_params() * (spec.top_k if spec.is_moe else 1)
        # Forward FLOPs per sequence: the matmuls (2 per weight per token) and attention scores and values
        # counted over the full s x s matrix, as Narayanan et al. SC'21 Eq. 3 counts them (the unfused kernels
        # compute every score, then mask); FlashAttention skips the masked half of a causal matrix, so with it
        # the half is counted (as the FlashAttention papers count causal FLOPs; it matters at long sequences).
        self.layer_matmul_flops = 2.0 * s * (h * spec.qkv_size + h * h + mlp)
        self.layer_attn_flops = 4.0 * s * s * h * (0.5 if self.flash_attention else 1.0)
        self.head_flops = 2.0 * s * h * spec.vocab_size

    # -- placements ------------------------------------------------------------------------------------------
    def placement_id(self, placement) -> int:
        """Index of a placement (a node group per pipeline stage; None = Megatron's rank order) in this model's
        table, registering it on first use (cfg["pl"] carries the index)."""
        key = None if placement is None else tuple(int(g) for g in placement)
        if key not in self._place_index:
            self._place_index[key] = len(self._placements)
            self._placements.append(key)
            width = max(self._place_arr.shape[1], len(key))
            arr = np.full((len(self._placements), width), -1, dtype=np.int64)
            arr[:-1, :self._place_arr.shape[1]] = self._place_arr
            arr[-1, :len(key)] = key
            self._place_arr = arr
        return self._place_index[key]

    def placement(self, pl: int) -> tuple[int, ...] | None:
        return self._placements[int(pl)]

    @property
    def placements(self) -> list[tuple[int, ...] | None]:
        """The registered placements, by id (the list grows as placements are registered)."""
        return self._placements

    # -- per-layer terms -------------------------------------------------------------------------------------
    def _compute_block(self, t: int, sp: bool, b: np.ndarray, c: np.ndarray) -> dict[str, np.ndarray]:
        """SCALAR_TERMS of one layer and micro-batch on one GPU (seconds), for arrays of (b, c) at one (t, sp)."""
        spec, gpu, cal = self.spec, self.gpu, self.cal
        tokens = b * self.seq_len / c
        gemm_ops = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")
        ops = kernels.predict_op_times(gpu, spec, tokens, tp=t, calibration=cal, ops=gemm_ops + ("mlp_act", "emb"))
        # Norms and residual adds run on the tokens a rank holds: all of them without sequence parallelism,
        # 1/t of them with it.
        local = tokens / t if sp else tokens
        elem = kernels.predict_op_times(gpu, spec, local, tp=t, calibration=cal,
                                        ops=("input_layernorm", "post_attention_layernorm", "add"))
        gemm = sum(ops[o] for o in gemm_ops) * 1e-3
        norms = (elem["input_layernorm"] + elem["post_attention_layernorm"]) * 1e-3
        adds = 2.0 * elem["add"] * 1e-3  # bias-dropout-add after attention and after the MLP
        act = ops["mlp_act"] * 1e-3
        rope = np.zeros_like(tokens)
        if not spec.learned_pos_emb:
            rope = kernels.predict_op_times(gpu, spec, tokens, tp=t, calibration=cal, ops=("attn_rope",))[
                "attn_rope"] * 1e-3
        attn_f, attn_b = self._attention_core(t, b, c)
        fwd = gemm + norms + adds + act + rope + attn_f
        bwd = (2.0 * gemm + BACKWARD_BYTES["norm"] * norms + BACKWARD_BYTES["add"] * adds
               + BACKWARD_BYTES["act"] * act + BACKWARD_BYTES["rope"] * rope + attn_b)
        emb_fwd = ops["emb"] * 1e-3
        gp = cal.class_params("gemm")
        head_gemm = gemm_seconds(gpu, tokens, spec.vocab_size / t, spec.hidden_size, gp, self.act_bytes, self.dtype)
        logits = tokens * spec.vocab_size / t
        stream = cal.class_params("add")
        final_norm = elem["input_layernorm"] * 1e-3
        head_fwd = head_gemm + memory_bound_seconds(gpu, logits * CROSS_ENTROPY_BYTES, stream) + final_norm
        head_bwd = (2.0 * head_gemm + memory_bound_seconds(gpu, logits * CROSS_ENTROPY_BWD_BYTES, stream)
                    + BACKWARD_BYTES["norm"] * final_norm)
        return dict(zip(SCALAR_TERMS, (fwd, bwd, attn_f, emb_fwd, 2.0 * emb_fwd, head_fwd, head_bwd)))

    def _attention_core(self, t: int, b, c) -> tuple[np.ndarray, np.ndarray]:
        """(forward, backward) seconds of softmax(QK^T)V for b sequences (s/c tokens each) on one of t ranks."""
        spec, s, gpu, cal = self.spec, self.seq_len, self.gpu, self.cal
        b, c = np.asarray(b, float), np.asarray(c, int)
        if self.flash_attention:
            per_seq, per_call = np.zeros(c.shape), np.zeros(c.shape)
            for cc in np.unique(c):
                key = (t, int(cc))
                if key not in self._flash_cache:
                    half = s / (2 * cc)  # rank 0's chunks: 0 and 2c-1 (every rank does the same work)
                    lens = [(half, 0.0), (half, (2 * cc - 1) * half)] if cc > 1 else [s]
                    kw = {"tp": t, "calibration": cal, "kernel": "training"}  # dense FA2, not a serving kernel
                    one = kernels.predict_attention_time(gpu, spec, prefill_lens=lens, **kw)
                    two = kernels.predict_attention_time(gpu, spec, prefill_lens=lens * 2, **kw)
                    self._flash_cache[key] = (two - one, 2 * one - two)  # per sequence, per call (ms)
                per_seq = np.where(c == cc, self._flash_cache[key][0], per_seq)
                per_call = np.where(c == cc, self._flash_cache[key][1], per_call)
            fwd = (b * per_seq + per_call) * 1e-3  # one kernel call over the micro-batch's b sequences
            return fwd, FLASH_BACKWARD * fwd
        heads = spec.num_heads / t
        hd = spec.head_dim
        g = cal.class_params("gemm")
        rows = b * heads * s  # batched GEMMs priced as one GEMM with the batch folded into m
        gemms = (gemm_seconds(gpu, rows, s, hd, g, self.act_bytes, self.dtype)
                 + gemm_seconds(gpu, rows, hd, s, g, self.act_bytes, self.dtype))
        scores = b * heads * s * s
        stream = cal.class_params("add")
        fwd = gemms + memory_bound_seconds(gpu, scores * UNFUSED_SOFTMAX_BYTES, stream)
        bwd = 2.0 * gemms + memory_bound_seconds(gpu, scores * UNFUSED_SOFTMAX_BWD_BYTES, stream)
        return fwd, bwd

    def _comm_block(self, t: int, sp: bool, b: np.ndarray, c: np.ndarray, comp: dict) -> dict[str, np.ndarray]:
        """KIND_TERMS (arrays with a trailing axis over link kinds) for arrays of (b, c) at one (t, sp)."""
        spec, gpn, K = self.spec, self.gpn, self.K
        tokens = b * self.seq_len / c
        act = tokens * spec.hidden_size * self.act_bytes
        kinds = {name: np.zeros(b.shape + (K,)) for name in KIND_TERMS}
        msg = act / t  # scatter/gather (or sequence-parallel) pipeline message per GPU
        kv_local = max(1.0, spec.num_kv_heads / t)
        kv_msg = 2.0 * tokens * kv_local * spec.head_dim * self.act_bytes  # the rank's K and V chunk
        tg = min(t, gpn)
        # Kinds that occur: NVLink, each group's NICs, and (on a heterogeneous cluster) between groups.
        for k in range(NVLINK, K if self.G > 1 else K - 1):
            # The stage's own network for groups that leave a node (kind k >= 2); everything inside a node
            # runs over NVLink whatever k is.
            tp_net = NVLINK if t <= gpn else k
            gather = self._coll("all_gather", act, t, tg, tp_net) if (t > 1 and not sp) else 0.0
            if t > 1:
                if sp:
                    rs = self._coll("reduce_scatter", act, t, tg, tp_net)
                    kinds["tp"][..., k] = 2 * (self._coll("all_gather", act, t, tg, tp_net) + rs)
                    kinds["emb_tp"][..., k] = rs
                else:
                    ar = self._coll("all_reduce", act, t, tg, tp_net)
                    kinds["tp"][..., k] = 2 * ar
                    kinds["emb_tp"][..., k] = ar
                kinds["ce_tp"][..., k] = 3 * self._coll("all_reduce", tokens * 4.0, t, tg, tp_net)
            for cc in np.unique(c[c > 1]):
                sel = c == cc
                cp_net = NVLINK if t * cc <= gpn else k
                step = self._coll("send_recv", kv_msg[sel], 2, 2 if cp_net == NVLINK else 1, cp_net)
                step2 = self._coll("send_recv", 2 * kv_msg[sel], 2, 2 if cp_net == NVLINK else 1, cp_net)
                kinds["cp_fwd"][sel, k] = (cc - 1) * np.maximum(0.0, step - comp["attn_fwd"][sel] / cc)
                _, attn_b = self._attention_core(t, b[sel], c[sel])
                kinds["cp_bwd"][sel, k] = (cc - 1) * np.maximum(0.0, step2 - attn_b / cc)
            kinds["q"][..., k] = self._coll("send_recv", msg, 2, 2 if k == NVLINK else 1, k) + gather
        return kinds

    def _prime(self, keys) -> None:
        """Compute and cache the per-layer terms of (t, b, sp, c) keys, vectorised per (t, sp)."""
        by_group: dict[tuple[int, bool], list[tuple[int, int]]] = {}
        for t, b, sp, c in keys:
            by_group.setdefault((t, sp), []).append((b, c))
        for (t, sp), bc in by_group.items():
            b = np.array([x[0] for x in bc], dtype=float)
            c = np.array([x[1] for x in bc], dtype=int)
            ckeys = [(self.spec, self.gpu, id(self.cal), self.seq_len, self.flash_attention, t, int(bb), sp, int(cc))
                     for bb, cc in bc]
            if all(k in _COMPUTE_CACHE for k in ckeys):
                comp = {name: np.array([_COMPUTE_CACHE[k][j] for k in ckeys]) for j, name in enumerate(SCALAR_TERMS)}
            else:
                comp = self._compute_block(t, sp, b, c)
                if len(_COMPUTE_CACHE) > 100_000:
                    _COMPUTE_CACHE.clear()
                for j, k in enumerate(ckeys):
                    _COMPUTE_CACHE[k] = tuple(float(comp[name][j]) for name in SCALAR_TERMS)
            comm = self._comm_block(t, sp, b, c, comp)
            for j, (bb, cc) in enumerate(bc):
                entry = {name: float(comp[name][j]) for name in SCALAR_TERMS}
                entry.update({name: comm[name][j].copy() for name in KIND_TERMS})
                self._layer_cache[(t, int(bb), sp, int(cc))] = entry

    def _layer(self, t: int, b: int, sp: bool, c: int) -> dict:
        """Scalar terms and, per link kind, the communication terms of one layer and micro-batch."""
        key = (t, b, sp, c)
        if key not in self._layer_cache:
            self._prime([key])
        return self._layer_cache[key]

    def layer_terms(self, t, b, sp, c=1) -> dict[str, np.ndarray]:
        """Per-layer terms for arrays of (t, b, sp, c): SCALAR_TERMS with the arrays' shape, KIND_TERMS with a
        trailing axis over link kinds."""
        t, b, sp, c = np.broadcast_arrays(np.asarray(t, int), np.asarray(b, int), np.asarray(sp, bool),
                                          np.asarray(c, int))
        if t.size and t.min() == t.max() and b.min() == b.max() and sp.min() == sp.max() and c.min() == c.max():
            one = self._layer(int(t.flat[0]), int(b.flat[0]), bool(sp.flat[0]), int(c.flat[0]))
            out = {name: np.full(t.shape, one[name]) for name in SCALAR_TERMS}
            out.update({name: np.broadcast_to(one[name], t.shape + (self.K,)) for name in KIND_TERMS})
            return out
        key = ((t.ravel() * 65536 + b.ravel()) * 2 + sp.ravel().astype(np.int64)) * 65536 + c.ravel()
        uniq, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        tf, bf, sf, cf = t.ravel()[first], b.ravel()[first], sp.ravel()[first], c.ravel()[first]
        keys = [(int(tf[j]), int(bf[j]), bool(sf[j]), int(cf[j])) for j in range(len(uniq))]
        missing = [k for k in keys if k not in self._layer_cache]
        if missing:
            self._prime(missing)
        rows = [self._layer_cache[k] for k in keys]
        inverse = inverse.ravel()
        out = {name: np.array([r[name] for r in rows])[inverse].reshape(t.shape) for name in SCALAR_TERMS}
        out.update({name: np.array([r[name] for r in rows])[inverse].reshape(t.shape + (self.K,))
                    for name in KIND_TERMS})
        return out

    # -- collectives -----------------------------------------------------------------------------------------
    def _view(self, n: int, gpn: int, kind: int) -> Cluster:
        """The links a communication group of n ranks, gpn of them per node, sees on link kind `kind`."""
        key = (n, gpn, kind)
        view = self._views.get(key)
        if view is None:
            c = self.cluster
            if kind == NVLINK:
                view = c.links_view(1, max(n, 1), (0,))
            else:
                groups = tuple(range(self.G)) if kind == self.CROSS else (kind - 2,)
                view = c.links_view(max(1, math.ceil(n / gpn)), gpn, groups)
            self._views[key] = view
        return view

    def _coll(self, kind: str, nbytes, n: int, gpn: int, link: int):
        if n <= 1:
            return np.zeros_like(_as_array(nbytes)) if np.ndim(nbytes) else 0.0
        if np.ndim(nbytes) == 0:
            key = (kind, float(nbytes), n, gpn, link)
            hit = self._coll_cache.get(key)
            if hit is None:
                hit = self._coll_cache[key] = float(
                    collective_seconds(kind, float(nbytes), n, self._view(n, gpn, link), params=self.coll_params))
            return hit
        return collective_seconds(kind, nbytes, n, self._view(n, gpn, link), params=self.coll_params)

    def coll_groups(self, kind, nbytes, n, gpn, link):
        """Vectorised collective time over arrays of sizes, group sizes, ranks per node and link kinds. `kind` and
        `nbytes` may be tuples (several collectives over the same groups): then a tuple of arrays comes back."""
        kinds = (kind,) if isinstance(kind, str) else tuple(kind)
        sizes = (nbytes,) if isinstance(kind, str) else tuple(nbytes)
        arrays = np.broadcast_arrays(*[_as_array(x) for x in sizes], np.asarray(n, int), np.asarray(gpn, int),
                                     np.asarray(link, int))
        sizes, (n, gpn, link) = arrays[:len(kinds)], arrays[len(kinds):]
        if n.size and n.min() == n.max() and gpn.min() == gpn.max() and link.min() == link.max():
            outs = [np.asarray(self._coll(k, x, int(n.flat[0]), int(gpn.flat[0]), int(link.flat[0])), float)
                    * np.ones(n.shape) for k, x in zip(kinds, sizes)]
        else:
            outs = [np.zeros(n.shape, float) for _ in kinds]
            key = (n.ravel().astype(np.int64) * 65536 + gpn.ravel()) * 64 + link.ravel()
            uniq, first, inverse = np.unique(key, return_index=True, return_inverse=True)
            order = np.argsort(inverse, kind="stable")
            bounds = np.searchsorted(inverse[order], np.arange(len(uniq) + 1))
            nf, gf, lf = n.ravel()[first], gpn.ravel()[first], link.ravel()[first]
            for j in range(len(uniq)):
                sel = order[bounds[j]:bounds[j + 1]]
                for out, k, x in zip(outs, kinds, sizes):
                    # Plans that differ only in micro-batch, schedule or recomputation share a stage's size.
                    xs, inv = np.unique(x.ravel()[sel], return_inverse=True)
                    out.flat[sel] = np.asarray(self._coll(k, xs, int(nf[j]), int(gf[j]), int(lf[j])))[inv.ravel()]
        return outs[0] if isinstance(kind, str) else tuple(outs)

    def dp_group_gpn(self, t, d, c=1) -> np.ndarray:
        """Ranks of one gradient-reduction group (d x c ranks) per node: Megatron orders ranks tensor fastest,
        then context, data, pipeline."""
        t, d, c = np.asarray(t, int), np.asarray(d, int), np.asarray(c, int)
        return np.minimum(d * c, np.maximum(1, self.gpn // t))

    # -- link kinds of stages ----------------------------------------------------------------------------------
    def _default_groups(self, S, i):
        """(first, last) node group of stage i's ranks under Megatron's rank order (S GPUs per stage)."""
        last_node = self.node_group.size - 1
        first = self.node_group[np.clip((i * S) // self.gpn, 0, last_node)]
        last = self.node_group[np.clip(((i + 1) * S - 1) // self.gpn, 0, last_node)]
        return first, last

    def stage_kinds(self, cfg: dict, i) -> dict[str, np.ndarray]:
        """Link kinds of stage i: `net` (its data-parallel reduction, and tensor / context groups that leave a
        node), `prev` / `next` (its pipeline exchanges; the first and last stage exchange with each other when
        interleaving wraps chunks around), `emb` (the tied-embedding all-reduce between first and last stage)."""
        t, c, d, p, v = (np.asarray(cfg[k], int) for k in ("t", "c", "d", "p", "v"))
        pl = np.asarray(cfg.get("pl", 0), int)
        i = np.asarray(i, int)
        t, c, d, p, v, pl, i = np.broadcast_arrays(t, c, d, p, v, pl, i)
        S, gpn, G = t * c * d, self.gpn, self.G
        wrap = (v > 1) & (p > 1)
        has_prev = (i > 0) | wrap
        has_next = (i < p - 1) | wrap
        j_prev = np.where(i > 0, i - 1, p - 1)
        j_next = np.where(i < p - 1, i + 1, 0)

        def same_node(a, b):  # stages a and b share a node (default order): both inside one node's ranks
            lo, hi = np.minimum(a, b), np.maximum(a, b)
            return (S < gpn) & ((lo * S) // gpn == ((hi + 1) * S - 1) // gpn)

        if G == 1:
            net = np.full(i.shape, 2)
            prev = np.where(has_prev, np.where(same_node(i, j_prev), NVLINK, 2), NONE)
            nxt = np.where(has_next, np.where(same_node(i, j_next), NVLINK, 2), NONE)
            emb = np.where(same_node(np.zeros_like(i), p - 1), NVLINK, 2)
            return {"net": net, "prev": prev, "next": nxt, "emb": emb}
        explicit = pl > 0
        g_exp = self._place_arr[pl, np.minimum(i, self._place_arr.shape[1] - 1)]
        f_i, l_i = self._default_groups(S, i)
        net = np.where(explicit, 2 + g_exp, np.where(f_i == l_i, 2 + f_i, self.CROSS))

        def boundary(j):
            g_j = self._place_arr[pl, np.minimum(j, self._place_arr.shape[1] - 1)]
            kind_exp = np.where(g_j == g_exp, 2 + g_exp, self.CROSS)
            f_j, l_j = self._default_groups(S, j)
            one = (f_i == l_i) & (f_j == l_j) & (f_i == f_j)
            kind_def = np.where(same_node(i, j), NVLINK, np.where(one, 2 + f_i, self.CROSS))
            return np.where(explicit, kind_exp, kind_def)

        prev = np.where(has_prev, boundary(j_prev), NONE)
        nxt = np.where(has_next, boundary(j_next), NONE)
        zero = np.zeros_like(i)
        g0 = self._place_arr[pl, 0]
        gl = self._place_arr[pl, np.minimum(p - 1, self._place_arr.shape[1] - 1)]
        f0, _ = self._default_groups(S, zero)
        _, ll = self._default_groups(S, p - 1)
        emb_def = np.where(same_node(zero, p - 1), NVLINK, np.where(f0 == ll, 2 + f0, self.CROSS))
        emb = np.where(explicit, np.where(g0 == gl, 2 + g0, self.CROSS), emb_def)
        return {"net": net, "prev": prev, "next": nxt, "emb": emb}

    # -- stages ----------------------------------------------------------------------------------------------
    def stage_terms(self, cfg: dict[str, np.ndarray], i, n, r, *, lt: dict | None = None) -> dict[str, np.ndarray]:
        """Per-stage costs, broadcast over arrays.

        cfg: t, p, d, b, v, sp, base (0 none / 1 selective / 2 full), z (ZeRO stage), dopt, m (micro-batches),
        c (context parallel, default 1), pl (placement id, default 0). i: stage index; n: its layers (per GPU,
        all chunks); r: its fully recomputed layers (ignored when base is full: then all n are).
        Returns tau (s per micro-batch), end (s: this stage's exposed gradient reduction + optimizer step, less
        its cool-down lead; the iteration's end term is the max over stages), memory parts (bytes), params (per
        GPU), inflight (micro-batches of activations held). `lt`: `layer_terms` of cfg, when the caller has them.
        """
        t, p, d, b, v = (np.asarray(cfg[k], int) for k in ("t", "p", "d", "b", "v"))
        sp, base, z = np.asarray(cfg["sp"], bool), np.asarray(cfg["base"], int), np.asarray(cfg["z"], int)
        dopt, m = np.asarray(cfg["dopt"], bool), np.asarray(cfg["m"], int)
        c, pl = np.asarray(cfg.get("c", 1), int), np.asarray(cfg.get("pl", 0), int)
        i, n, r = np.asarray(i, int), np.asarray(n, float), np.asarray(r, float)
        (t, p, d, b, v, sp, base, z, dopt, m, c, pl, i, n, r) = np.broadcast_arrays(
            t, p, d, b, v, sp, base, z, dopt, m, c, pl, i, n, r)
        if lt is None or np.shape(lt["fwd"]) != t.shape:
            lt = self.layer_terms(t, b, sp, c)
        kinds = self.stage_kinds({"t": t, "c": c, "d": d, "p": p, "v": v, "pl": pl}, i)
        return self._stage(lt, kinds, t, p, d, b, v, sp, base, z, dopt, m, c, i, n, r)

    def _stage(self, lt, kinds, t, p, d, b, v, sp, base, z, dopt, m, c, i, n, r) -> dict[str, np.ndarray]:
        def pick(name, kind):
            return np.take_along_axis(lt[name], kind[..., None], axis=-1)[..., 0]

        net = kinds["net"]
        first, last = i == 0, i == p - 1
        n_full = np.where(base == 2, n, r)
        n_sel = np.where(base == 1, n - n_full, 0.0)
        tp, cpf, cpb = pick("tp", net), pick("cp_fwd", net), pick("cp_bwd", net)
        compute = (n * (lt["fwd"] + lt["bwd"]) + n_full * lt["fwd"] + n_sel * lt["attn_fwd"]
                   + np.where(first, lt["emb_fwd"] + lt["emb_bwd"], 0.0)
                   + np.where(last, lt["head_fwd"] + lt["head_bwd"], 0.0))
        tp_comm = ((2.0 * n + n_full) * tp + np.where(first, pick("emb_tp", net), 0.0)
                   + np.where(last, pick("ce_tp", net), 0.0))
        cp_comm = n * (cpf + cpb) + n_full * cpf
        p2p = v * (pick("q", kinds["prev"]) + pick("q", kinds["next"]))
        # Parameters on one GPU of the stage.
        params = n * self.layer_params / t
        params = params + np.where(first, self.vocab_params / t + self.pos_params, 0.0)
        head_params = 0.0 if self.tied else self.vocab_params
        params = params + np.where(last, self.final_norm_params + head_params / t, 0.0)
        if self.tied:  # the last stage keeps a copy of the tied word embedding when pp > 1 (Megatron)
            params = params + np.where(last & (p > 1), self.vocab_params / t, 0.0)
        work = compute + tp_comm + cp_comm
        tau = work + p2p
        z3 = z == 3
        dc = d * c  # gradients reduce over the data- and context-parallel ranks
        dgpn = self.dp_group_gpn(t, d, c)
        if np.any(z3):
            gather = 2.0 * self.coll_groups("all_gather", PARAM_BYTES * params * dc, dc, dgpn, net)
            tau = np.where(z3, np.maximum(compute, gather) + tp_comm + cp_comm + p2p, tau)
        # Backward of one micro-batch on the stage at its base recomputation (with its communication): what a
        # bucketed reduction can overlap. (Layers recomputed beyond the base are left out, so the end term does
        # not depend on them: the partition solvers rely on it.)
        full_base = np.where(base == 2, n, 0.0)
        bwd = (n * (lt["bwd"] + tp + cpb) + full_base * (lt["fwd"] + tp + cpf)
               + np.where(base == 1, n, 0.0) * lt["attn_fwd"]
               + np.where(first, lt["emb_bwd"], 0.0) + np.where(last, lt["head_bwd"], 0.0))
        # End of iteration: gradient reduction, then the optimizer step.
        shard_opt = (z >= 1) | dopt
        grad_bytes = self.grad_reduce_bytes * params
        allreduce, rs, ag = self.coll_groups(("all_reduce", "reduce_scatter", "all_gather"),
                                             (grad_bytes, grad_bytes, PARAM_BYTES * params), dc, dgpn, net)
        sync = np.where(z3, rs, np.where(shard_opt, rs + ag, allreduce))
        if self.overlap_grad_reduce:
            buckets = np.maximum(1.0, np.ceil(params / GRAD_BUCKET_PARAMS))
            sync = np.maximum(sync - bwd / v, sync / buckets)
        if self.tied:  # after stage 0's reduction (Megatron's _allreduce_embedding_grads)
            emb_bytes = self.grad_reduce_bytes * self.vocab_params / t * np.ones_like(n)
            emb_gpn = np.where(kinds["emb"] == NVLINK, 2, 1)
            emb_sync = self.coll_groups("all_reduce", emb_bytes, 2, emb_gpn, kinds["emb"])
            sync = sync + np.where((p > 1) & first, emb_sync, 0.0)
        local = params / np.where(shard_opt, dc, 1)
        step = memory_bound_seconds(self.gpu, OPTIMIZER_STEP_BYTES * local, self.cal.class_params("add"))
        lead = i * self.mean_stage_backward(lt, p, v, base)
        end = sync + step - lead
        # Memory.
        mem_params = PARAM_BYTES * params / np.where(z3, dc, 1)
        mem_grads = GRAD_BYTES * params / np.where(z >= 2, dc, 1)
        mem_opt = OPTIMIZER_BYTES * params / np.where(shard_opt, dc, 1)
        act = self.activation_bytes(t, b, sp, base, n, n_full, first, last, c)
        inflight = np.where(v > 1, (2.0 * (p - i - 1) + (v - 1) * p + 1) / v, (p - i).astype(float))
        inflight = np.minimum(inflight, m)
        mem_act = act * inflight
        return {"tau": tau, "end": end, "compute": compute, "tp_comm": tp_comm, "cp_comm": cp_comm, "p2p": p2p,
                "sync": sync, "step": step, "bwd": bwd, "params": params,
                "mem_params": mem_params, "mem_grads": mem_grads, "mem_opt": mem_opt, "mem_act": mem_act,
                "mem_total": mem_params + mem_grads + mem_opt + mem_act, "inflight": inflight}

    def mean_stage_backward(self, lt, p, v, base) -> np.ndarray:
        """The cool-down lead of one stage over the next: the average stage's backward of one chunk (all layers
        at the base recomputation, embedding and head, spread over p stages and v chunks). The same for every
        layer split, so the partition solvers' end terms stay per stage; exact for equal stages."""
        L = self.spec.num_layers
        per_layer = lt["bwd"] + np.where(base == 2, lt["fwd"], np.where(base == 1, lt["attn_fwd"], 0.0))
        return (L * per_layer + lt["emb_bwd"] + lt["head_bwd"]) / (p * v)

    def activation_bytes(self, t, b, sp, base, n, n_full, first, last, c=1) -> np.ndarray:
        """Activation bytes one micro-batch leaves on a stage (Korthikanti et al. 2022, Table 2), on the rank's
        s/c tokens.

        Per layer, in units of s*b*h bytes at 2-byte activations: 10 not split by tensor parallelism (layer-norm
        inputs, QKV and MLP inputs, two dropout masks) + 24/t split (Q, K, V, projection input, MLP
        intermediates) + 5 a s / (h t) for the attention scores; sequence parallelism splits the first term
        too; selective recomputation (and FlashAttention) drops the score term; full recomputation keeps only
        the layer input (2 s b h, / t with sequence parallelism). The 24 is 8 (attention, with K, V scaled by
        the KV heads) + 4 f / h (MLP of width f; 6 f / h when gated).
        """
        spec = self.spec
        s = self.seq_len / np.asarray(c, float)
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
        """Iteration time and memory of plans with equal stages (no explicit partition), vectorised.

        On a homogeneous cluster three stages stand for all: the first (embedding), the last (LM head) and the
        middle stage with the slowest exchanges; the sum over stages counts every boundary's exchange. On a
        heterogeneous cluster every stage is priced."""
        L = self.spec.num_layers
        cfg = {**cfg}
        cfg.setdefault("c", np.ones_like(np.asarray(cfg["t"])))
        cfg.setdefault("pl", np.zeros_like(np.asarray(cfg["t"])))
        shape = np.broadcast(*[np.asarray(v) for v in cfg.values()]).shape
        cfg = {k: np.broadcast_to(np.asarray(v), shape) for k, v in cfg.items()}
        p = np.asarray(cfg["p"], int)
        n = L / p
        zeros = np.zeros(shape)
        base = np.asarray(cfg["base"], int)
        lt = self.layer_terms(cfg["t"], cfg["b"], cfg["sp"], cfg["c"])
        if self.G == 1:
            st0 = self.stage_terms(cfg, 0, n, zeros, lt=lt)
            stl = self.stage_terms(cfg, p - 1, n, zeros, lt=lt)
            S = np.asarray(cfg["t"], int) * np.asarray(cfg["c"], int) * np.asarray(cfg["d"], int)
            # The middle stage next to a node boundary has the slowest exchanges (all of them when S >= gpn).
            mid_i = np.where(S >= self.gpn, 1, np.maximum(1, self.gpn // np.maximum(S, 1) - 1))
            mid_i = np.where(mid_i <= p - 2, mid_i, 1)
            stm = self.stage_terms(cfg, np.minimum(mid_i, np.maximum(p - 1, 0)), n, zeros, lt=lt)
            single = p == 1
            p2p_sum = self._p2p_sum(cfg, lt)
            work = lambda st: st["tau"] - st["p2p"]  # noqa: E731
            tau_sum = np.where(single, st0["tau"], work(st0) + work(stl) + np.maximum(p - 2, 0) * work(stm)
                               + p2p_sum)
            tau_max = np.maximum(np.maximum(st0["tau"], stl["tau"]), np.where(p > 2, stm["tau"], 0.0))
            # Middle stages reduce alike; stage 1 has the shortest cool-down lead among them.
            st1_end = stm["end"] + (mid_i - 1) * self.mean_stage_backward(lt, p, np.asarray(cfg["v"]), base)
            end = np.maximum(np.maximum(st0["end"], stl["end"]), np.where(p > 2, st1_end, -np.inf))
            worst_last = stl["mem_total"] > st0["mem_total"]
            mem = {key: np.where(worst_last, stl[key], st0[key]) for key in
                   ("mem_params", "mem_grads", "mem_opt", "mem_act", "mem_total")}
            worst = np.where(worst_last, p - 1, 0)
            compute0 = st0["compute"]
        else:
            tau_sum, tau_max, end = np.zeros(shape), np.zeros(shape), np.full(shape, -np.inf)
            mem = {key: np.zeros(shape) for key in ("mem_params", "mem_grads", "mem_opt", "mem_act", "mem_total")}
            worst = np.zeros(shape, int)
            compute0 = None
            for i in range(int(p.max()) if p.size else 0):
                on = i < p
                st = self.stage_terms(cfg, np.minimum(i, p - 1), n, zeros, lt=lt)
                tau_sum = tau_sum + np.where(on, st["tau"], 0.0)
                tau_max = np.where(on, np.maximum(tau_max, st["tau"]), tau_max)
                end = np.where(on, np.maximum(end, st["end"]), end)
                more = on & (st["mem_total"] > mem["mem_total"])
                for key in mem:
                    mem[key] = np.where(more, st[key], mem[key])
                worst = np.where(more, i, worst)
                if compute0 is None:
                    compute0 = st["compute"]
        out = self._combine(cfg, tau_sum, tau_max, end, global_batch, full_frac=(base == 2).astype(float),
                            sel_frac=(base == 1).astype(float))
        out.update(mem)
        out["worst_stage"] = worst
        out["compute_s"] = np.asarray(cfg["m"]) * compute0
        return out

    def _p2p_sum(self, cfg, lt) -> np.ndarray:
        """Sum over stages of their pipeline exchanges (each boundary counted at both ends, v times). On a
        homogeneous cluster in closed form: boundary b crosses nodes unless stages b and b+1 share one, i.e. when
        S = t c d >= gpn, else (when S divides gpn) at every multiple of gpn; the interleaved wrap-around
        boundary (stage p-1 to 0) crosses unless the whole pipeline sits on one node."""
        p, v = np.asarray(cfg["p"], int), np.asarray(cfg["v"], int)
        S = np.asarray(cfg["t"], int) * np.asarray(cfg["c"], int) * np.asarray(cfg["d"], int)
        gpn = self.gpn
        q_nv, q_net = lt["q"][..., NVLINK], lt["q"][..., 2]
        crossing = np.where(S >= gpn, p - 1, ((p - 1) * S) // gpn)
        internal = crossing * q_net + (p - 1 - crossing) * q_nv
        wrap = np.where((v > 1) & (p > 1), np.where(p * S <= gpn, q_nv, q_net), 0.0)
        total = 2.0 * v * (internal + wrap)
        odd = (S < gpn) & (gpn % np.maximum(S, 1) != 0)
        if np.any(odd):  # stages straddle nodes: count boundary by boundary
            exact = np.zeros(p.shape)
            for i in range(int(p[odd].max())):
                on = odd & (i < p)
                kinds = self.stage_kinds(cfg, np.minimum(i, p - 1))
                q = (np.take_along_axis(lt["q"], kinds["prev"][..., None], axis=-1)[..., 0]
                     + np.take_along_axis(lt["q"], kinds["next"][..., None], axis=-1)[..., 0])
                exact = exact + np.where(on, v * q, 0.0)
            total = np.where(odd, exact, total)
        return total

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
        """Iteration terms of a plan priced stage by stage (an explicit partition, per-stage recompute counts, or a
        heterogeneous cluster)."""
        L, p = self.spec.num_layers, plan.pp
        sizes = plan.partition or (L // p,) * p
        rcl = plan.recompute_layers or (0,) * p
        cfg = plan_cfg(plan, m, self)
        stages = [self.stage_terms(cfg, i, sizes[i], rcl[i]) for i in range(p)]
        taus = [float(st["tau"]) for st in stages]
        ends = [float(st["end"]) for st in stages]
        base = RECOMPUTE_CODE[plan.recompute]
        full = L if base == 2 else sum(rcl)
        sel = (L - full) if base == 1 else 0
        out = self._combine(cfg, float(sum(taus)), max(taus), max(ends), global_batch, full / L, sel / L)
        return out, stages


def plan_cfg(plan: TrainingPlan, m: int, cm: CostModel | None = None) -> dict[str, Any]:
    """The cost model's knobs of a plan (`pl` registers its placement with `cm`)."""
    pl = cm.placement_id(plan.placement) if cm is not None else 0
    return {"t": plan.tp, "p": plan.pp, "d": plan.dp, "b": plan.micro_batch, "v": plan.virtual_stages,
            "sp": plan.sequence_parallel, "base": RECOMPUTE_CODE[plan.recompute], "z": plan.zero_stage,
            "dopt": plan.distributed_optimizer, "m": m, "c": plan.context_parallel, "pl": pl}


@lru_cache(maxsize=64)
def _cached_model(model, cluster, seq_len, flash_attention, calibration, overlap_grad_reduce) -> CostModel:
    return CostModel(model, cluster, seq_len, flash_attention=flash_attention, calibration=calibration,
                     overlap_grad_reduce=overlap_grad_reduce)


def cost_model(model, cluster, seq_len: int, *, flash_attention: bool = False, calibration=None,
               overlap_grad_reduce: bool = False) -> CostModel:
    """A (cached) CostModel; model and cluster are kernels names or objects."""
    spec = kernels.models.get(model)
    clus = kernels.get_cluster(cluster)
    try:
        return _cached_model(spec, clus, int(seq_len), bool(flash_attention), calibration, bool(overlap_grad_reduce))
    except TypeError:  # unhashable calibration object
        return CostModel(spec, clus, seq_len, flash_attention=flash_attention, calibration=calibration,
                         overlap_grad_reduce=overlap_grad_reduce)


def clear_caches() -> None:
    """Forget the cached per-layer operator prices and cost models (benchmarks time a cold start with it)."""
    _COMPUTE_CACHE.clear()
    _cached_model.cache_clear()


def memory_limit_bytes(cluster: Cluster, memory_limit_gib: float | None) -> float:
    return float(memory_limit_gib) * GIB if memory_limit_gib is not None else cluster.gpu.memory_bytes


def estimate_training(model, cluster, plan: TrainingPlan, *, seq_len: int, global_batch: int,
                      memory_limit_gib: float | None = None, flash_attention: bool = False, calibration=None,
                      overlap_grad_reduce: bool = False) -> TrainingEstimate:
    """Time, throughput and per-GPU memory of one training iteration of `plan` (the family's scorer).

    model / cluster: `sysgym.kernels` names or objects (`ModelSpec`, `Cluster`; a heterogeneous cluster lists
    node groups and `plan.placement` may assign stages to them). memory_limit_gib: per-GPU budget (default: the
    GPU's memory). overlap_grad_reduce: Megatron-Core's bucketed gradient reduction during the last backward
    (default off, as Megatron-LM SC'21). An illegal plan comes back with `feasible=False`, `rule` naming the
    broken rule and `reason` the detail; a legal plan that does not fit has rule "memory".
    """
    if not isinstance(plan, TrainingPlan):
        raise TypeError(f"plan must be a TrainingPlan, got {type(plan).__name__}")
    cm = cost_model(model, cluster, seq_len, flash_attention=flash_attention, calibration=calibration,
                    overlap_grad_reduce=overlap_grad_reduce)
    if int(global_batch) != global_batch or global_batch < 1:
        raise ValueError(f"global_batch must be a positive integer, got {global_batch!r}")
    global_batch = int(global_batch)
    limit = memory_limit_bytes(cm.cluster, memory_limit_gib)
    spec = cm.spec
    broken = legality(plan, num_layers=spec.num_layers, num_heads=spec.num_heads, num_gpus=cm.cluster.num_gpus,
                      seq_len=cm.seq_len, global_batch=global_batch, flash_attention=cm.flash_attention,
                      cluster=cm.cluster)
    if broken is not None:
        nan = float("nan")
        return TrainingEstimate(plan=plan, iteration_time_s=math.inf, tflops_per_gpu=0.0, mfu=0.0,
                                memory_gib=MemoryBreakdown(nan, nan, nan, nan, nan), feasible=False,
                                reason=f"illegal plan: {broken[0]}: {broken[1]}", rule=broken[0],
                                memory_limit_gib=limit / GIB)
    m = global_batch // (plan.dp * plan.micro_batch)
    staged = plan.partition is not None or plan.recompute_layers is not None or cm.G > 1
    if not staged:
        cfg = plan_cfg(plan, m, cm)
        out = cm.uniform(cfg, global_batch)
        worst = int(out["worst_stage"])
        mem = {k: float(out[k]) for k in ("mem_params", "mem_grads", "mem_opt", "mem_act", "mem_total")}
        stages = [cm.stage_terms(cfg, i, spec.num_layers // plan.pp, 0) for i in range(plan.pp)] \
            if plan.pp <= 512 else []
    else:
        out, stages = cm.partitioned(plan, global_batch, m)
        worst = int(np.argmax([float(st["mem_total"]) for st in stages]))
        mem = {k: float(stages[worst][k]) for k in ("mem_params", "mem_grads", "mem_opt", "mem_act", "mem_total")}
    stage_mem = tuple(float(st["mem_total"]) / GIB for st in stages)
    breakdown = MemoryBreakdown(parameters=mem["mem_params"] / GIB, gradients=mem["mem_grads"] / GIB,
                                optimizer=mem["mem_opt"] / GIB, activations=mem["mem_act"] / GIB,
                                total=mem["mem_total"] / GIB, stage=worst)
    time = float(out["time"])
    crit = max(stages, key=lambda st: float(st["tau"])) if stages else None
    tb = {"pipeline_s": float(out["pipeline"]), "bubble_s": float(out["pipeline"]) - m * float(out["tau_max"]),
          "grad_sync_and_optimizer_s": float(out["end"])}
    if crit is not None:
        tb.update(compute_s=m * float(crit["compute"]), tp_comm_s=m * float(crit["tp_comm"]),
                  cp_comm_s=m * float(crit["cp_comm"]), p2p_s=m * float(crit["p2p"]),
                  grad_sync_s=float(max(float(st["sync"]) for st in stages)),
                  optimizer_s=float(max(float(st["step"]) for st in stages)))
    feasible = mem["mem_total"] <= limit
    reason = None if feasible else (f"out of memory: stage {worst} needs {mem['mem_total'] / GIB:.1f} GiB per GPU, "
                                    f"the limit is {limit / GIB:.1f} GiB")
    return TrainingEstimate(plan=plan, iteration_time_s=time, tflops_per_gpu=float(out["tflops"]),
                            mfu=float(out["mfu"]), memory_gib=breakdown, feasible=bool(feasible), reason=reason,
                            rule=None if feasible else "memory", num_microbatches=m, memory_limit_gib=limit / GIB,
                            time_breakdown_s=tb, stage_memory_gib=stage_mem)
