"""Transformer shapes (`ModelSpec`), named presets and parameter counts.

`sysgym.kernels.models.get("llama-2-7b")` and `sysgym.kernels.models.list()`.
"""
from __future__ import annotations

import builtins
import dataclasses
from dataclasses import dataclass

from ._data import load_yaml, unknown_name_error


@dataclass(frozen=True)
class ModelSpec:
    hidden_size: int
    ffn_hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int | None = None
    vocab_size: int = 32000
    gated_mlp: bool = True
    max_seq_len: int = 4096
    num_experts: int | None = None  # MoE: experts per layer (each an MLP of ffn_hidden_size)
    top_k: int | None = None  # MoE: experts each token is routed to
    learned_pos_emb: bool = False  # GPT-style absolute position table (adds max_seq_len x hidden)
    bias: bool = False  # GPT-style biases on linear layers and LayerNorm
    name: str = ""
    source: str = ""

    def __post_init__(self):
        if self.num_kv_heads is None:
            object.__setattr__(self, "num_kv_heads", self.num_heads)
        for field in ("hidden_size", "ffn_hidden_size", "num_layers", "num_heads", "num_kv_heads",
                      "vocab_size", "max_seq_len"):
            if getattr(self, field) <= 0:
                raise ValueError(f"ModelSpec.{field} must be positive, got {getattr(self, field)}")
        if self.hidden_size % self.num_heads:
            raise ValueError("hidden_size must be a multiple of num_heads")
        if self.num_heads % self.num_kv_heads:
            raise ValueError("num_heads must be a multiple of num_kv_heads")
        if (self.num_experts is None) != (self.top_k is None):
            raise ValueError("MoE needs both num_experts and top_k")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def is_moe(self) -> bool:
        return bool(self.num_experts)

    @property
    def qkv_size(self) -> int:
        """Output width of the fused QKV projection."""
        return (self.num_heads + 2 * self.num_kv_heads) * self.head_dim

    def mlp_params(self) -> int:
        """Weights of one (dense) MLP: up (x2 when gated) and down projections."""
        return (3 if self.gated_mlp else 2) * self.hidden_size * self.ffn_hidden_size

    def layer_params(self) -> int:
        """Parameters of one transformer layer (all experts counted for MoE)."""
        h = self.hidden_size
        attn = h * self.qkv_size + h * h
        experts = self.num_experts or 1
        mlp = experts * self.mlp_params() + (h * self.num_experts if self.is_moe else 0)  # + router
        norms = 2 * h * (2 if self.bias else 1)
        bias = (self.qkv_size + h + experts * ((2 if self.gated_mlp else 1) * self.ffn_hidden_size + h)
                if self.bias else 0)
        return attn + mlp + norms + bias

    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size + (self.max_seq_len * self.hidden_size
                                                     if self.learned_pos_emb else 0)

    def num_params(self, *, tied_embeddings: bool | None = None) -> int:
        """Total parameters. GPT-style models tie the LM head to the embedding; LLaMA-style do not."""
        tied = self.learned_pos_emb if tied_embeddings is None else tied_embeddings
        head = 0 if tied else self.vocab_size * self.hidden_size
        final_norm = self.hidden_size * (2 if self.bias else 1)
        return self.num_layers * self.layer_params() + self.embedding_params() + head + final_norm

    def active_params(self) -> int:
        """Parameters touched per token (MoE: only top_k experts)."""
        if not self.is_moe:
            return self.num_params()
        idle = (self.num_experts - self.top_k) * self.mlp_params() * self.num_layers
        return self.num_params() - idle

    def replace(self, **changes) -> ModelSpec:
        return dataclasses.replace(self, **changes)


def list() -> builtins.list[str]:  # noqa: A001 - the public API is models.list()
    return sorted(load_yaml("models.yaml"))


def get(name: str | ModelSpec) -> ModelSpec:
    """A preset by name (case-insensitive); a ModelSpec passes through."""
    if isinstance(name, ModelSpec):
        return name
    table = load_yaml("models.yaml")
    key = str(name).lower()
    if key not in table:
        raise unknown_name_error("model", name, builtins.list(table))
    return ModelSpec(name=key, **table[key])


def num_params(model: str | ModelSpec, **kwargs) -> int:
    return get(model).num_params(**kwargs)
