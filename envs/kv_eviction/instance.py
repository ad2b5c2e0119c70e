"""The token-level KV-eviction instance: teacher-forced sequences, a model, a cache budget.

`tokens` (N, T) are BOS + held-out stdlib bytes. The first `prompt_len` tokens are the prompt (prefilled
with the full cache, as a serving engine does); from step `prompt_len` on, every query may attend to at
most `budget` cached tokens (itself included). Losses are scored on the decode positions
`prompt_len .. T-2` (each predicts the next token of the sequence).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sysgym.errors import InvalidInstanceError, TraceFormatError
from sysgym.instances import InstanceBase, read_json, require_fields

FORMAT = "sysgym.kv_eviction.instance/1"


@dataclass(frozen=True, eq=False)
class KvInstance(InstanceBase):
    """Immutable problem instance (see the module doc); `name` is its replayable spec."""

    FORMAT = FORMAT

    tokens: np.ndarray  # (N, T) int64
    budget: int  # tokens a query may attend to (itself included), per group
    prompt_len: int
    model: str = "default"  # named model configuration (sysgym.envs.kv_eviction.model.CONFIGS)
    model_digest: str = ""  # hash of the weights the instance was made for ("" = any)
    name: str = "kv_eviction/custom"

    def __post_init__(self) -> None:
        arr = np.array(self.tokens, dtype=np.int64)
        arr.setflags(write=False)
        object.__setattr__(self, "tokens", arr)
        object.__setattr__(self, "budget", int(self.budget))
        object.__setattr__(self, "prompt_len", int(self.prompt_len))
        validate(self)

    @property
    def num_sequences(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.tokens.shape[1])

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "name": self.name, "budget": self.budget, "prompt_len": self.prompt_len,
                "model": self.model, "model_digest": self.model_digest, "tokens": self.tokens.tolist()}


def validate(inst: KvInstance) -> None:
    from sysgym.envs.kv_eviction.corpus import VOCAB_SIZE

    if inst.tokens.ndim != 2 or inst.tokens.shape[0] == 0:
        raise InvalidInstanceError(f"{inst.name}: tokens must be a non-empty (N, T) array, got {inst.tokens.shape}")
    t = inst.seq_len
    if t < 3:
        raise InvalidInstanceError(f"{inst.name}: sequences need at least 3 tokens, got {t}")
    vocab = 2**31 if str(inst.model).startswith("hf:") else VOCAB_SIZE  # a HF model checks its own ids
    if (inst.tokens < 0).any() or (inst.tokens >= vocab).any():
        raise InvalidInstanceError(f"{inst.name}: token ids must be in 0..{VOCAB_SIZE - 1}")
    if not 1 <= inst.prompt_len <= t - 2:
        raise InvalidInstanceError(f"{inst.name}: prompt_len {inst.prompt_len} must be in 1..{t - 2} "
                                   f"(sequence length {t})")
    if not 2 <= inst.budget <= t:
        raise InvalidInstanceError(f"{inst.name}: budget {inst.budget} tokens must be in 2..{t}")


def save(inst: KvInstance, path: str | Path) -> Path:
    return inst.save(path)


def load(path: str | Path) -> KvInstance:
    """Load a saved token-level instance (JSON, format `sysgym.kv_eviction.instance/1`)."""
    data = read_json(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise TraceFormatError(f"{path}: not a kv_eviction instance (format {FORMAT!r})")
    require_fields(data, ("tokens", "budget", "prompt_len", "model"), path)
    try:
        return KvInstance(tokens=np.array(data["tokens"]), budget=data["budget"], prompt_len=data["prompt_len"],
                          model=data["model"], model_digest=data.get("model_digest", ""),
                          name=data.get("name", f"kv_eviction/file:{path}"))
    except (TypeError, ValueError, OverflowError) as exc:
        if isinstance(exc, InvalidInstanceError):
            raise
        raise TraceFormatError(f"{path}: malformed instance field ({exc})") from None
