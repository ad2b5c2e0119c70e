"""The retention pool and the protocol its policies implement: one mechanism for the simulator and the env.

Between two turns of a session (a user's think time or an agent's tool call), the KV of the finished turn can
stay in a retention pool of `capacity` tokens of GPU memory. If it is still there when the next turn arrives,
only the new input is prefilled; otherwise the whole context is recomputed.

Events are replayed in time order (a turn's request precedes offers at the same instant): at a **request** the
pool serves what it holds of the turn's context (and drops a consumed entry); at an **offer** (a turn ended)
expired entries leave, then, where the pool could hold the turn's KV at all (`can_admit`), the policy decides:

* `admit(i, pool) -> bool`: keep turn i's KV?  (in `sysgym/SessionKv-v0` this is the agent's action)
* `expiry(i, pool) -> float`: when a kept entry expires (`inf`: never; entry pools only);
* `victim(pool, i) -> key | None`: while the pool overflows, the held entry (or block) to evict, or None to
  skip the new one (Belady's bypass).

A policy's `granularity` picks the pool: `"entry"` holds one entry per session (its whole context, as a
chat/agent engine keeps a finished request's KV), `"block"` holds 16-token blocks keyed by (owner, position):
vLLM's automatic prefix caching, where blocks of a shared system prompt serve every session of its group.

The named policies (none, lru, lfu, ttl, continuum, prefix, belady) live in `sysgym.solvers.kv_sessions`;
`simulate(workload, "lru")` finds them by name through the registry. The held items (`finish()`) are the
decisions the evaluator re-checks: `(owner, lo, hi, start, stop)`, tokens [lo, hi) of session `owner`'s
context (owner >= 0) or of prefix group g's system prompt (owner = -1 - g), held during [start, stop).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from sysgym import solver as solver_api
from sysgym.envs.kv_sessions.instance import SessionWorkload
from sysgym.errors import InvalidArgumentError, UnknownNameError

BLOCK = 16  # tokens per KV block (vLLM's default block size)
GRANULARITIES = ("entry", "block")
# The named policies in the order the README's table shows them (each is a `kv_sessions.<name>` solver).
SESSION_POLICIES = ("none", "lru", "lfu", "ttl", "continuum", "prefix", "belady")
Item = tuple[int, int, int, float, float]


class RetentionPolicy:
    """The protocol the pool calls (see the module doc). Subclasses live in `sysgym.solvers.kv_sessions`."""

    name: ClassVar[str] = ""
    granularity: ClassVar[str] = "entry"

    def admit(self, i: int, pool: Pool) -> bool:
        return True

    def expiry(self, i: int, pool: Pool) -> float:
        return np.inf

    def victim(self, pool: Pool, i: int) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def events(w: SessionWorkload) -> list[tuple[float, int, str, int]]:
    """Time-ordered events: (time, order, kind, turn); a turn's request precedes offers at the same time."""
    ev = [(float(w.arrival[i]), 0, "request", i) for i in range(w.num_turns)]
    ev += [(float(w.end[i]), 1, "offer", i) for i in range(w.num_turns)]
    ev.sort()
    return ev


@dataclass
class Entry:
    size: int
    start: float
    last: float
    expiry: float
    next_use: float


class Pool:
    """What both pools share: the workload, the held items so far, and the tokens each request reused."""

    def __init__(self, w: SessionWorkload):
        self.w = w
        self.capacity = w.capacity
        self.items: list[Item] = []
        self.reuse = np.zeros(w.num_turns, np.int64)  # context tokens each turn found in the pool
        self.recomputed = 0  # context tokens the requests so far prefilled again
        self.nxt = w.next_turn()
        self.now = 0.0

    @property
    def used(self) -> int:
        raise NotImplementedError

    def count(self) -> int:
        raise NotImplementedError

    def recompute_tokens(self) -> int:
        """Context tokens recomputed by the requests so far (the evaluator's `recompute_tokens` at the end)."""
        return int(self.recomputed)

    def served(self, i: int, reuse: int) -> int:
        self.reuse[i] = reuse
        self.recomputed += int(self.w.ctx_before[i]) - reuse
        return reuse


class EntryPool(Pool):
    """Whole-context entries, one per session (none / lru / lfu / ttl / continuum / belady)."""

    def __init__(self, w: SessionWorkload):
        super().__init__(w)
        self.entries: dict[int, Entry] = {}  # session -> its held context
        self.freq: dict[int, int] = {}  # session -> requests so far (LFU)
        self._used = 0

    @property
    def used(self) -> int:
        return self._used

    def count(self) -> int:
        return len(self.entries)

    def _drop(self, s: int, t: float) -> None:
        e = self.entries.pop(s)
        self._used -= e.size
        if t > e.start:
            self.items.append((s, 0, e.size, e.start, t))

    def expire(self, t: float) -> None:
        self.now = t
        for s in [s for s, e in self.entries.items() if e.expiry <= t]:
            self._drop(s, self.entries[s].expiry)

    def request(self, i: int) -> int:
        w, t, s = self.w, float(self.w.arrival[i]), int(self.w.session[i])
        self.expire(t)
        self.freq[s] = self.freq.get(s, 0) + 1
        reuse = 0
        if s in self.entries:
            reuse = min(self.entries[s].size, int(w.ctx_before[i]))
            self._drop(s, t)  # consumed: the turn's KV is now active in the engine
        return self.served(i, reuse)

    def can_admit(self, i: int) -> bool:
        """Whether keeping turn i's context could help at all: its session goes on and it fits the pool."""
        return bool(self.nxt[i] >= 0 and self.w.ctx_after(i) <= self.capacity)

    def admit(self, i: int, policy: RetentionPolicy) -> bool:
        """Keep turn i's context, evicting the policy's victims; False when the policy skips it instead."""
        w, t, s = self.w, float(self.w.end[i]), int(self.w.session[i])
        self.now = t
        size = w.ctx_after(i)
        expiry = float(policy.expiry(i, self))
        while self._used + size > self.capacity:
            victim = policy.victim(self, i)
            if victim is None:
                return False  # the new entry is the one to skip (Belady's bypass)
            if victim not in self.entries:
                raise InvalidArgumentError(f"{policy.name}: victim {victim!r} is not held")
            self._drop(victim, t)
        self.entries[s] = Entry(size, t, t, expiry, self.next_use(i))
        self._used += size
        return True

    def next_use(self, i: int) -> float:
        """When turn i's session comes back (clairvoyant: Belady's key)."""
        return float(self.w.arrival[self.nxt[i]]) if self.nxt[i] >= 0 else np.inf

    def held_items(self) -> list[Item]:
        """The held items so far, entries still in the pool closed as `finish` would (the pool is unchanged)."""
        return self.items + [(s, 0, e.size, e.start, self._close(e)) for s, e in self.entries.items()
                             if self._close(e) > e.start]

    def _close(self, e: Entry) -> float:
        return min(e.expiry, float(self.w.end.max()) + 1.0)

    def finish(self) -> list[Item]:
        for s in list(self.entries):
            self._drop(s, self._close(self.entries[s]))
        return self.items


class BlockPool(Pool):
    """vLLM-style automatic prefix caching: blocks keyed by (owner, lo, hi); the policy picks the victims."""

    def __init__(self, w: SessionWorkload):
        super().__init__(w)
        self.blocks: dict[tuple[int, int, int], list[float]] = {}  # key -> [start, last use]
        self.offering: set[tuple[int, int, int]] = set()  # the blocks of the turn being admitted (not victims)

    @property
    def used(self) -> int:
        return BLOCK * len(self.blocks)

    def count(self) -> int:
        return len(self.blocks)

    def key(self, i: int, b: int) -> tuple[int, int, int]:
        """(owner, lo, hi) of block b of turn i's session context: the group's system prompt or the session's."""
        lo, hi = b * BLOCK, (b + 1) * BLOCK
        return (-1 - int(self.w.group[i]), lo, hi) if hi <= self.w.prefix_tokens else (int(self.w.session[i]), lo, hi)

    def keys(self, i: int, tokens: int) -> list[tuple[int, int, int]]:
        """The full blocks covering the first `tokens` of turn i's session context."""
        return [self.key(i, b) for b in range(tokens // BLOCK)]

    def expire(self, t: float) -> None:
        self.now = t  # blocks do not expire

    def request(self, i: int) -> int:
        t = float(self.w.arrival[i])
        self.now = t
        limit = int(self.w.ctx_before[i])
        for k in self.keys(i, limit):
            if k in self.blocks:
                self.blocks[k][1] = t
        covered, b = 0, 0  # the held prefix of the context, block by block
        while self.key(i, b) in self.blocks:
            covered, b = (b + 1) * BLOCK, b + 1
        return self.served(i, min(covered, limit))

    def can_admit(self, i: int) -> bool:
        n = len(self.keys(i, self.w.ctx_after(i)))
        return 0 < n <= self.capacity // BLOCK

    def admit(self, i: int, policy: RetentionPolicy) -> bool:
        t = float(self.w.end[i])
        self.now = t
        keys = self.keys(i, self.w.ctx_after(i))
        self.offering = set(keys)
        over = len(self.blocks) + sum(k not in self.blocks for k in keys) - self.capacity // BLOCK
        for _ in range(max(0, over)):
            victim = policy.victim(self, i)
            if victim is None:
                self.offering = set()
                return False
            if victim not in self.blocks or victim in self.offering:
                raise InvalidArgumentError(f"{policy.name}: victim {victim!r} is not an evictable block")
            start, _ = self.blocks.pop(victim)
            if t > start:
                self.items.append((*victim, start, t))
        for k in keys:
            if k in self.blocks:
                self.blocks[k][1] = t
            else:
                self.blocks[k] = [t, t]
        self.offering = set()
        return True

    def held_items(self) -> list[Item]:
        t = float(self.w.end.max()) + 1.0
        return self.items + [(*k, start, t) for k, (start, _) in self.blocks.items()]

    def finish(self) -> list[Item]:
        self.items = self.held_items()
        self.blocks.clear()
        return self.items


def make_pool(w: SessionWorkload, granularity: str) -> Pool:
    if granularity == "entry":
        return EntryPool(w)
    if granularity == "block":
        return BlockPool(w)
    raise UnknownNameError("retention granularity", granularity, GRANULARITIES)


def policy_names() -> list[str]:
    """The named policies: the `kv_sessions.<name>` solvers that give a retention policy."""
    return solver_api.policy_names("kv_sessions")


def make_policy(policy: str | RetentionPolicy, **params: Any) -> RetentionPolicy:
    """A policy object from a name (`lru`, ..., the `kv_sessions.<name>` solvers) or the object itself."""
    return solver_api.make_policy("kv_sessions", policy, RetentionPolicy, what="session policy", **params)


@dataclass
class SimResult:
    items: list[Item]  # the decisions: what was held, from when to when
    reuse: np.ndarray  # per turn, context tokens served from the pool
    recompute_tokens: int


def simulate(w: SessionWorkload, policy: str | RetentionPolicy, **params: Any) -> SimResult:
    """Replay the workload under a retention policy (a name or a policy object)."""
    pol = make_policy(policy, **params)
    pool = make_pool(w, pol.granularity)
    for t, _, kind, i in events(w):
        if kind == "request":
            pool.request(i)
        else:
            pool.expire(t)
            if pool.can_admit(i) and pol.admit(i, pool):
                pool.admit(i, pol)
    return SimResult(pool.finish(), pool.reuse.copy(), pool.recompute_tokens())


def run_session_policy(w: SessionWorkload, policy: str | RetentionPolicy, *, ttl_s: float = 60.0,
                       ttl_factor: float = 1.5) -> list[Item]:
    """The old entry point: replay under a named policy and return its held items (`ttl_s` goes to `ttl`,
    `ttl_factor` to `continuum`)."""
    params: dict[str, Any] = {}
    if policy == "ttl":
        params["ttl_s"] = ttl_s
    elif policy == "continuum":
        params["ttl_factor"] = ttl_factor
    return simulate(w, policy, **params).items
