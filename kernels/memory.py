"""Memory footprints: weights and KV cache, per dtype and parallel split."""
from __future__ import annotations

from .models import ModelSpec, get

DTYPE_BYTES = {
    "fp32": 4, "float32": 4, "tf32": 4,
    "bf16": 2, "bfloat16": 2, "fp16": 2, "float16": 2, "half": 2,
    "fp8": 1, "float8": 1, "int8": 1,
    "int4": 0.5,
}


def dtype_bytes(dtype: str) -> float:
    try:
        return DTYPE_BYTES[str(dtype).lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; known: {', '.join(sorted(DTYPE_BYTES))}") from None


def _check_split(**degrees: int) -> None:
    for name, value in degrees.items():
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def weight_bytes(model: str | ModelSpec, dtype: str = "bf16", tp: int = 1, pp: int = 1) -> float:
    """Weight bytes held by one GPU: layers split over pp stages, matrices over tp ranks.

    The embedding and LM head are each charged whole to one pipeline stage (first/last), sharded over
    tp (vocab-parallel); with pp == 1 both sit on the same GPU. Returns the largest stage's share.
    """
    _check_split(tp=tp, pp=pp)
    m = get(model)
    b = dtype_bytes(dtype)
    layers_per_stage = -(-m.num_layers // pp)
    layers = layers_per_stage * m.layer_params() / tp
    tied = m.learned_pos_emb
    emb = m.embedding_params() / tp
    head = 0 if tied else m.vocab_size * m.hidden_size / tp
    final_norm = m.hidden_size * (2 if m.bias else 1)  # replicated, not split over tp
    ends = emb + head + final_norm if pp == 1 else max(emb, head + final_norm)
    return (layers + ends) * b


def kv_bytes_per_token(model: str | ModelSpec, dtype: str = "bf16", tp: int = 1) -> float:
    """KV-cache bytes one token costs on one GPU, all layers: 2 (K,V) x layers x kv_heads/tp x head_dim.

    KV heads are replicated when tp exceeds their number (as vLLM and Megatron do).
    """
    _check_split(tp=tp)
    m = get(model)
    kv_heads_per_gpu = max(1.0, m.num_kv_heads / tp)
    return 2 * m.num_layers * kv_heads_per_gpu * m.head_dim * dtype_bytes(dtype)
