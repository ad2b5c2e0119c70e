"""Seeded instances: windows of held-out stdlib source, a budget and a model.

Presets (sequence lengths and the 20 % budget follow H2O's headline setting, Zhang et al. NeurIPS 2023:
"20 % heavy hitters" = a KV budget of 20 % of the sequence):
* `tiny`: the test model, 2 sequences of 64 tokens (MILP in well under a second);
* `small`: the default model, 2 sequences of 128 tokens (the MILP's short-trace preset);
* `default`: the default model, 8 sequences of 256 tokens (`evaluate_policy`'s defaults);
* `bench`: the default model, 64 sequences of 512 tokens (the issue's speed target).
"""
from __future__ import annotations

import numpy as np

from sysgym.envs.kv_eviction.corpus import load_corpus
from sysgym.envs.kv_eviction.instance import KvInstance
from sysgym.envs.kv_eviction.model import get_model, resolve_config
from sysgym.envs.kv_eviction.presets import PRESETS
from sysgym.errors import InvalidInstanceError, UnknownNameError
from sysgym.instances import format_spec


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


def generate(*, seed: int = 0, preset: str | None = None, model: str | None = None, num_sequences: int | None = None,
             seq_len: int | None = None, budget: float | int | None = None, prompt_len: int | None = None,
             progress: bool = True) -> KvInstance:
    """Sequences drawn from the held-out split with `np.random.default_rng(seed)`.

    `prompt_len` defaults to half the sequence; `budget` is a fraction of `seq_len` or a token count.
    """
    if preset is not None and preset not in PRESETS:
        raise UnknownNameError("kv_eviction preset", preset, PRESETS)
    base = dict(PRESETS[preset or "default"])
    given = {"model": model, "num_sequences": num_sequences, "seq_len": seq_len, "budget": budget,
             "prompt_len": prompt_len}
    params = {k: v for k, v in given.items() if v is not None}
    cfg = {**base, **params}
    from sysgym.envs.kv_eviction.hf import is_hf, sample_hf_tokens

    if is_hf(cfg["model"]):
        loaded = get_model(cfg["model"])
        t, n = int(cfg["seq_len"]), int(cfg["num_sequences"])
        if t > loaded.cfg.ctx:
            raise InvalidInstanceError(f"seq_len {t} exceeds {cfg['model']}'s context of {loaded.cfg.ctx} tokens")
        tokens = sample_hf_tokens(loaded, np.random.default_rng(seed), n, t)
        return KvInstance(tokens=tokens, budget=budget_tokens(cfg["budget"], t),
                          prompt_len=int(cfg.get("prompt_len") or t // 2), model=cfg["model"],
                          model_digest=loaded.digest,
                          name=format_spec("kv_eviction", preset or "default", seed, params))
    name, mcfg = resolve_config(cfg["model"])
    t = int(cfg["seq_len"])
    if t > mcfg.ctx:
        raise InvalidInstanceError(f"seq_len {t} exceeds model {name!r}'s context of {mcfg.ctx} tokens")
    n = int(cfg["num_sequences"])
    if n < 1:
        raise InvalidInstanceError(f"num_sequences must be >= 1, got {n}")
    p = int(cfg.get("prompt_len") or t // 2)
    b = budget_tokens(cfg["budget"], t)
    corpus = load_corpus(mcfg.max_train_bytes)
    tokens = corpus.sample("eval", np.random.default_rng(seed), n, t)
    loaded = get_model(cfg["model"], progress=progress)
    return KvInstance(tokens=tokens, budget=b, prompt_len=p, model=name, model_digest=loaded.digest,
                      name=format_spec("kv_eviction", preset or "default", seed, params))
