"""The operators of one transformer layer and their sizes (vidur's operator names)."""
from __future__ import annotations

import numpy as np

from .models import ModelSpec

GEMM_OPS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")
# Operator -> class whose fitted efficiencies price it.
OP_CLASS = {
    "attn_pre_proj": "gemm", "attn_post_proj": "gemm", "mlp_up_proj": "gemm", "mlp_down_proj": "gemm",
    "input_layernorm": "norm", "post_attention_layernorm": "norm",
    "mlp_act": "act", "attn_rope": "rope", "add": "add", "emb": "emb",
}
LAYER_OPS = tuple(OP_CLASS)


def gemm_shapes(model: ModelSpec, tp: int) -> dict[str, tuple[float, float]]:
    """(n, k) of each tensor-parallel linear layer (Megatron column/row split); m is num_tokens."""
    h, f, hd = model.hidden_size, model.ffn_hidden_size, model.head_dim
    heads = model.num_heads / tp
    kv_heads = max(1.0, model.num_kv_heads / tp)  # KV heads replicate when tp > num_kv_heads
    up = (2 if model.gated_mlp else 1) * f / tp
    return {
        "attn_pre_proj": ((heads + 2 * kv_heads) * hd, h),
        "attn_post_proj": (h, heads * hd),
        "mlp_up_proj": (up, h),
        "mlp_down_proj": (h, f / tp),
    }


def memory_op_bytes(model: ModelSpec, num_tokens, tp: int, dtype_bytes: float) -> dict[str, np.ndarray]:
    """Bytes each bandwidth-bound operator reads plus writes."""
    t = np.asarray(num_tokens, dtype=float)
    h, f, hd = model.hidden_size, model.ffn_hidden_size, model.head_dim
    heads = model.num_heads / tp
    kv_heads = max(1.0, model.num_kv_heads / tp)
    act_tensors = 3 if model.gated_mlp else 2  # SwiGLU reads gate and up, writes one; GeLU reads one
    norm = (2 * t * h + h) * dtype_bytes  # read x, write y, read the weight vector
    return {
        "input_layernorm": norm,
        "post_attention_layernorm": norm,
        "mlp_act": act_tensors * t * f / tp * dtype_bytes,
        # RoPE rewrites q and k in place and reads the cos/sin cache rows.
        "attn_rope": (2 * t * (heads + kv_heads) * hd + t * hd) * dtype_bytes,
        "add": 3 * t * h * dtype_bytes,
        "emb": 2 * t * h * dtype_bytes,  # gather rows from the (vocab-parallel) table, write them
    }
