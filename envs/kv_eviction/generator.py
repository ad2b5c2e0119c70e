"""Seeded instances: windows of held-out stdlib source, a budget and a model.

Presets (sequence lengths and the 20 % budget follow H2O's headline setting, Zhang et al. NeurIPS 2023:
"20 % heavy hitters" = a KV budget of 20 % of the sequence):
* `tiny`: the test model, 2 sequences of 64 tokens (MILP in well under a second; `KvEviction-v0`'s default);
* `small`: the default model, 2 sequences of 128 tokens (the MILP's short-trace preset);
* `default`: the default model, 8 sequences of 256 tokens (`evaluate_policy`'s defaults);
* `bench`: the default model, 64 sequences of 512 tokens (the issue's speed target).

This module imports torch only when an instance is made (registering the family does not load it); the
named models' weights ship with the package (no training on first use; a custom `ModelConfig` trains on first
use and is cached).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from sysgym.envs.kv_eviction.instance import KvInstance
from sysgym.errors import InvalidInstanceError, UnknownNameError
from sysgym.generators import Generator
from sysgym.specs import format_spec

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"model": "tiny", "num_sequences": 2, "seq_len": 64, "budget": 0.25},
    "small": {"model": "default", "num_sequences": 2, "seq_len": 128, "budget": 0.2},
    "default": {"model": "default", "num_sequences": 8, "seq_len": 256, "budget": 0.2},
    "bench": {"model": "default", "num_sequences": 64, "seq_len": 512, "budget": 0.2},
}


def budget_tokens(budget: float | int, seq_len: int) -> int:
    """A budget given as a fraction of the sequence (0 < b <= 1, a float) or a token count (an int > 1)."""
    if isinstance(budget, bool):
        raise InvalidInstanceError(f"budget must be a number, got {budget!r}")
    if isinstance(budget, (int, np.integer)) and budget > 1:
        tokens = int(budget)
    elif 0 < float(budget) <= 1:
        tokens = int(round(float(budget) * seq_len))
    else:
        raise InvalidInstanceError(f"budget must be a fraction in (0, 1] or a token count > 1, got {budget!r}")
    if tokens > seq_len:
        raise InvalidInstanceError(f"budget of {tokens} tokens exceeds the sequence length {seq_len}")
    return max(2, tokens)


def generate_v0(*, seed: int = 0, preset: str | None = None, model: str | None = None,
                num_sequences: int | None = None, seq_len: int | None = None, budget: float | int | None = None,
                prompt_len: int | None = None, progress: bool = True) -> KvInstance:
    """Sequences drawn from the held-out split with `np.random.default_rng(seed)`.

    `preset` fills defaults (`default` when None); explicit arguments override them. `prompt_len` defaults to
    half the sequence; `budget` is a fraction of `seq_len` or a token count.
    """
    from sysgym.envs.kv_eviction.corpus import load_corpus
    from sysgym.envs.kv_eviction.hf import is_hf, sample_hf_tokens
    from sysgym.envs.kv_eviction.model import get_model, resolve_config

    if preset is not None and preset not in PRESETS:
        raise UnknownNameError("kv_eviction preset", preset, PRESETS)
    base = dict(PRESETS[preset or "default"])
    given = {"model": model, "num_sequences": num_sequences, "seq_len": seq_len, "budget": budget,
             "prompt_len": prompt_len}
    params = {k: v for k, v in given.items() if v is not None}
    cfg = {**base, **params}
    name = format_spec("kv_eviction", preset or "default", seed, params)
    if is_hf(cfg["model"]):
        loaded = get_model(cfg["model"])
        t, n = int(cfg["seq_len"]), int(cfg["num_sequences"])
        if t > loaded.cfg.ctx:
            raise InvalidInstanceError(f"seq_len {t} exceeds {cfg['model']}'s context of {loaded.cfg.ctx} tokens")
        tokens = sample_hf_tokens(loaded, np.random.default_rng(seed), n, t)
        return KvInstance(tokens=tokens, budget=budget_tokens(cfg["budget"], t),
                          prompt_len=int(cfg.get("prompt_len") or t // 2), model=cfg["model"],
                          model_digest=loaded.digest, name=name)
    model_name, mcfg = resolve_config(cfg["model"])
    t = int(cfg["seq_len"])
    if t > mcfg.ctx:
        raise InvalidInstanceError(f"seq_len {t} exceeds model {model_name!r}'s context of {mcfg.ctx} tokens")
    n = int(cfg["num_sequences"])
    if n < 1:
        raise InvalidInstanceError(f"num_sequences must be >= 1, got {n}")
    p = int(cfg.get("prompt_len") or t // 2)
    b = budget_tokens(cfg["budget"], t)
    corpus = load_corpus(mcfg.max_train_bytes)
    tokens = corpus.sample("eval", np.random.default_rng(seed), n, t)
    loaded = get_model(cfg["model"], progress=progress)
    return KvInstance(tokens=tokens, budget=b, prompt_len=p, model=model_name, model_digest=loaded.digest, name=name)


# The family's generator: v0 is what every spec without a version suffix names. "custom" (and no preset)
# starts from the `default` preset, as `generate` always did, and names the instance `kv_eviction/default?...`.
GENERATOR = Generator("kv_eviction", presets=PRESETS, versions={0: generate_v0}, default_preset="default")
generate = GENERATOR
