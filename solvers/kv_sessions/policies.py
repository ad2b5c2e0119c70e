"""The session-level retention policies: one implementation each, driven by the simulator and by the env.

Each policy implements the pool's protocol (`sysgym.envs.kv_sessions.simulator.RetentionPolicy`): `admit`
(keep a finished turn's KV?), `expiry` (until when) and `victim` (what leaves when the pool overflows). Its
solver `kv_sessions.<name>` replays the workload with it (`simulate`) and claims the pool's own count of
recomputed tokens, which the evaluator re-derives from the held items. `policy()` gives the object that the
simulator, `sysgym/SessionKv-v0`'s `pool=` and `PolicyAgent` drive.

* `none`: retain nothing (every later turn recomputes its context).
* `lru`: retain every turn; evict the least recently retained entry.
* `lfu`: retain every turn; evict the entry of the session with the fewest requests so far (ties: LRU).
* `ttl`: retain every turn for a fixed `ttl_s` (default 60 s, our assumption); LRU when the pool overflows.
* `continuum`: Li et al., "Continuum: Efficient and Robust Multi-Turn LLM Agent Scheduling with KV Cache
  Time-to-Live" (2025): retain only across tool calls, with TTL = the tool's predicted duration (its mean x
  `ttl_factor`, default 1.5); no retention across user think time; evict the entry expiring first.
* `prefix`: vLLM's automatic prefix caching: 16-token blocks keyed by their position in a hash chain (the group's
  system prompt, then the session's context), LRU over blocks; shares system prompts across sessions.
* `belady`: clairvoyant: on overflow evict the entry reused farthest in the future, or skip the new one if it is
  reused last (optimal for equal sizes: Belady 1966; with bypass, Yannakakis & Gavril 1987).
"""
from __future__ import annotations

import time
from typing import Any

from sysgym.envs.kv_sessions.generator import TOOLS
from sysgym.envs.kv_sessions.instance import SessionWorkload
from sysgym.envs.kv_sessions.simulator import RetentionPolicy, simulate
from sysgym.errors import InvalidArgumentError
from sysgym.solution import Solution
from sysgym.solver import Solver, register


class NoRetention(RetentionPolicy):
    name = "none"

    def admit(self, i, pool):
        return False

    def victim(self, pool, i):
        return None


class LRU(RetentionPolicy):
    name = "lru"

    def victim(self, pool, i):
        ent = pool.entries
        return min(ent, key=lambda k: (ent[k].last, k))


class LFU(RetentionPolicy):
    name = "lfu"

    def victim(self, pool, i):
        ent = pool.entries
        return min(ent, key=lambda k: (pool.freq.get(k, 0), ent[k].last, k))


class TTL(LRU):
    name = "ttl"

    def __init__(self, ttl_s: float = 60.0):
        if not ttl_s > 0:
            raise InvalidArgumentError(f"ttl_s must be > 0 seconds, got {ttl_s!r}")
        self.ttl_s = float(ttl_s)

    def expiry(self, i, pool):
        return float(pool.w.end[i]) + self.ttl_s


class Continuum(RetentionPolicy):
    name = "continuum"

    def __init__(self, ttl_factor: float = 1.5):
        if not ttl_factor > 0:
            raise InvalidArgumentError(f"ttl_factor must be > 0, got {ttl_factor!r}")
        self.ttl_factor = float(ttl_factor)

    def admit(self, i, pool):
        return pool.w.gap_kind[i] in TOOLS  # no pinning across user think time

    def expiry(self, i, pool):
        return float(pool.w.end[i]) + TOOLS[pool.w.gap_kind[i]] * self.ttl_factor

    def victim(self, pool, i):
        ent = pool.entries
        return min(ent, key=lambda k: (ent[k].expiry, k))


class PrefixCaching(RetentionPolicy):
    name = "prefix"
    granularity = "block"

    def victim(self, pool, i):
        candidates = [(last, k) for k, (_, last) in pool.blocks.items() if k not in pool.offering]
        return min(candidates)[1] if candidates else None


class Belady(RetentionPolicy):
    name = "belady"

    def victim(self, pool, i):
        ent = pool.entries
        s = max(ent, key=lambda k: (ent[k].next_use, k))
        return None if ent[s].next_use <= pool.next_use(i) else s


class PolicySolver(Solver):
    """Base of the policy solvers: replay the workload under `policy()` (see the module doc)."""

    family = "kv_sessions"
    kind = "heuristic"
    policy_cls: type[RetentionPolicy] = RetentionPolicy

    def policy(self) -> RetentionPolicy:
        return self.policy_cls(**self.config)

    def solve(self, instance: SessionWorkload, *, time_limit: float | None = None, seed: int = 0) -> Solution:
        t0 = time.perf_counter()
        sim = simulate(instance, self.policy())
        stats: dict[str, Any] = {"items": len(sim.items)}
        return Solution(decisions=sim.items, objective=float(sim.recompute_tokens), status="feasible",
                        wall_time_s=time.perf_counter() - t0, stats=stats)


@register
class NoneSolver(PolicySolver):
    """Retain nothing: every later turn recomputes its whole context (the floor)."""

    name = "kv_sessions.none"
    kind = "baseline"
    policy_cls = NoRetention

    def __init__(self):
        super().__init__()


@register
class LRUSolver(PolicySolver):
    """Retain every finished turn; evict the least recently retained entry."""

    name = "kv_sessions.lru"
    policy_cls = LRU

    def __init__(self):
        super().__init__()


@register
class LFUSolver(PolicySolver):
    """Retain every finished turn; evict the session with the fewest requests so far (ties: LRU)."""

    name = "kv_sessions.lfu"
    policy_cls = LFU

    def __init__(self):
        super().__init__()


@register
class TTLSolver(PolicySolver):
    """Retain every finished turn for a fixed TTL (60 s); LRU on overflow."""

    name = "kv_sessions.ttl"
    policy_cls = TTL

    def __init__(self, ttl_s: float = 60.0):
        super().__init__(ttl_s=ttl_s)
        self.policy()  # a bad option fails here, before any work


@register
class ContinuumSolver(PolicySolver):
    """Continuum (Li et al. 2025): retain across tool calls only, TTL = the tool's predicted duration x 1.5."""

    name = "kv_sessions.continuum"
    policy_cls = Continuum

    def __init__(self, ttl_factor: float = 1.5):
        super().__init__(ttl_factor=ttl_factor)
        self.policy()


@register
class PrefixSolver(PolicySolver):
    """vLLM automatic prefix caching: 16-token blocks in a hash chain, LRU over blocks, shared system prompts."""

    name = "kv_sessions.prefix"
    policy_cls = PrefixCaching

    def __init__(self):
        super().__init__()


@register
class BeladySolver(PolicySolver):
    """Belady (clairvoyant): evict the entry reused farthest in the future, or skip the new one."""

    name = "kv_sessions.belady"
    policy_cls = Belady

    def __init__(self):
        super().__init__()
