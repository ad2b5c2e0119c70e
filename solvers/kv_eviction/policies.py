"""The token-level KV eviction policies (online: they see only the attention of queries already decoded), each
implemented once and driven by the simulator (`run_policy`), by `KvEvictionEnv`'s `PolicyAgent`, and by its
solver `kv_eviction.<name>` (`solve` decodes with the policy evicting; `policy()` gives the object).

Every policy scores the tokens in the cache and the simulator evicts the lowest-scored ones until the cache fits
the budget (ties: the oldest token goes first); a score of `PROTECT` or more marks a token the policy keeps
whatever happens (sinks, the recent window). Parameters and their sources:
* StreamingLLM (Xiao et al., "Efficient Streaming Language Models with Attention Sinks", ICLR 2024):
  `start_size=4` initial tokens (attention sinks, §3.2: "four initial tokens") + a recent window that fills
  the rest of the budget.
* H2O (Zhang et al., "H2O: Heavy-Hitter Oracle", NeurIPS 2023): accumulated attention scores; the budget is
  split equally between heavy hitters and recent tokens (their 20 % runs use heavy_ratio = recent_ratio
  = 10 %), so `recent_ratio=0.5` of the budget; per head in their code (`granularity="head"`).
* TOVA (Oren et al., "Transformers are Multi-State RNNs", 2024): drop the token with the lowest attention
  from the current (latest) query, averaged over the heads of a layer (`granularity="layer"`).
* SnapKV (Li et al., NeurIPS 2024): at the end of the prompt, the last `window=32` prompt queries (the
  observation window of the paper's LongBench runs) vote for prefix keys; votes are smoothed by 1-D
  pooling (`kernel=5`, average pooling: FasterDecoding/SnapKV `snapkv_utils.py` defaults); the top-voted
  prefix keys are kept per head and the window is kept. SnapKV only compresses the prompt; while
  generating we keep its selection and slide a recent window over the rest (the window is capped at
  half the budget so that a selection remains).
* Random: evict a uniformly random cached token (a floor every policy should beat).

A solver's claimed objective is the evaluator's `loss_increase` of its schedule (one masked parallel forward);
the incremental decoder's own figure is in `stats["loss_increase_decoder"]`, and a test checks the two ways of
running the evicted cache agree (to 1e-6; they differ in float rounding, so they cannot agree to the 1e-9 the
conformance suite asks of a claim).
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from sysgym.envs.kv_eviction.evaluate import evaluate
from sysgym.envs.kv_eviction.instance import KvInstance
from sysgym.envs.kv_eviction.simulator import (
    PROTECT,
    SimResult,
    TokenPolicy,
    aggregate,
    decode_nll,
    group_shape,
    instance_model,
    run_policy,
)
from sysgym.errors import InvalidArgumentError
from sysgym.solution import Solution
from sysgym.solver import Solver, register


class FullCache(TokenPolicy):
    """Never evicts (the reference: zero loss increase, cache grows to the sequence length)."""

    name = "full"
    reference = True

    def scores(self, t, present):
        raise RuntimeError("the full cache never evicts; it is run with an unbounded budget")


class RandomEviction(TokenPolicy):
    name = "random"

    def scores(self, t, present):
        return self.rng.random(present.shape)


class StreamingLLM(TokenPolicy):
    name = "streaming_llm"

    def __init__(self, start_size: int = 4, granularity: str | None = None):
        super().__init__(granularity, start_size=start_size)
        if start_size < 0:
            raise InvalidArgumentError(f"streaming_llm: start_size must be >= 0, got {start_size}")
        self.start_size = start_size

    def scores(self, t, present):
        s = np.broadcast_to(np.arange(t, dtype=np.float64), present.shape).copy()
        s[..., :self.start_size] = PROTECT
        return s


def streaming_llm_keep(seq_len: int, start_size: int = 4, recent_size: int = 512) -> np.ndarray:
    """Indices StreamingLLM keeps after `seq_len` tokens: the first `start_size` and the last `recent_size`."""
    if seq_len <= start_size + recent_size:
        return np.arange(seq_len)
    return np.concatenate([np.arange(start_size), np.arange(seq_len - recent_size, seq_len)])


class H2O(TokenPolicy):
    name = "h2o"
    default_granularity = "head"

    def __init__(self, recent_ratio: float = 0.5, granularity: str | None = None):
        super().__init__(granularity, recent_ratio=recent_ratio)
        if not 0.0 <= recent_ratio <= 1.0:
            raise InvalidArgumentError(f"h2o: recent_ratio must be in [0, 1], got {recent_ratio}")
        self.recent_ratio = recent_ratio

    def reset(self, **kw):
        super().reset(**kw)
        gl, gh = group_shape(self.granularity, self.n_layer, self.n_head)
        self.acc = np.zeros((self.n, gl, gh, self.seq_len))

    def observe(self, t0, attn):
        k = attn.shape[-1]
        self.acc[..., :k] += aggregate(attn, self.granularity).sum(axis=3)

    def recent(self) -> int:
        # the recent window includes the token being added
        return max(1, int(round(self.recent_ratio * self.budget)))

    def scores(self, t, present):
        s = self.acc[..., :t].copy()
        s[..., max(0, t - self.recent() + 1):t] = PROTECT
        return s


def h2o_keep(scores, budget: int, recent: int) -> np.ndarray:
    """Indices H2O keeps of tokens 0..n-1 with accumulated attention `scores`: the last `recent` tokens
    and the `budget - recent` highest-scored others (ties: the earlier token), sorted."""
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    if budget >= n:
        return np.arange(n)
    recent = min(recent, budget)
    rest = n - recent
    order = np.argsort(-scores[:rest], kind="stable")[:budget - recent]
    return np.sort(np.concatenate([order, np.arange(rest, n)]))


class TOVA(TokenPolicy):
    name = "tova"
    default_granularity = "layer"

    def reset(self, **kw):
        super().reset(**kw)
        gl, gh = group_shape(self.granularity, self.n_layer, self.n_head)
        self.last = np.zeros((self.n, gl, gh, self.seq_len))

    def observe(self, t0, attn):
        k = attn.shape[-1]
        self.last[...] = 0.0
        self.last[..., :k] = aggregate(attn[..., -1, :], self.granularity)

    def scores(self, t, present):
        return self.last[..., :t].copy()


class SnapKV(TokenPolicy):
    name = "snapkv"
    default_granularity = "head"

    def __init__(self, window: int = 32, kernel: int = 5, granularity: str | None = None):
        super().__init__(granularity, window=window, kernel=kernel)
        if window < 1 or kernel < 1 or kernel % 2 == 0:
            raise InvalidArgumentError(f"snapkv: window must be >= 1 and kernel odd and >= 1, got window={window}, "
                                       f"kernel={kernel}")
        self.window, self.kernel = window, kernel

    def reset(self, **kw):
        super().reset(**kw)
        gl, gh = group_shape(self.granularity, self.n_layer, self.n_head)
        self.votes = np.zeros((self.n, gl, gh, self.seq_len))
        self.selected = np.zeros((self.n, gl, gh, self.seq_len), bool)
        self.voted = self.selected_done = False

    def w(self) -> int:
        return max(1, min(self.window, (self.budget - 1) // 2, self.prompt_len))

    def observe(self, t0, attn):
        q = attn.shape[3]
        if t0 == 0 and q == self.prompt_len:  # the prompt: the last w queries vote
            votes = aggregate(attn[..., -self.w():, :].sum(axis=3), self.granularity)
            self.votes[..., :votes.shape[-1]] = pool1d(votes, self.kernel)

    def scores(self, t, present):
        w = self.w()
        prefix = max(0, self.prompt_len - w)
        if not self.voted:  # first eviction: select prefix keys by the window's votes
            self.voted = True
            s = self.votes[..., :t].copy()
            s[..., prefix:t] = PROTECT  # the observation window (and anything later)
            return s
        if not self.selected_done:  # the prefix keys that survived the selection stay
            self.selected[..., :prefix] = present[..., :prefix]
            self.selected_done = True
        s = np.broadcast_to(np.arange(t, dtype=np.float64), present.shape).copy()
        s[self.selected[..., :t]] = PROTECT
        return s


def pool1d(x: np.ndarray, kernel: int) -> np.ndarray:
    """Average pooling along the last axis with 'same' padding (count-include-pad=False)."""
    if kernel <= 1:
        return x
    pad = kernel // 2
    c = np.cumsum(np.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad + 1, pad)]), axis=-1)
    sums = c[..., kernel:] - c[..., :-kernel]
    ones = np.ones(x.shape[-1])
    cnt = np.convolve(ones, np.ones(kernel), mode="same")
    return sums / cnt


class ScheduleReplay(TokenPolicy):
    """Replays a fixed eviction schedule `evict_step` (N, GL, GH, T): token j leaves before step e[j]."""

    name = "schedule"

    def __init__(self, evict_step: np.ndarray, granularity: str):
        super().__init__(granularity)
        self.evict_step = np.asarray(evict_step)

    def scores(self, t, present):
        return np.where(self.evict_step[..., :t] <= t, -1.0, PROTECT)


def decoder_loss_increase(inst: KvInstance, sim: SimResult) -> float:
    """Mean NLL of the incremental decoder's evicted run minus the full cache's, on the decode positions."""
    model = instance_model(inst).module
    tokens = torch.from_numpy(inst.tokens.copy())
    with torch.no_grad():
        full = torch.cat([model(tokens[i:i + 8])[0] for i in range(0, len(tokens), 8)], 0)
    nll_f, _ = decode_nll(full, tokens, inst.prompt_len)
    nll_m, _ = decode_nll(sim.logits, tokens, inst.prompt_len)
    return float(nll_m.double().mean()) - float(nll_f.double().mean())


def scored_solution(inst: KvInstance, sim: SimResult, t0: float, status: str = "feasible",
                    stats: dict[str, Any] | None = None) -> Solution:
    """The solution of a simulated run: claims the evaluator's loss increase (see the module doc)."""
    decisions = sim.decisions()
    claimed = evaluate(inst, decisions)["loss_increase"]
    out = {"tokens_per_s": sim.stats.get("tokens_per_s"), "granularity": sim.granularity,
           "loss_increase_decoder": decoder_loss_increase(inst, sim), **(stats or {})}
    return Solution(decisions=decisions, objective=float(claimed), status=status,
                    wall_time_s=time.perf_counter() - t0, stats=out)


class PolicySolver(Solver):
    """Base of the policy solvers: decode the instance with `policy()` evicting."""

    family = "kv_eviction"
    kind = "heuristic"
    policy_cls: type[TokenPolicy] = TokenPolicy

    def policy(self) -> TokenPolicy:
        return self.policy_cls(**self.config)

    def solve(self, instance: KvInstance, *, time_limit: float | None = None, seed: int = 0) -> Solution:
        t0 = time.perf_counter()
        return scored_solution(instance, run_policy(instance, self.policy(), seed=seed), t0)


@register
class Full(PolicySolver):
    """The full cache (reference; ignores the budget, flagged `within_budget=False` by the evaluator)."""

    name = "kv_eviction.full"
    kind = "baseline"
    policy_cls = FullCache

    def __init__(self):
        super().__init__()


@register
class Random(PolicySolver):
    """Evict a uniformly random cached token (the floor)."""

    name = "kv_eviction.random"
    kind = "baseline"
    policy_cls = RandomEviction

    def __init__(self, granularity: str = "sequence"):
        super().__init__(granularity=granularity)
        self.policy()  # a bad option fails here, before any work


@register
class StreamingLLMSolver(PolicySolver):
    """StreamingLLM (Xiao et al., ICLR 2024): 4 attention-sink tokens + a recent window."""

    name = "kv_eviction.streaming_llm"
    policy_cls = StreamingLLM

    def __init__(self, start_size: int = 4, granularity: str = "sequence"):
        super().__init__(start_size=start_size, granularity=granularity)
        self.policy()


@register
class H2OSolver(PolicySolver):
    """H2O (Zhang et al., NeurIPS 2023): accumulated-attention heavy hitters + recent window, per head."""

    name = "kv_eviction.h2o"
    policy_cls = H2O

    def __init__(self, recent_ratio: float = 0.5, granularity: str = "head"):
        super().__init__(recent_ratio=recent_ratio, granularity=granularity)
        self.policy()


@register
class TOVASolver(PolicySolver):
    """TOVA (Oren et al., 2024): drop the token the latest query attends to least, per layer."""

    name = "kv_eviction.tova"
    policy_cls = TOVA

    def __init__(self, granularity: str = "layer"):
        super().__init__(granularity=granularity)
        self.policy()


@register
class SnapKVSolver(PolicySolver):
    """SnapKV (Li et al., NeurIPS 2024): observation-window votes at the end of the prompt, per head."""

    name = "kv_eviction.snapkv"
    policy_cls = SnapKV

    def __init__(self, window: int = 32, kernel: int = 5, granularity: str = "head"):
        super().__init__(window=window, kernel=kernel, granularity=granularity)
        self.policy()
