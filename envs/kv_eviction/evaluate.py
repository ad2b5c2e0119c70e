"""The token-level KV-eviction evaluator: the family's only scorer (DESIGN.md contract 2).

A solution's decisions are an eviction schedule `evict_step` (N, GL, GH, T) (see simulator.py) with its
`granularity`. The evaluator checks it (each token present at its own step, nothing evicted during the
prompt, at most `budget` attended tokens per group at every scored decode step P .. T-2), then runs the model once with
the full cache and once with the kept-token mask of every step (a teacher-forced parallel forward whose
mask row t is the cache at step t: identical to decoding with that cache), and reports on the decode
positions prompt_len .. T-2:

* `loss_increase` (nats/token, the leaderboard objective, lower is better; `loss_increase_per_sequence`
  gives each sequence's) and `perplexity_ratio`
  = exp(loss_increase); `loss`, `loss_full`, `perplexity`, `perplexity_full`;
* `top1_agreement`: share of positions whose most likely next token equals the full cache's;
* `attention_mass`: the full-cache attention (mean over layers, heads, positions) that falls on kept keys;
* `cache_tokens`: the largest number of tokens attended at a step; `budget_tokens`.

A schedule marked `reference=True` (the full cache) may exceed the budget; it is reported with
`within_budget=False`. Any other schedule over budget raises InfeasibleSolutionError.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from sysgym.envs.kv_eviction.instance import KvInstance
from sysgym.envs.kv_eviction.simulator import GRANULARITIES, aggregate, decode_nll, group_shape, instance_model
from sysgym.errors import InfeasibleSolutionError
from sysgym.solution import Solution


def as_schedule(solution: Any) -> tuple[np.ndarray, str, bool]:
    decisions = solution.decisions if isinstance(solution, Solution) else solution
    if isinstance(decisions, np.ndarray):
        decisions = {"evict_step": decisions, "granularity": "sequence"}
    if not isinstance(decisions, dict) or "evict_step" not in decisions:
        raise InfeasibleSolutionError("format", "decisions must be a dict with 'evict_step' (N, GL, GH, T) "
                                      "and 'granularity'")
    gran = decisions.get("granularity", "sequence")
    if gran not in GRANULARITIES:
        raise InfeasibleSolutionError("format", f"granularity {gran!r} is not one of {GRANULARITIES}")
    try:
        e = np.asarray(decisions["evict_step"])
        if e.dtype.kind == "f" and not np.all(np.mod(e, 1) == 0):
            raise ValueError
        e = e.astype(np.int64)
    except (TypeError, ValueError):
        raise InfeasibleSolutionError("format", "evict_step must be an integer array") from None
    return e, gran, bool(decisions.get("reference", False))


def cache_counts(e: np.ndarray) -> np.ndarray:
    """(..., T) eviction steps -> (..., T) number of tokens attended at each step t (j <= t < e_j)."""
    t_len = e.shape[-1]
    diff = np.zeros(e.shape[:-1] + (t_len + 1,), np.int64)
    diff[..., :t_len] += 1
    flat = diff.reshape(-1, t_len + 1)
    ef = e.reshape(-1, t_len)
    for g in range(flat.shape[0]):
        np.add.at(flat[g], ef[g], -1)
    return np.cumsum(diff, -1)[..., :t_len]


def check_schedule(inst: KvInstance, e: np.ndarray, gran: str, reference: bool, n_layer: int, n_head: int) -> int:
    n, t_len = inst.tokens.shape
    gl, gh = group_shape(gran, n_layer, n_head)
    if e.shape != (n, gl, gh, t_len):
        raise InfeasibleSolutionError("shape", f"evict_step has shape {e.shape}; granularity {gran!r} on this "
                                      f"instance needs {(n, gl, gh, t_len)}")
    j = np.arange(t_len)
    bad = e <= j
    if bad.any():
        idx = tuple(int(x) for x in np.argwhere(bad)[0])
        raise InfeasibleSolutionError("present at own step", f"token {idx[-1]} (group {idx[:-1]}) is evicted at "
                                      f"step {int(e[idx])}, before or at its own step")
    if (e > t_len).any():
        raise InfeasibleSolutionError("range", f"evict_step values must be <= T = {t_len}")
    early = e[..., :inst.prompt_len] < inst.prompt_len
    if early.any():
        idx = tuple(int(x) for x in np.argwhere(early)[0])
        raise InfeasibleSolutionError("no eviction during the prompt",
                                      f"token {idx[-1]} (group {idx[:-1]}) is evicted at step {int(e[idx])}, "
                                      f"inside the prompt of {inst.prompt_len} tokens")
    counts = cache_counts(e)[..., inst.prompt_len:t_len - 1]  # the scored steps P .. T-2
    peak = int(counts.max())
    if peak > inst.budget and not reference:
        idx = tuple(int(x) for x in np.argwhere(counts > inst.budget)[0])
        raise InfeasibleSolutionError("budget", f"group {idx[:-1]} attends to {int(counts[idx])} tokens at step "
                                      f"{idx[-1] + inst.prompt_len}; the budget is {inst.budget}")
    return peak


def keep_mask(e: np.ndarray) -> torch.Tensor:
    """(N, GL, GH, T) eviction steps -> (N, GL, GH, T, T) mask of step t seeing key j."""
    t_len = e.shape[-1]
    t = np.arange(t_len)[:, None]
    j = np.arange(t_len)[None, :]
    return torch.from_numpy((j <= t) & (t < e[..., None, :]))


@torch.no_grad()
def evaluate(instance: KvInstance, solution: Solution | dict | np.ndarray, *, chunk: int = 8) -> dict[str, Any]:
    """Score an eviction schedule on its instance with the real model (see the module docstring)."""
    loaded = instance_model(instance)
    e, gran, reference = as_schedule(solution)
    peak = check_schedule(instance, e, gran, reference, loaded.n_layer, loaded.n_head)
    model = loaded.module
    p = instance.prompt_len
    nll_f, nll_m, agree, mass = [], [], [], []
    for c0 in range(0, instance.num_sequences, chunk):
        tokens = torch.from_numpy(instance.tokens[c0:c0 + chunk].copy())
        keep = keep_mask(e[c0:c0 + chunk])
        logits_full, attn = model(tokens, need_attn=True)
        logits_mask, _ = model(tokens, keep=keep)
        nf, af = decode_nll(logits_full, tokens, p)
        nm, am = decode_nll(logits_mask, tokens, p)
        nll_f.append(nf)
        nll_m.append(nm)
        agree.append(af == am)
        for li, a in enumerate(attn):  # a: (m, H, T, T)
            kl = keep[:, li if keep.shape[1] > 1 else 0]  # (m, GH, T, T)
            kept = (a * kl).sum(-1)[:, :, p:-1]  # (m, H, D)
            mass.append(kept.reshape(-1))
    loss_full = float(torch.cat([x.reshape(-1) for x in nll_f]).double().mean())
    loss = float(torch.cat([x.reshape(-1) for x in nll_m]).double().mean())
    inc = loss - loss_full
    per_seq = (torch.cat(nll_m).double().mean(1) - torch.cat(nll_f).double().mean(1)).tolist()
    return {
        "loss_increase": inc,
        "loss_increase_per_sequence": per_seq,  # each sequence's own figure (the mean over them is loss_increase)
        "objective": inc,  # the family objective under the generic name the runner prints
        "perplexity_ratio": math.exp(inc),
        "top1_agreement": float(torch.cat([x.reshape(-1) for x in agree]).double().mean()),
        "attention_mass": float(torch.cat(mass).double().mean()),
        "loss": loss, "loss_full": loss_full, "perplexity": math.exp(loss), "perplexity_full": math.exp(loss_full),
        "budget_tokens": instance.budget, "cache_tokens": peak, "within_budget": peak <= instance.budget,
        "granularity": gran, "reference": reference, "feasible": True,
        "tokens_scored": int(instance.num_sequences * (instance.seq_len - p - 1)),
    }


@torch.no_grad()
def full_attention(instance: KvInstance, granularity: str = "sequence", *, chunk: int = 8) -> np.ndarray:
    """The full-cache attention aggregated to the granularity's groups: (N, GL, GH, T, T) float64."""
    model = instance_model(instance).module
    out = []
    for c0 in range(0, instance.num_sequences, chunk):
        _, attn = model(torch.from_numpy(instance.tokens[c0:c0 + chunk].copy()), need_attn=True)
        out.append(aggregate(torch.stack(attn, 1).double().numpy(), granularity))
    return np.concatenate(out, 0)


def evaluate_policy(policy, *, budget: float | int, num_sequences: int = 8, seq_len: int = 256, seed: int = 0,
                    model: str = "default", prompt_len: int | None = None, **policy_params) -> dict[str, Any]:
    """Run a policy (a `kv_eviction.<name>` solver's name, or a policy object) on freshly generated sequences
    and score it.

    `budget` is a fraction of the sequence (0 < budget <= 1) or a token count. Returns the evaluator's
    metrics plus `tokens_per_s` of the online simulation.
    """
    from sysgym.envs.kv_eviction.generator import generate
    from sysgym.envs.kv_eviction.simulator import make_policy, run_policy

    pol = make_policy(policy, **policy_params)
    inst = generate(seed=seed, model=model, num_sequences=num_sequences, seq_len=seq_len, budget=budget,
                    prompt_len=prompt_len)
    sim = run_policy(inst, pol, seed=seed)
    metrics = evaluate(inst, sim.decisions())
    metrics["policy"] = pol.name
    metrics["tokens_per_s"] = sim.stats["tokens_per_s"]
    return metrics
