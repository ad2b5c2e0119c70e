"""Runs a policy while the model decodes: the online side (the evaluator re-scores its schedule), and the
protocol every token-level policy implements.

The decoder prefills the prompt with the full cache, then adds one token per step. Before token t
enters, each group's cache holds its surviving tokens of 0..t-1; if that plus token t exceeds the budget,
the policy's lowest-scored tokens are evicted (ties: oldest first). Evicted tokens never come back, so a
schedule is fully described by `evict_step[n, gl, gh, j]`: the first step at which token j is no longer
attended to (`T` if never). The policy observes the attention the model actually computes with the
evicted cache (as a real H2O/TOVA deployment does).

The protocol (`TokenPolicy`): `reset(...)` at the start of a batch of sequences, `observe(t0, attn)` with every
attention row the model computes, `scores(t, present)` when tokens must go (higher keeps; a score of `PROTECT`
or more marks a token to keep whatever happens). Scores are kept per *group*: one schedule per sequence
(`granularity="sequence"`), per layer (`"layer"`, a layer's heads share it) or per head (`"head"`), which gives
per-layer and per-head budgets. A `reference` policy (the full cache) ignores the budget. The named policies
(full, random, streaming_llm, h2o, tova, snapkv) live in `sysgym.solvers.kv_eviction`; `make_policy("h2o")`
finds them by name through the registry. `sysgym/KvEviction-v0`'s `PolicyAgent` drives the same objects.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch.nn import functional as F

from sysgym import registry
from sysgym.envs.kv_eviction.instance import KvInstance
from sysgym.envs.kv_eviction.model import LoadedModel, get_model
from sysgym.errors import InvalidArgumentError, UnknownNameError

PROTECT = 1e30
GRANULARITIES = ("sequence", "layer", "head")


def group_shape(granularity: str, n_layer: int, n_head: int) -> tuple[int, int]:
    if granularity == "sequence":
        return 1, 1
    if granularity == "layer":
        return n_layer, 1
    if granularity == "head":
        return n_layer, n_head
    raise UnknownNameError("granularity", granularity, GRANULARITIES)


def aggregate(attn: np.ndarray, granularity: str) -> np.ndarray:
    """(N, L, H, ...) attention -> (N, GL, GH, ...) by averaging over what a group shares."""
    if granularity == "sequence":
        return attn.mean(axis=(1, 2), keepdims=True)
    if granularity == "layer":
        return attn.mean(axis=2, keepdims=True)
    return attn


class TokenPolicy:
    """The protocol (see the module doc): `observe` receives attention rows, `scores` ranks the cached tokens."""

    name: ClassVar[str] = ""
    default_granularity: ClassVar[str] = "sequence"
    reference: ClassVar[bool] = False  # True: never evicts, runs with an unbounded budget (the full cache)

    def __init__(self, granularity: str | None = None, **params: Any):
        self.granularity = granularity or self.default_granularity
        if self.granularity not in GRANULARITIES:
            raise UnknownNameError("granularity", self.granularity, GRANULARITIES)
        self.params = {"granularity": self.granularity, **params}

    def reset(self, *, num_seqs: int, n_layer: int, n_head: int, seq_len: int, budget: int, prompt_len: int,
              seed: int = 0) -> None:
        self.n, self.n_layer, self.n_head = num_seqs, n_layer, n_head
        self.seq_len, self.budget, self.prompt_len = seq_len, budget, prompt_len
        self.rng = np.random.default_rng(seed)

    def observe(self, t0: int, attn: np.ndarray) -> None:
        """Attention (N, L, H, Q, K) of queries t0 .. t0+Q-1 over keys 0 .. K-1 (0 where evicted)."""

    def scores(self, t: int, present: np.ndarray) -> np.ndarray:
        """Scores (N, GL, GH, t) of tokens 0..t-1 before token t enters a full cache."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params})"


def policy_names() -> list[str]:
    """The named policies: the `kv_eviction.<name>` solvers whose `policy_cls` implements this protocol."""
    out = []
    for n in registry.list_solvers("kv_eviction"):
        cls = getattr(registry.solver_class(n), "policy_cls", None)
        if isinstance(cls, type) and issubclass(cls, TokenPolicy) and cls is not TokenPolicy:
            out.append(n.split(".", 1)[1])
    return out


def make_policy(policy: str | TokenPolicy, **params: Any) -> TokenPolicy:
    """A policy object from a name (`full`, `random`, `streaming_llm`, `h2o`, `tova`, `snapkv`: the
    `kv_eviction.<name>` solvers, found through the registry) or the object itself."""
    if isinstance(policy, TokenPolicy):
        if params:
            raise InvalidArgumentError("pass parameters to the policy's constructor when giving a policy object")
        return policy
    known = policy_names()
    if policy not in known:
        raise UnknownNameError("kv_eviction policy", policy, known)
    from sysgym.solver import get

    return get(f"kv_eviction.{policy}", **params).policy()


@dataclass
class SimResult:
    evict_step: np.ndarray  # (N, GL, GH, T) int32
    granularity: str
    logits: torch.Tensor  # (N, T, V) from the incremental decoder
    wall_time_s: float
    reference: bool = False
    stats: dict[str, Any] = field(default_factory=dict)

    def decisions(self, *, reference: bool | None = None) -> dict[str, Any]:
        return {"evict_step": self.evict_step, "granularity": self.granularity,
                "reference": self.reference if reference is None else reference}


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


def run_policy(inst: KvInstance, policy: str | TokenPolicy, *, seed: int = 0, chunk: int = 64,
               progress: bool = False) -> SimResult:
    """Decode every sequence of `inst` while `policy` evicts; returns its schedule and the logits.

    Sequences are decoded `chunk` at a time; the policy is reset per chunk with seed `seed + first sequence`.
    Deterministic policies give the same schedule for any `chunk`; `random` draws for a whole chunk at once, so
    its schedule depends on `chunk` (with `chunk=1` it is what `KvEviction-v0` episodes give)."""
    policy = make_policy(policy)
    loaded = instance_model(inst)
    n, t_len = inst.tokens.shape
    p, budget = inst.prompt_len, inst.budget
    if policy.reference:
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
    return SimResult(evict, policy.granularity, torch.cat(logits_all, 0), wall, policy.reference,
                     {"tokens_per_s": n * (t_len - p) / max(wall, 1e-9), "policy": policy.name, **policy.params})


def decode_nll(logits: torch.Tensor, tokens: torch.Tensor, prompt_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position NLL (N, D) and argmax (N, D) on decode positions prompt_len .. T-2."""
    lg = logits[:, prompt_len:-1]
    tgt = tokens[:, prompt_len + 1:]
    nll = F.cross_entropy(lg.reshape(-1, lg.shape[-1]).float(), tgt.reshape(-1), reduction="none").view(tgt.shape)
    return nll, lg.argmax(-1)
