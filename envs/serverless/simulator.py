"""The warm-pool event simulator: invocations hit a warm instance or pay a cold start; idle instances stay warm
for a keep-alive window, are unloaded and pre-warmed later, or are evicted when a load needs their memory.

Decisions (what a policy, an agent or an offline plan chooses):
* a **plan** whenever a function's instance becomes idle (its last running invocation finished): `(prewarm_s,
  keep_alive_s)`. `prewarm_s = 0`: stay warm for `keep_alive_s` (`inf`: until evicted), then unload. `prewarm_s > 0`:
  unload now, start loading again `prewarm_s` later (loading takes the function's cold-start time) and stay warm
  for `keep_alive_s` once loaded (Shahrad et al.'s pre-warming and keep-alive windows, ATC'20 Sec. 4.2). An
  invocation that arrives first is served by a cold start and cancels the plan.
* an **eviction** whenever a load needs memory the pool does not have: one idle (or pre-warming) instance to
  unload, asked again until the load fits. A cold start always fits (the instance's capacity covers every busy
  instance); a pre-warm that cannot fit even after evicting every idle instance is skipped.

The simulator is a generator (`Simulator.run()`): it yields a `Request` at each decision and takes the answer
from `send`, so the policy-driven run (`simulate`) and the env (`sysgym/ServerlessKeepAlive-v0`) drive the same
code. At equal times events run in the order: instance becomes idle (its plan), arrivals, unloads, pre-warms;
an arrival at the very moment an instance is due to unload still finds it warm.

The schedule it returns is the list of instance lifetimes `(function, load_s, unload_s)` that
`sysgym.envs.serverless.evaluate` re-checks and scores. The family's decision vocabulary for agents and
policies is the grid `KEEP_ALIVE_MIN` x `PREWARM_MIN`; the simulator itself takes any non-negative times
(offline plans use exact ones).
"""
from __future__ import annotations

import heapq
import math
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from sysgym.envs.serverless.instance import ServerlessInstance
from sysgym.errors import InvalidArgumentError

EPS = 1e-6  # a wait of at most 1 microsecond is floating-point noise, not a cold start
INF = math.inf

# The decision grid, minutes. Shahrad et al. bin idle times by the minute (ATC'20 Sec. 4.2); Huawei's default
# keep-alive is 1 minute (Joosen et al., Sec. 2.2); AWS and Azure keep 10 and 20 minutes (Shahrad et al., Sec. 4.1);
# the hybrid policy's histogram range is 4 hours. Finer steps where keep-alives usually fall, coarser beyond; beyond
# the histogram's range, steps of at most 25 % up to a week (the `standard` horizon), so that a pre-warm ahead of a
# daily or weekly invocation (cron timers, the hybrid policy's forecast) is a plan, not "keep until evicted".
_LONG_MIN = (600, 720, 900, 1080, 1260, 1440, 1800, 2160, 2700, 3240, 4320, 5400, 7200, 10080)
KEEP_ALIVE_MIN = (0, 0.5, 1, 2, 3, 5, 7, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 360, 480, *_LONG_MIN, INF)
PREWARM_MIN = (0, 0.5, 1, 2, 3, 5, 7, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 360, 480, *_LONG_MIN)
KEEP_ALIVE_S = tuple(60.0 * m for m in KEEP_ALIVE_MIN)
PREWARM_S = tuple(60.0 * m for m in PREWARM_MIN)

_IDLE, _ARRIVAL, _EXPIRE, _PREWARM = 0, 1, 2, 3  # priorities at equal times


def snap_down(value_s: float, grid: tuple[float, ...]) -> float:
    """The largest grid value <= value_s (the grid's smallest if none)."""
    best = grid[0]
    for g in grid:
        if g <= value_s + 1e-9:
            best = g
    return best


def snap_up(value_s: float, grid: tuple[float, ...]) -> float:
    """The smallest grid value >= value_s (the grid's largest if none)."""
    for g in grid:
        if g >= value_s - 1e-9:
            return g
    return grid[-1]


class Request(NamedTuple):
    """A decision the simulator waits for: `kind` "plan" (for `function`, whose instance just became idle) or
    "evict" (`function` needs `need_mb` more; answer one of `candidates`)."""

    kind: str
    function: int
    time: float
    need_mb: float = 0.0
    candidates: tuple[int, ...] = ()


class Policy(Protocol):
    """What the simulator and the env drive (online policies live in `sysgym.solvers.serverless`)."""

    name: str

    def reset(self, sim: Simulator, seed: int = 0) -> None: ...

    def plan(self, sim: Simulator, f: int) -> tuple[float, float]: ...

    def victim(self, sim: Simulator, request: Request) -> int: ...


@dataclass
class SimResult:
    schedule: list[tuple[int, float, float]]
    metrics: dict[str, Any]
    stats: dict[str, Any] = field(default_factory=dict)


class Simulator:
    """One run over an instance. Read-only state for policies (lists indexed by function): `loaded`,
    `busy_end`, `idle_since`, `count` (invocations so far), `count_since_load`, `last_arrival`, `idle_times`
    (the idle times observed so far: from the end of a busy period to the next arrival), `ready`, `now`."""

    def __init__(self, inst: ServerlessInstance):
        self.inst = inst
        n_f = inst.num_functions
        self.mem = inst.mem_mb.tolist()
        self.cold = inst.cold_s.tolist()
        self.capacity = float(inst.capacity_mb)
        self.weight_per_mb_s = float(inst.memory_weight) / 1024.0
        self.now = 0.0
        self.loaded = [False] * n_f
        self.load_start = [0.0] * n_f
        self.ready = [0.0] * n_f
        self.busy_end = [-INF] * n_f
        self.busy_acc = [0.0] * n_f
        self.idle_since: list[float | None] = [None] * n_f
        self.last_idle_start: list[float | None] = [None] * n_f
        self.idle_times: list[list[float]] = [[] for _ in range(n_f)]
        self.count = [0] * n_f
        self.count_since_load = [0] * n_f
        self.last_arrival = [-INF] * n_f
        self._exp_ver = [0] * n_f
        self._pre_ver = [0] * n_f
        self._pre_keep = [0.0] * n_f
        self._idle_pending = [False] * n_f
        self.loaded_set: set[int] = set()
        self.used_mb = 0.0
        self.schedule: list[tuple[int, float, float]] = []
        self.wait_s = 0.0
        self.waste_gb_s = 0.0
        self.cost = 0.0
        self.cold_starts = 0
        self.evictions = 0
        self.prewarms = 0
        self.skipped_prewarms = 0
        self.plans = 0
        self.events = 0
        self.done = False
        self._heap: list[tuple[float, int, int, int, int]] = []
        self._seq = 0

    # -- queries for policies and the env -----------------------------------------------------------------
    def evictable(self, exclude: int = -1) -> list[int]:
        """Loaded instances with no invocation running or waiting (idle, or pre-warming), sorted."""
        t = self.now
        return sorted(g for g in self.loaded_set if g != exclude and self.busy_end[g] <= t)

    @property
    def free_mb(self) -> float:
        return self.capacity - self.used_mb

    # -- the run ------------------------------------------------------------------------------------------
    def run(self) -> Generator[Request, Any, None]:
        inst = self.inst
        times, funcs, execs = inst.inv_time.tolist(), inst.inv_func.tolist(), inst.inv_exec.tolist()
        n, end_s, heap = len(times), inst.end_s, self._heap
        ai = 0
        while True:
            next_arrival = times[ai] if ai < n else INF
            if heap and (heap[0][0] < next_arrival or (heap[0][0] == next_arrival and heap[0][1] < _ARRIVAL)):
                if ai >= n and heap[0][0] > end_s:
                    break
                t, kind, _seq, f, ver = heapq.heappop(heap)
                self.now = t
                self.events += 1
                if kind == _IDLE:
                    yield from self._on_idle(f, t)
                elif kind == _EXPIRE:
                    if ver == self._exp_ver[f] and self.loaded[f] and self.busy_end[f] <= t:
                        self._unload(f, t)
                else:
                    if ver == self._pre_ver[f] and not self.loaded[f]:
                        yield from self._on_prewarm(f, t)
            elif ai < n:
                self.now = t = times[ai]
                self.events += 1
                yield from self._on_arrival(funcs[ai], t, execs[ai])
                ai += 1
            else:
                break
        self.now = end_s
        for f in sorted(self.loaded_set):
            self._unload(f, end_s)
        self.done = True

    # -- events -------------------------------------------------------------------------------------------
    def _push(self, t: float, kind: int, f: int, ver: int = 0) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, kind, self._seq, f, ver))

    def _on_arrival(self, f: int, t: float, e: float):
        if t >= self.busy_end[f] and self.last_idle_start[f] is not None:
            self.idle_times[f].append(t - self.last_idle_start[f])
        self.count[f] += 1
        self.last_arrival[f] = t
        if self.loaded[f]:
            was_idle = self.busy_end[f] <= t
            start = max(t, self.ready[f])
            end = start + e
            self.busy_acc[f] += max(0.0, end - max(t, self.busy_end[f]))
            self.busy_end[f] = max(self.busy_end[f], end)
            if was_idle:
                self._exp_ver[f] += 1
                self._pre_ver[f] += 1
                self.idle_since[f] = None
                self._ensure_idle_event(f)
        else:
            yield from self._make_room(f, t, self.mem[f])
            self._load(f, t)
            start = t + self.cold[f]
            end = start + e
            self.busy_acc[f] = end - t
            self.busy_end[f] = end
            self.idle_since[f] = None
            self._ensure_idle_event(f)
        self.count_since_load[f] += 1
        wait = start - t
        self.wait_s += wait
        self.cost += wait
        if wait > EPS:
            self.cold_starts += 1

    def _ensure_idle_event(self, f: int) -> None:
        if not self._idle_pending[f]:
            self._idle_pending[f] = True
            self._push(self.busy_end[f], _IDLE, f)

    def _on_idle(self, f: int, t: float):
        self._idle_pending[f] = False
        if not self.loaded[f]:
            return
        if self.busy_end[f] > t:
            self._ensure_idle_event(f)
            return
        self.idle_since[f] = t
        self.last_idle_start[f] = t
        self.plans += 1
        answer = yield Request("plan", f, t)
        prewarm, keep = self._check_plan(answer, f)
        self._exp_ver[f] += 1
        self._pre_ver[f] += 1
        if prewarm <= 0.0:
            if keep < INF:
                self._push(t + keep, _EXPIRE, f, self._exp_ver[f])
        else:
            self._push(t, _EXPIRE, f, self._exp_ver[f])
            self._pre_keep[f] = keep
            self._push(t + prewarm, _PREWARM, f, self._pre_ver[f])

    def _on_prewarm(self, f: int, t: float):
        need = self.mem[f]
        if self.used_mb + need > self.capacity + 1e-9:
            room = self.capacity - self.used_mb + sum(self.mem[g] for g in self.evictable(f))
            if room + 1e-9 < need:
                self.skipped_prewarms += 1
                return
            yield from self._make_room(f, t, need)
        self._load(f, t)
        self.prewarms += 1
        self.busy_end[f] = t
        self.busy_acc[f] = 0.0
        self.idle_since[f] = t
        keep = self._pre_keep[f]
        if keep < INF:
            self._exp_ver[f] += 1
            self._push(self.ready[f] + keep, _EXPIRE, f, self._exp_ver[f])

    def _make_room(self, f: int, t: float, need: float):
        """Ask for evictions until `need` MB fit (a pre-warm checks first that they can; a cold start always can)."""
        while self.used_mb + need > self.capacity + 1e-9:
            candidates = tuple(self.evictable(f))
            if not candidates:
                raise RuntimeError(f"{self.inst.name}: no idle instance to evict for function {f} at {t} s "
                                   f"({self.used_mb} of {self.capacity} MB busy); the capacity invariant is broken")
            victim = yield Request("evict", f, t, need - (self.capacity - self.used_mb), candidates)
            try:
                v = int(victim)
            except (TypeError, ValueError):
                raise InvalidArgumentError(f"eviction answer {victim!r} is not a function index") from None
            if v not in candidates:
                raise InvalidArgumentError(f"eviction of function {v} at {t} s: evictable are {list(candidates)}")
            self._unload(v, t)
            self.evictions += 1

    def _load(self, f: int, t: float) -> None:
        self.loaded[f] = True
        self.loaded_set.add(f)
        self.load_start[f] = t
        self.ready[f] = t + self.cold[f]
        self.used_mb += self.mem[f]
        self.count_since_load[f] = 0
        self._pre_ver[f] += 1
        self._exp_ver[f] += 1

    def _unload(self, f: int, t: float) -> None:
        self.schedule.append((f, self.load_start[f], t))
        waste = max(0.0, (t - self.load_start[f]) - self.busy_acc[f]) * self.mem[f] / 1024.0
        self.waste_gb_s += waste
        self.cost += self.inst.memory_weight * waste
        self.used_mb -= self.mem[f]
        self.loaded[f] = False
        self.loaded_set.discard(f)
        self.idle_since[f] = None
        self.count_since_load[f] = 0
        self._exp_ver[f] += 1  # (a pre-warm the plan scheduled for after this unload stays scheduled)

    @staticmethod
    def _check_plan(answer: Any, f: int) -> tuple[float, float]:
        try:
            prewarm, keep = (float(x) for x in answer)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"plan for function {f} must be (prewarm_s, keep_alive_s), got {answer!r}") \
                from None
        if not (math.isfinite(prewarm) and prewarm >= 0) or not (keep >= 0):  # keep may be inf, not NaN
            raise InvalidArgumentError(f"plan for function {f}: prewarm_s must be finite >= 0 and keep_alive_s "
                                       f">= 0 (inf: until evicted), got ({prewarm}, {keep})")
        return prewarm, keep


def drive(sim: Simulator, policy: Policy) -> None:
    """Run `sim` to the end, answering every request with `policy`."""
    gen = sim.run()
    try:
        req = next(gen)
        while True:
            req = gen.send(policy.plan(sim, req.function) if req.kind == "plan" else policy.victim(sim, req))
    except StopIteration:
        pass


def resolve_policy(policy: Policy | str, **params: Any) -> Policy:
    """A policy object, or the policy of the registered solver `serverless.<name>` (through the core registry)."""
    if not isinstance(policy, str):
        if params:
            raise InvalidArgumentError("policy parameters go with a policy name, not a policy object")
        return policy
    from sysgym.registry import solver_class

    name = policy if policy.startswith("serverless.") else f"serverless.{policy}"
    solver = solver_class(name, "serverless")(**params)
    if not hasattr(solver, "policy"):
        raise InvalidArgumentError(f"{name} is not an online policy (it has no policy())")
    return solver.policy()


def simulate(inst: ServerlessInstance, policy: Policy | str, *, seed: int = 0, **params: Any) -> SimResult:
    """Run an online policy (an object, or a name such as "hybrid" or "fixed" with its options) on an instance;
    the schedule is scored by the family's evaluator."""
    from sysgym.envs.serverless.evaluate import evaluate

    pol = resolve_policy(policy, **params)
    t0 = time.perf_counter()
    sim = Simulator(inst)
    pol.reset(sim, seed)
    drive(sim, pol)
    wall = time.perf_counter() - t0
    metrics = evaluate(inst, sim.schedule)
    stats = {"events": sim.events, "plans": sim.plans, "evictions": sim.evictions, "prewarms": sim.prewarms,
             "skipped_prewarms": sim.skipped_prewarms, "sim_wall_s": wall,
             "invocations_per_s": inst.num_invocations / wall if wall > 0 else float("inf"),
             "sim_cost": sim.cost}
    return SimResult(sim.schedule, metrics, stats)
