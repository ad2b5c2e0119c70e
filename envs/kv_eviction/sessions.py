"""Session-level KV retention (Continuum-style TTL, prefix caching) on multi-turn and agent sessions.

Between two turns of a session (a user's think time or an agent's tool call), the KV of the finished
turn can stay in a retention pool of `capacity` tokens of GPU memory. If it is still there when the next
turn arrives, only the new input is prefilled; otherwise the whole context is recomputed. Policies decide
what to keep; one evaluator (`evaluate_sessions`) re-checks their holdings (capacity at every instant, a
reuse is backed by a held copy of a prefix of the context) and prices the resulting prefills on the
LLM-serving simulator (`sysgym.envs.llm_serving.simulate`, its public API) for TTFT.

Workload (`generate_sessions`; every number is a parameter, the defaults are our assumptions where no
source is given):
* sessions start as a Poisson process (`rate` sessions/s); a session has 1 + Geometric(1/mean_turns)
  turns (`mean_turns=5`; LMSYS-Chat-1M reports about 2 turns per conversation for chat, agent traces
  such as SWE-agent runs have tens of steps, so `agent` sessions use 8);
* every session of a prefix group shares a system prompt of `prefix_tokens` (default 1024);
* per turn new input ~ lognormal (median 200 tokens) and output ~ lognormal (median 150), the shapes of the
  Azure conversation trace in /work/shared/data (BurstGPT-like), clipped;
* `chat` gaps: user think time ~ exponential, mean 30 s (assumption); `agent` gaps: tool calls with
  per-tool mean durations (`TOOLS`, assumption in the spirit of Continuum's SWE-bench / BFCL traces:
  fast file reads to slow test runs), log-normal with sigma 0.5 around them;
* a turn ends `output x tpot_s` after it arrives (nominal `tpot_s=0.02` s/token for the retention
  timeline; the serving simulator then gives the real TTFT).

Policies: `none`, `lru`, `lfu`, `ttl` (fixed TTL, default 60 s), `continuum` (TTL = the predicted
duration of the tool call that just started: the tool's mean x `ttl_factor`; no retention across user
think time; Li et al., "Continuum: Efficient and Robust Multi-Turn LLM Agent Scheduling with KV Cache
Time-to-Live", 2025), `prefix` (vLLM automatic prefix caching: 16-token blocks keyed by a hash chain, LRU
over blocks; shares system prompts across sessions), `belady` (clairvoyant: on overflow evict the entry
reused farthest in the future, or skip the new one; optimal for uniform sizes).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from sysgym.errors import InfeasibleSolutionError, InvalidInstanceError, UnknownNameError

TOOLS = {"read_file": 1.0, "search": 4.0, "edit": 2.0, "run_tests": 45.0, "web": 12.0}  # mean seconds (assumed)
USER = "user"
BLOCK = 16  # tokens per KV block (vLLM's default block size)
SESSION_POLICIES = ("none", "lru", "lfu", "ttl", "continuum", "prefix", "belady")


@dataclass(frozen=True, eq=False)
class SessionWorkload:
    """Turns sorted by arrival. `ctx_before[i]`: tokens of context (prefix + earlier turns) turn i extends."""

    session: np.ndarray
    turn: np.ndarray
    arrival: np.ndarray
    end: np.ndarray
    new_input: np.ndarray
    output: np.ndarray
    ctx_before: np.ndarray
    gap_kind: tuple[str, ...]  # what follows turn i: a tool name, "user", or "" (last turn)
    group: np.ndarray  # prefix group of the session of turn i
    prefix_tokens: int
    capacity: int  # tokens of the retention pool
    name: str = "kv_eviction/sessions"

    def __post_init__(self) -> None:
        for key in ("session", "turn", "new_input", "output", "ctx_before", "group"):
            object.__setattr__(self, key, np.asarray(getattr(self, key), np.int64))
        for key in ("arrival", "end"):
            object.__setattr__(self, key, np.asarray(getattr(self, key), np.float64))
        if (np.diff(self.arrival) < 0).any():
            raise InvalidInstanceError(f"{self.name}: turns must be sorted by arrival")
        if self.capacity < 0:
            raise InvalidInstanceError(f"{self.name}: capacity must be >= 0, got {self.capacity}")

    @property
    def num_turns(self) -> int:
        return len(self.arrival)

    def ctx_after(self, i: int) -> int:
        return int(self.ctx_before[i] + self.new_input[i] + self.output[i])

    def next_turn(self) -> np.ndarray:
        """Index of the same session's next turn (-1 for the last)."""
        nxt = np.full(self.num_turns, -1, np.int64)
        last: dict[int, int] = {}
        for i in range(self.num_turns - 1, -1, -1):
            s = int(self.session[i])
            nxt[i] = last.get(s, -1)
            last[s] = i
        return nxt

    def digest(self) -> str:
        d = {k: np.asarray(getattr(self, k)).tolist() for k in ("session", "turn", "arrival", "new_input", "output")}
        d.update(capacity=self.capacity, prefix=self.prefix_tokens)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def generate_sessions(*, seed: int = 0, num_sessions: int = 20, kind: str = "agent", mean_turns: float | None = None,
                      rate: float = 0.2, prefix_tokens: int = 1024, num_prefix_groups: int = 2,
                      capacity: int = 16384, think_mean_s: float = 30.0, tpot_s: float = 0.02,
                      uniform_tokens: int | None = None) -> SessionWorkload:
    """A seeded multi-turn workload (`kind` = "chat" or "agent"). `uniform_tokens` makes every context
    the same size (for the Belady check)."""
    if kind not in ("chat", "agent"):
        raise UnknownNameError("session kind", kind, ("agent", "chat"))
    rng = np.random.default_rng(seed)
    mean_turns = mean_turns or (8.0 if kind == "agent" else 5.0)
    tools = list(TOOLS)
    rows = []
    t0 = 0.0
    for s in range(num_sessions):
        t0 += rng.exponential(1.0 / rate)
        n = 1 + rng.geometric(1.0 / mean_turns) - 1 if mean_turns > 1 else 1
        n = max(1, int(n))
        g = s % max(1, num_prefix_groups)
        ctx = prefix_tokens
        t = t0
        for k in range(n):
            inp = int(np.clip(rng.lognormal(np.log(200), 0.8), 8, 2000))
            out = int(np.clip(rng.lognormal(np.log(150), 0.8), 4, 1000))
            end = t + out * tpot_s
            if k == n - 1:
                kind_k, gap = "", 0.0
            elif kind == "agent":
                kind_k = tools[int(rng.integers(len(tools)))]
                gap = float(rng.lognormal(np.log(TOOLS[kind_k]), 0.5))
            else:
                kind_k, gap = USER, float(rng.exponential(think_mean_s))
            rows.append((s, k, t, end, inp, out, ctx, kind_k, g))
            ctx += inp + out
            t = end + gap
    rows.sort(key=lambda r: (r[2], r[0], r[1]))
    cols = list(zip(*rows))
    ctx_before = np.array(cols[6])
    if uniform_tokens is not None:  # every retained entry has the same size: ctx_after == uniform_tokens
        ctx_before = np.full(len(rows), uniform_tokens - 2)
        cols[4] = (1,) * len(rows)
        cols[5] = (1,) * len(rows)
    return SessionWorkload(session=cols[0], turn=cols[1], arrival=cols[2], end=cols[3], new_input=cols[4],
                           output=cols[5], ctx_before=ctx_before, gap_kind=tuple(cols[7]), group=cols[8],
                           prefix_tokens=0 if uniform_tokens is not None else prefix_tokens, capacity=capacity,
                           name=f"kv_eviction/sessions?seed={seed}&kind={kind}&n={num_sessions}&cap={capacity}")


# -- holdings: what a policy kept, which the evaluator re-checks -------------------------------------------
# A held item: (owner, lo, hi, start, stop). owner >= 0: tokens [lo, hi) of that session's context;
# owner = -1 - g: tokens [lo, hi) of prefix group g's shared system prompt. Held during [start, stop).


def _events(w: SessionWorkload):
    """Time-ordered events: (time, order, kind, turn); a turn's request precedes offers at the same time."""
    ev = [(float(w.arrival[i]), 0, "request", i) for i in range(w.num_turns)]
    ev += [(float(w.end[i]), 1, "offer", i) for i in range(w.num_turns)]
    ev.sort()
    return ev


class _EntryCache:
    """Whole-context entries (one per session), used by none/lru/lfu/ttl/continuum/belady."""

    def __init__(self, w: SessionWorkload, policy: str, ttl_s: float, ttl_factor: float):
        self.w, self.policy, self.ttl_s, self.ttl_factor = w, policy, ttl_s, ttl_factor
        self.entries: dict[int, dict[str, Any]] = {}  # session -> {size, start, last, freq, expiry, next_use}
        self.used = 0
        self.items: list[tuple[int, int, int, float, float]] = []
        self.freq: dict[int, int] = {}
        self.nxt = w.next_turn()

    def _drop(self, s: int, t: float) -> None:
        e = self.entries.pop(s)
        self.used -= e["size"]
        if t > e["start"]:
            self.items.append((s, 0, e["size"], e["start"], t))

    def _expire(self, t: float) -> None:
        for s in [s for s, e in self.entries.items() if e["expiry"] <= t]:
            self._drop(s, self.entries[s]["expiry"])

    def request(self, i: int) -> None:
        t, s = float(self.w.arrival[i]), int(self.w.session[i])
        self._expire(t)
        self.freq[s] = self.freq.get(s, 0) + 1
        if s in self.entries:
            self._drop(s, t)  # consumed: the turn's KV is now active in the engine

    def offer(self, i: int) -> None:
        w, t, s = self.w, float(self.w.end[i]), int(self.w.session[i])
        self._expire(t)
        if self.nxt[i] < 0 or self.policy == "none":
            return
        size = w.ctx_after(i)
        kind = w.gap_kind[i]
        expiry = np.inf
        if self.policy == "ttl":
            expiry = t + self.ttl_s
        elif self.policy == "continuum":
            if kind not in TOOLS:
                return  # no pinning across user think time
            expiry = t + TOOLS[kind] * self.ttl_factor
        if size > w.capacity:
            return
        next_use = float(w.arrival[self.nxt[i]])
        while self.used + size > w.capacity:
            victim = self._victim(next_use)
            if victim is None:
                return  # the new entry is the one to skip (Belady bypass)
            self._drop(victim, t)
        self.entries[s] = {"size": size, "start": t, "last": t, "expiry": expiry, "next_use": next_use}
        self.used += size

    def _victim(self, new_next_use: float) -> int | None:
        ent = self.entries
        if self.policy == "belady":
            s = max(ent, key=lambda k: (ent[k]["next_use"], k))
            return None if ent[s]["next_use"] <= new_next_use else s
        if self.policy == "lfu":
            return min(ent, key=lambda k: (self.freq.get(k, 0), ent[k]["last"], k))
        if self.policy == "continuum":
            return min(ent, key=lambda k: (ent[k]["expiry"], k))
        return min(ent, key=lambda k: (ent[k]["last"], k))  # lru, ttl

    def finish(self) -> list:
        for s in list(self.entries):
            e = self.entries[s]
            self._drop(s, min(e["expiry"], float(self.w.end.max()) + 1.0))
        return self.items


class _PrefixCache:
    """vLLM-style automatic prefix caching: blocks keyed by (owner, block index), LRU over blocks."""

    def __init__(self, w: SessionWorkload):
        self.w = w
        self.blocks: dict[tuple[int, int], list[float]] = {}  # key -> [start, last_use]
        self.items: list[tuple[int, int, int, float, float]] = []

    def _keys(self, i: int, tokens: int) -> list[tuple[int, int, int]]:
        """(owner, lo, hi) of the full blocks covering the first `tokens` of turn i's session context."""
        w = self.w
        p, s, g = w.prefix_tokens, int(w.session[i]), int(w.group[i])
        out = []
        for b in range(tokens // BLOCK):
            lo, hi = b * BLOCK, (b + 1) * BLOCK
            out.append((-1 - g, lo, hi) if hi <= p else (s, lo, hi))
        return out

    def _evict(self, n: int, t: float, keep: set) -> None:
        order = sorted((v[1], k) for k, v in self.blocks.items() if k not in keep)
        for _, k in order[:n]:
            start, _ = self.blocks.pop(k)
            if t > start:
                self.items.append((*k, start, t))

    def request(self, i: int) -> None:
        t = float(self.w.arrival[i])
        for k in self._keys(i, int(self.w.ctx_before[i])):
            if k in self.blocks:
                self.blocks[k][1] = t

    def offer(self, i: int) -> None:
        t = float(self.w.end[i])
        keys = self._keys(i, self.w.ctx_after(i))
        cap = self.w.capacity // BLOCK
        new = [k for k in keys if k not in self.blocks]
        if len(keys) > cap:
            return
        over = len(self.blocks) + len(new) - cap
        if over > 0:
            self._evict(over, t, set(keys))
        for k in keys:
            if k in self.blocks:
                self.blocks[k][1] = t
            else:
                self.blocks[k] = [t, t]

    def finish(self) -> list:
        t = float(self.w.end.max()) + 1.0
        for k, (start, _) in list(self.blocks.items()):
            self.items.append((*k, start, t))
        self.blocks.clear()
        return self.items


def run_session_policy(w: SessionWorkload, policy: str, *, ttl_s: float = 60.0, ttl_factor: float = 1.5) -> list:
    """Replay the workload under a retention policy; returns its held items (the decisions)."""
    if policy not in SESSION_POLICIES:
        raise UnknownNameError("session policy", policy, SESSION_POLICIES)
    cache = _PrefixCache(w) if policy == "prefix" else _EntryCache(w, policy, ttl_s, ttl_factor)
    for _, _, kind, i in _events(w):
        getattr(cache, kind)(i)
    return cache.finish()


def reuse_per_turn(w: SessionWorkload, items: list) -> np.ndarray:
    """Checks the holdings and returns, per turn, the context tokens served from the pool."""
    items = [(int(o), int(lo), int(hi), float(a), float(b)) for o, lo, hi, a, b in items]
    ev = []
    for o, lo, hi, a, b in items:
        if not (0 <= lo < hi) or b < a:
            raise InfeasibleSolutionError("item", f"held item {(o, lo, hi, a, b)} is malformed")
        ev += [(a, 1, hi - lo), (b, 0, -(hi - lo))]
    ev.sort()
    used = 0
    for t, _, d in ev:
        used += d
        if used > w.capacity:
            raise InfeasibleSolutionError("capacity", f"{used} tokens held at t={t:.3f} s; the pool holds "
                                          f"{w.capacity}")
    # Items available at each request, and which content they may stand for.
    by_owner: dict[int, list] = {}
    for it in items:
        by_owner.setdefault(it[0], []).append(it)
    first_end: dict[int, float] = {}
    for i in range(w.num_turns):
        s = int(w.session[i])
        first_end[s] = min(first_end.get(s, np.inf), float(w.end[i]))
    reuse = np.zeros(w.num_turns, np.int64)
    for i in range(w.num_turns):
        s, g, t = int(w.session[i]), int(w.group[i]), float(w.arrival[i])
        limit = int(w.ctx_before[i])
        cover = []
        for o, lo, hi, a, b in by_owner.get(s, []) + by_owner.get(-1 - g, []):
            if not (a <= t <= b):
                continue
            if o >= 0 and a < first_end[s]:
                raise InfeasibleSolutionError("content", f"session {s} tokens held from t={a:.3f} s, before the "
                                              "session computed anything")
            if o < 0 and hi > w.prefix_tokens:
                raise InfeasibleSolutionError("content", f"prefix item {(o, lo, hi)} exceeds the "
                                              f"{w.prefix_tokens}-token system prompt")
            cover.append((lo, min(hi, limit)))
        x = 0
        for lo, hi in sorted(cover):
            if lo > x:
                break
            x = max(x, hi)
        reuse[i] = min(x, limit)
    return reuse


def evaluate_sessions(w: SessionWorkload, items: list, *, serve: bool = True, model: str = "llama-2-7b",
                      gpu: str = "a100-80gb") -> dict[str, Any]:
    """Hit rate, recompute tokens and (with `serve`) TTFT from the serving simulator."""
    reuse = reuse_per_turn(w, items)
    later = w.turn > 0
    reusable = w.ctx_before[later]
    recompute = reusable - reuse[later]
    # The first turn of a session could only reuse a shared system prompt.
    prefill = w.ctx_before + w.new_input - reuse
    out = {
        "hit_rate": float(np.mean(reuse[later] >= reusable)) if later.any() else 0.0,
        "token_hit_rate": float(reuse[later].sum() / max(1, reusable.sum())),
        "recompute_tokens": int(recompute.sum() + (w.ctx_before[~later] - reuse[~later]).sum()),
        "prefill_tokens": int(prefill.sum()),
        "turns": int(w.num_turns),
    }
    if serve:
        from sysgym.envs.llm_serving import Trace, simulate

        trace = Trace.sorted(w.arrival, np.maximum(1, prefill), np.maximum(1, w.output), session=w.session)
        res = simulate(trace, model=model, gpu=gpu)
        out.update(ttft_mean=float(res.metrics["ttft_mean"]), ttft_p90=float(res.metrics["ttft_p90"]),
                   e2e_mean=float(res.metrics["e2e_mean"]))
    return out


def session_comparison(w: SessionWorkload, policies=SESSION_POLICIES, **kw) -> dict[str, dict[str, Any]]:
    return {p: evaluate_sessions(w, run_session_policy(w, p), **kw) for p in policies}
