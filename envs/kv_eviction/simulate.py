"""Runs a policy while the model decodes: the online side (the evaluator re-scores its schedule).

The decoder prefills the prompt with the full cache, then adds one token per step. Before token t
enters, each group's cache holds its surviving tokens of 0..t-1; if that plus token t exceeds the budget,
the policy's lowest-scored tokens are evicted (ties: oldest first). Evicted tokens never come back, so a
schedule is fully described by `evict_step[n, gl, gh, j]`: the first step at which token j is no longer
attended to (`T` if never). The policy observes the attention the model actually computes with the
evicted cache (as a real H2O/TOVA deployment does).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from sysgym.envs.kv_eviction.instance import KvInstance
from sysgym.envs.kv_eviction.model import LoadedModel, get_model
from sysgym.envs.kv_eviction.policies import FullCache, TokenPolicy, group_shape


@dataclass
class SimResult:
    evict_step: np.ndarray  # (N, GL, GH, T) int32
    granularity: str
    logits: torch.Tensor  # (N, T, V) from the incremental decoder
    wall_time_s: float
    stats: dict[str, Any] = field(default_factory=dict)

    def decisions(self, *, reference: bool = False) -> dict[str, Any]:
        return {"evict_step": self.evict_step, "granularity": self.granularity, "reference": reference}


def instance_model(inst: KvInstance, *, progress: bool = True) -> LoadedModel:
    """The instance's model; refuses weights other than those the instance was made for."""
    from sysgym.errors import InvalidInstanceError

    loaded = get_model(inst.model, progress=progress)
    if inst.model_digest and loaded.digest != inst.model_digest:
        raise InvalidInstanceError(
            f"{inst.name} was made for model {inst.model!r} with weights {inst.model_digest}, but the cached "
            f"model has weights {loaded.digest} (another torch build or corpus); regenerate the instance")
    return loaded


def evict_to_budget(scores: np.ndarray, present: np.ndarray, budget: int) -> np.ndarray:
    """Which present tokens to evict so that present + the incoming token fits `budget` (per group)."""
    need = present.sum(-1) + 1 - budget  # (N, GL, GH)
    if need.max() <= 0:
        return np.zeros_like(present)
    key = np.where(present, scores, np.inf)
    if need.max() == 1:  # the steady state: one token per group, argmin keeps the oldest of ties
        drop = np.zeros_like(present)
        np.put_along_axis(drop, key.argmin(-1)[..., None], True, -1)
        return drop & (need >= 1)[..., None] & present
    order = np.argsort(key, axis=-1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.broadcast_to(np.arange(key.shape[-1]), key.shape), -1)
    return (ranks < need[..., None]) & present


def run_policy(inst: KvInstance, policy: TokenPolicy, *, seed: int = 0, chunk: int = 64,
               progress: bool = False) -> SimResult:
    """Decode every sequence of `inst` while `policy` evicts; returns its schedule and the logits."""
    loaded = instance_model(inst)
    n, t_len = inst.tokens.shape
    p, budget = inst.prompt_len, inst.budget
    if isinstance(policy, FullCache):
        budget = t_len
    gl, gh = group_shape(policy.granularity, loaded.n_layer, loaded.n_head)
    evict = np.full((n, gl, gh, t_len), t_len, np.int32)
    logits_all = []
    t0 = time.perf_counter()
    steps = range(0, n, chunk)
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, desc=f"{policy.name} decoding", leave=False, disable=None)
    with torch.no_grad():
        for c0 in steps:
            tokens = torch.from_numpy(inst.tokens[c0:c0 + chunk].copy())
            m = tokens.shape[0]
            policy.reset(num_seqs=m, n_layer=loaded.n_layer, n_head=loaded.n_head, seq_len=t_len, budget=budget,
                         prompt_len=p, seed=seed + c0)
            dec = loaded.module.start(tokens, p)
            logits_p, attn_p = dec.prefill()
            policy.observe(0, attn_p.numpy())
            out = [logits_p]
            present = np.ones((m, gl, gh, p), bool)
            for t in range(p, t_len):
                if present.sum(-1).max() + 1 > budget:
                    drop = evict_to_budget(policy.scores(t, present), present, budget)
                    if drop.any():
                        evict[c0:c0 + m][..., :t][drop] = t
                        present = present & ~drop
                present = np.concatenate([present, np.ones((m, gl, gh, 1), bool)], axis=-1)
                logit, attn = dec.step(t, torch.from_numpy(present))
                out.append(logit[:, None])
                policy.observe(t, attn.numpy()[:, :, :, None, :])
            logits_all.append(torch.cat(out, 1))
    wall = time.perf_counter() - t0
    return SimResult(evict, policy.granularity, torch.cat(logits_all, 0), wall,
                     {"tokens_per_s": n * (t_len - p) / max(wall, 1e-9), "policy": policy.name, **policy.params})


def decode_nll(logits: torch.Tensor, tokens: torch.Tensor, prompt_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position NLL (N, D) and argmax (N, D) on decode positions prompt_len .. T-2."""
    lg = logits[:, prompt_len:-1]
    tgt = tokens[:, prompt_len + 1:]
    nll = F.cross_entropy(lg.reshape(-1, lg.shape[-1]).float(), tgt.reshape(-1), reduction="none").view(tgt.shape)
    return nll, lg.argmax(-1)
