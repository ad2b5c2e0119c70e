"""Token-level KV eviction policies (online: they see only the attention of queries already decoded).

Every policy scores the tokens in the cache and the simulator evicts the lowest-scored ones until the
cache fits the budget (ties: the oldest token goes first). A score of `PROTECT` or more marks a token
the policy wants to keep whatever happens (sinks, the recent window); such tokens are only evicted when
the protected ones alone overflow the budget. Scores are kept per *group*: one schedule per sequence
(`granularity="sequence"`), per layer (`"layer"`, a layer's heads share it) or per head (`"head"`),
which gives per-layer and per-head budgets (each group holds at most `budget` tokens).

Parameters and their sources:
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
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from sysgym.errors import UnknownNameError

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
    """Base class. `observe` receives attention rows, `scores` ranks the cached tokens (higher keeps)."""

    name: ClassVar[str] = ""
    default_granularity: ClassVar[str] = "sequence"

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

    # The env-level call (DESIGN.md: online policies expose act(observation) -> action).
    def act(self, observation: dict[str, np.ndarray]) -> int:
        """Index of the token to evict, from a `sysgym/KvEviction-v0` observation."""
        feats = observation["tokens"]
        present = feats[:, 0] > 0.5
        t = int(round(float(observation["progress"][0]) * len(feats)))
        self.budget = int(round(float(observation["progress"][2]) * len(feats)))
        if not hasattr(self, "rng"):
            self.rng = np.random.default_rng(0)
        if not hasattr(self, "prompt_len"):
            self.prompt_len = t
        score = self.obs_scores(feats, t)
        score = np.where(present, score, np.inf)
        return int(np.argmin(score))  # argmin returns the first (oldest) of ties

    def obs_scores(self, feats: np.ndarray, t: int) -> np.ndarray:
        raise NotImplementedError(f"{self.name} has no env-level scoring")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params})"


class FullCache(TokenPolicy):
    """Never evicts (the reference: zero loss increase, cache grows to the sequence length)."""

    name = "full"

    def scores(self, t, present):
        raise RuntimeError("the full cache never evicts; it is run with an unbounded budget")


class RandomEviction(TokenPolicy):
    name = "random"

    def scores(self, t, present):
        return self.rng.random(present.shape)

    def obs_scores(self, feats, t):
        return self.rng.random(len(feats))


class StreamingLLM(TokenPolicy):
    name = "streaming_llm"

    def __init__(self, start_size: int = 4, granularity: str | None = None):
        super().__init__(granularity, start_size=start_size)
        if start_size < 0:
            raise ValueError(f"start_size must be >= 0, got {start_size}")
        self.start_size = start_size

    def scores(self, t, present):
        s = np.broadcast_to(np.arange(t, dtype=np.float64), present.shape).copy()
        s[..., :self.start_size] = PROTECT
        return s

    def obs_scores(self, feats, t):
        s = np.arange(len(feats), dtype=np.float64)
        s[:self.start_size] = PROTECT
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
            raise ValueError(f"recent_ratio must be in [0, 1], got {recent_ratio}")
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

    def obs_scores(self, feats, t):
        s = feats[:, 3].astype(np.float64) * np.maximum(1.0, t - np.arange(len(feats)))  # mean -> sum
        s[max(0, t - self.recent() + 1):t] = PROTECT
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

    def obs_scores(self, feats, t):
        return feats[:, 4].astype(np.float64)


class SnapKV(TokenPolicy):
    name = "snapkv"
    default_granularity = "head"

    def __init__(self, window: int = 32, kernel: int = 5, granularity: str | None = None):
        super().__init__(granularity, window=window, kernel=kernel)
        if window < 1 or kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"window must be >= 1 and kernel odd and >= 1, got window={window}, kernel={kernel}")
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

    def obs_scores(self, feats, t):
        # env-level approximation: the attention received from the last `window` queries (feature 5)
        s = feats[:, 5].astype(np.float64)
        s[max(0, t - self.w()):t] = PROTECT
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


POLICIES: dict[str, type[TokenPolicy]] = {c.name: c for c in (FullCache, RandomEviction, StreamingLLM, H2O, TOVA,
                                                              SnapKV)}


def make_policy(policy: str | TokenPolicy, **params: Any) -> TokenPolicy:
    """A policy object from a registry name (`full`, `random`, `streaming_llm`, `h2o`, `tova`, `snapkv`)."""
    if isinstance(policy, TokenPolicy):
        if params:
            raise TypeError("pass parameters to the policy's constructor when giving a policy object")
        return policy
    if policy not in POLICIES:
        raise UnknownNameError("kv_eviction policy", policy, POLICIES)
    try:
        return POLICIES[policy](**params)
    except TypeError as exc:
        raise TypeError(f"kv_eviction policy {policy!r}: {exc}") from None
