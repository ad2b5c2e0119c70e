"""One serving replica's iteration loop (paged KV cache) and the scheduler protocol it calls.

The event loop works per *iteration*, never per token: request state lives in numpy arrays, and when the
running batch only decodes and no scheduling decision can change (no arrival, no completion, enough free
blocks, and a refused waiting request stays refused), a whole run of decode iterations is computed at once:
per-iteration KV use and attention cost come from a (requests x iterations) array, iteration times from the
cached batch-latency model, token timestamps are written into one flat array. Token timestamps are the only
per-token data (one float each).

Semantics of one request with prompt p and output o tokens (`generated` g, KV tokens computed `kv`):
admission allocates blocks and starts a prefill of p + g tokens (g > 0 after a recompute preemption);
the iteration that completes the prefill emits token g; each decode iteration needs p + g KV slots, writes
one KV entry and emits the next token; the request finishes with its o-th token and frees its blocks.

One iteration boundary (`Replica.step`), in the scheduler's batching style:

* prefill-first (``mixed = False``, vLLM v0): admit waiting requests in the scheduler's order; if any was
  admitted the iteration runs their prefills only; otherwise every running request decodes, after the
  scheduler's victims are preempted until each decode has its next KV slot, and swapped requests return.
* mixed (``mixed = True``, Orca, Sarathi-Serve): first preempt until every decode has its slot, swap in,
  continue the chunked prefills (``chunked``), then admit under the iteration's token budget; prefills and
  decodes share the iteration.

The schedulers themselves (vLLM, Orca, Sarathi-Serve, Past-Future, VTC, SJF) are methods of the family and live
in `sysgym.solvers.llm_serving`; the simulator finds one by name through the core registry (`make_scheduler`).
`sysgym/LlmServing-v0` runs the same `Replica` and asks its agent for the decisions a scheduler makes here.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from sysgym import registry
from sysgym.envs.llm_serving.latency import BatchLatency
from sysgym.envs.llm_serving.memory import MemoryPlan
from sysgym.envs.llm_serving.traces import Trace
from sysgym.errors import InvalidArgumentError, InvalidInstanceError, UnknownNameError
from sysgym.kernels.operators import DECODE_BLOCK_N

FAMILY = "llm_serving"
PCIE_EFFICIENCY = 0.8  # achieved share of PCIe x16 bandwidth for pinned host copies (NVIDIA bandwidthTest
#                        reaches ~25 of 31.5 GB/s on PCIe 4.0 x16)
FF_MAX_ITERS = 4096  # longest run of decode iterations computed in one array operation
FF_DENSE = 16384  # up to this many (request, iteration) cells a run's block counts use the dense array
_ITERS = np.arange(FF_MAX_ITERS)  # iteration offsets within a run (sliced, never written)
_ITERS.flags.writeable = False
# the methods whose per-boundary work `Replica._chunk_run` replays (a subclass overriding one runs them instead)
CHUNK_RUN_METHODS = ("run", "ingest", "idle", "step", "execute", "complete", "advance", "batch_cost", "_admit",
                     "_reserve_decodes", "_decode_need", "_continuations", "swap_in")
_ONE = np.array(1, np.int64)  # (a 0-d array operand: see Replica._bs0)
_ONE.flags.writeable = False
# Up to this many entries, an integer array is reduced through a Python list: a numpy reduction's fixed cost
# (~1 us a call, numpy 2.4) is ~5x that of tolist() + sum() over the ~13 requests of a typical batch, and
# the running batch is reduced a few times per iteration boundary. Integer sums are exact either way.
SMALL_REDUCE = 48
# A decode run of a small batch (<= SMALL_REDUCE requests) bounded to at most this many iterations is computed in
# Python scalars (`Replica._ff_scalar`): ~35 numpy calls of ~1 us fixed cost each outweigh a loop over so few
# iterations (at half the conv trace's rate the median run is 8 iterations of 10 requests)
FF_SCALAR_ITERS = 64
# A refused head's decode run (`Replica._decode_run`) of at most this many requests is computed in Python numbers:
# one pass over the requests for their block crossings, then a loop over the run's few iterations (under Past-
# Future at the conv trace's full rate: ~90 requests, ~3 iterations) instead of ~25 numpy calls
RUN_SCALAR_MAX = 256


def isum(x: np.ndarray) -> int:
    """Sum of an integer array, as a Python int."""
    return sum(x.tolist()) if len(x) <= SMALL_REDUCE else int(np.add.reduce(x))


def imin(x: np.ndarray) -> int:
    """Minimum of a non-empty integer array, as a Python int."""
    return min(x.tolist()) if len(x) <= SMALL_REDUCE else int(np.minimum.reduce(x))


def anytrue(x: np.ndarray) -> bool:
    """Whether a boolean array has a True entry."""
    return True in x.tolist() if len(x) <= SMALL_REDUCE else bool(np.logical_or.reduce(x))


def block_crossings(kvb: list[int], bs: int) -> tuple[int, list[int]]:
    """For decodes with `kvb` = KV + block size each: their KV slots at the first iteration of a run,
    sum_i ceil((kv_i + 1) / bs), and `cross[r]`, how many of them need one more block at iterations j = r (mod bs),
    j > 0 (the scalar runs' slot counts grow by `cross[j % bs]` at iteration j)."""
    tot = 0
    cross = [0] * bs
    for x in kvb:
        tot += x // bs
        cross[-x % bs] += 1
    return tot, cross


def pairwise_sum(v: list[float], lo: int = 0, n: int | None = None) -> float:
    """`np.add.reduce` of a float64 array with these entries, to the bit, in Python floats: numpy's pairwise
    summation (numpy/_core/src/umath/loops_utils.h.src: sequential from -0.0 below 8 entries, eight running
    sums up to 128, halves above). The scalar fast-forward sums its KV area with it, as the array one does."""
    if n is None:
        n = len(v)
    if n < 8:
        res = -0.0
        for i in range(lo, lo + n):
            res += v[i]
        return res
    if n <= 128:
        r0, r1, r2, r3, r4, r5, r6, r7 = v[lo:lo + 8]
        i, stop = lo + 8, lo + n - n % 8
        while i < stop:
            r0 += v[i]
            r1 += v[i + 1]
            r2 += v[i + 2]
            r3 += v[i + 3]
            r4 += v[i + 4]
            r5 += v[i + 5]
            r6 += v[i + 6]
            r7 += v[i + 7]
            i += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        for i in range(stop, lo + n):
            res += v[i]
        return res
    half = n // 2
    half -= half % 8
    return pairwise_sum(v, lo, half) + pairwise_sum(v, lo + half, n - half)


class Scheduler(Protocol):
    """What `Replica` calls on its scheduler (implementations: `sysgym.solvers.llm_serving.schedulers`).

    Flags: `mixed` (prefills and decodes share an iteration), `chunked` (prefills may be split over
    iterations under the token budget), `fcfs` (a refused head blocks the whole queue), `counts_tokens`
    (`on_tokens` is called for every generated token). Knobs: `max_num_seqs`, `max_num_batched_tokens`
    (None: the replica's defaults), `watermark` (share of KV blocks admission keeps free),
    `preemption_mode` (``"recompute"`` or ``"swap"``).

    `bind(replica)` is called once per run; the replica exposes `prompt`, `output`, `generated`, `arrival`,
    `client` (per-request arrays), `running` (request ids in admission order), `num_blocks`, `block_size`,
    `max_tokens` and `free_blocks`, and the scheduler sets `watermark_blocks`. Then:

    * queue: `on_arrival(rid)`, `requeue(rid)` (a recompute-preempted request), `peek()` (the request it
      would admit next, or None), `pop(rid)`, `waiting()` (every waiting request in its order), `len()`;
    * admission: `admit_blocks(rid)` (blocks allocated at admission), `fits(rid, need)` (the memory rule:
      the engine's, which `sysgym/LlmServing-v0` masks by), `can_admit(rid, need)` (the scheduler's own
      further rule, asked once `fits` holds), `holds_while_decoding(rid, need, admissible)` (after
      refusing its head `rid`, whether `peek()` stays `rid` and the refusal stays one while the batch only
      decodes, with no arrival and no completion, so the replica may skip those boundaries; `admissible`
      says whether the engine's rules allowed `rid`, i.e. whether `can_admit` refused it); optional
      `refusal_holds(rid, need)` after `can_admit` refused `rid` where that refusal does not hold: None, or
      (boundaries, free-block floor), the next boundaries of a decode-only run at which it provably stays
      (while free blocks stay >= the floor), which the replica then runs in one pass (`_decode_run`);
    * events: `on_admit(rid)`, `on_tokens(rids, count)`, `on_finish(rid)`;
    * preemption: `victim(running)` (the request to preempt when a decode lacks a KV block);
    * `params()` (its configuration) and `clone()` (a fresh, unbound scheduler with the same configuration).
    """

    name: str
    mixed: bool
    chunked: bool
    fcfs: bool
    counts_tokens: bool
    max_num_seqs: int | None
    max_num_batched_tokens: int | None
    watermark: float
    watermark_blocks: int
    preemption_mode: str

    def bind(self, replica: Replica) -> None: ...
    def __len__(self) -> int: ...
    def on_arrival(self, rid: int) -> None: ...
    def requeue(self, rid: int) -> None: ...
    def peek(self) -> int | None: ...
    def pop(self, rid: int) -> None: ...
    def waiting(self) -> list[int]: ...
    def admit_blocks(self, rid: int) -> int: ...
    def fits(self, rid: int, need: int) -> bool: ...
    def can_admit(self, rid: int, need: int) -> bool: ...
    def holds_while_decoding(self, rid: int, need: int, admissible: bool) -> bool: ...
    def on_admit(self, rid: int) -> None: ...
    def on_tokens(self, rids: np.ndarray, count: int) -> None: ...
    def on_finish(self, rid: int) -> None: ...
    def victim(self, running: list[int]) -> int: ...
    def params(self) -> dict[str, Any]: ...
    def clone(self) -> Scheduler: ...


@dataclass
class DecisionPoint:
    """Where `sysgym/LlmServing-v0` waits for its agent (`Replica.decision` while it waits; None otherwise).

    `phase` is ``"admit"`` (admit a waiting slot, preempt a running one, or 0: run the iteration) or
    ``"preempt"`` (a decode lacks a KV block: only preemptions); `waiting` and `running` are the request
    ids of the slots (waiting in the scheduler's order, running in admission order); `mask` the valid
    actions. A scheduler acting as the env's policy maps its choice to an action with `admit_action` and
    `preempt_action`."""

    phase: str
    waiting: list[int]
    running: list[int]
    max_waiting: int
    mask: np.ndarray

    def admit_action(self, rid: int) -> int:
        return 1 + self.waiting.index(rid)

    def preempt_action(self, rid: int) -> int:
        return 1 + self.max_waiting + self.running.index(rid)


def scheduler_names() -> list[str]:
    """The registered schedulers (`llm_serving.<name>` solvers that make a scheduler)."""
    return [n.split(".", 1)[1] for n in registry.list_solvers(FAMILY)
            if hasattr(registry.solver_class(n), "make_scheduler")]


def make_scheduler(name: str | Scheduler, **params: Any) -> Scheduler:
    """A scheduler by name (the registered method `llm_serving.<name>` makes it), or `name` itself when it is
    already a scheduler object. Unknown names list the known ones, unknown parameters the accepted ones."""
    if not isinstance(name, str):
        if params:
            raise InvalidArgumentError("pass parameters to the scheduler's constructor, not with a scheduler object")
        return name
    try:
        cls = registry.solver_class(f"{FAMILY}.{name}")
    except UnknownNameError:
        cls = None
    if cls is None or not hasattr(cls, "make_scheduler"):
        raise UnknownNameError("scheduler", name, scheduler_names())
    return cls.make_scheduler(**params)


class RequestState:
    """Per-request arrays shared by the replicas of one simulation (each request belongs to one)."""

    def __init__(self, trace: Trace, prompt: np.ndarray, output: np.ndarray):
        n = len(trace)
        self.n = n
        self.arrival = trace.arrival
        self.client = trace.client
        self.prompt = np.asarray(prompt, np.int64)
        self.output = np.asarray(output, np.int64)
        self.generated = np.zeros(n, np.int64)
        self.kv = np.zeros(n, np.int64)
        self.blocks = np.zeros(n, np.int64)
        self.in_prefill = np.zeros(n, bool)
        self.first_scheduled = np.full(n, np.nan)
        self.finish = np.full(n, np.nan)
        self.preemptions = np.zeros(n, np.int64)
        self.replica = np.full(n, -1, np.int64)
        self.offsets = np.zeros(n + 1, np.int64)
        np.cumsum(self.output, out=self.offsets[1:])
        self.token_time = np.full(int(self.offsets[-1]), np.nan)


@dataclass
class IterationLog:
    """One row per executed step (a single iteration, or a fast-forwarded run of `n` decode iterations)."""

    start: list = field(default_factory=list)
    end: list = field(default_factory=list)
    n: list = field(default_factory=list)
    seqs: list = field(default_factory=list)  # requests in the batch
    tokens: list = field(default_factory=list)  # tokens per iteration (for a run: per iteration)
    blocks_max: list = field(default_factory=list)  # most KV blocks in use during the step

    def arrays(self) -> dict[str, np.ndarray]:
        return {"start": np.asarray(self.start, float), "end": np.asarray(self.end, float),
                "n": np.asarray(self.n, np.int64), "seqs": np.asarray(self.seqs, np.int64),
                "tokens": np.asarray(self.tokens, np.int64), "blocks_max": np.asarray(self.blocks_max, np.int64)}


class Replica:
    """One model replica: a block pool, a running batch, a scheduler and a clock."""

    def __init__(self, index: int, st: RequestState, plan: MemoryPlan, latency: BatchLatency, scheduler: Scheduler,
                 *, max_num_seqs: int | None = None, max_num_batched_tokens: int | None = None):
        self.index = index
        self.st = st
        self.plan = plan
        self.lat = latency
        self.num_blocks = plan.num_blocks
        self.block_size = plan.block_size
        # the block size as 0-d int64 arrays: an array operand costs numpy ~0.2 us less per operation than a Python
        # int (no scalar conversion), on the few-element arrays of every boundary; the values are the same
        self._bs0 = np.array(self.block_size, np.int64)
        self._bsm1 = np.array(self.block_size - 1, np.int64)
        self.max_tokens = plan.max_tokens
        self.max_num_seqs = int(max_num_seqs or scheduler.max_num_seqs or plan.max_batch_size)
        budget = max_num_batched_tokens or scheduler.max_num_batched_tokens
        self.token_budget = int(budget or max(plan.max_tokens, 4096))
        # scheduler view
        self.prompt, self.output, self.arrival, self.client = st.prompt, st.output, st.arrival, st.client
        self.generated = st.generated
        self.sched = scheduler
        self.running: list[int] = []
        self.swapped: deque[int] = deque()
        self.used = 0
        self.now = 0.0
        self.arrivals: list[int] = []
        self.ptr = 0
        self.log = IterationLog()
        self.kv_area = 0.0  # integral of blocks in use over time (block-seconds)
        self.tokens_processed = 0
        self.iterations = 0
        self.num_preemptions = 0
        self.memory_trace: list[tuple[float, int]] = []
        self.swap_s_per_block = (self.block_size * plan.kv_bytes_per_token /
                                 (_pcie_gbps(latency.gpu) * 1e9 * PCIE_EFFICIENCY))
        self.decision: Any = None  # set by sysgym/LlmServing-v0 while it waits for its agent (see env.py)
        self._holds = True  # whether the last refused admission stays refused while the batch only decodes
        # (decodes, their KV blocks, kv + block size, blocks once allocated), from _decode_need
        self._dec_slots: tuple[np.ndarray, ...] | None = None
        # a refusal that holds for a bounded number of decode iterations (Scheduler.refusal_holds, optional):
        # (boundaries, free-block floor) of the last refusal, or None
        self._hold: tuple[int, int] | None = None
        self._refusal_holds = getattr(scheduler, "refusal_holds", None)
        # `_chunk_run` replays what these methods do at each boundary of a chunked prefill: only a replica that
        # overrides none of them takes it (the pipelined and disaggregated replicas run their own boundaries)
        cls = type(self)
        self._chunk_runs = all(getattr(cls, m) is getattr(Replica, m) for m in CHUNK_RUN_METHODS)
        scheduler.bind(self)

    # -- scheduler-facing properties -----------------------------------------------------------------
    @property
    def free_blocks(self) -> int:
        return self.num_blocks - self.used

    @property
    def num_waiting(self) -> int:
        return len(self.sched) + len(self.swapped)

    def outstanding(self) -> int:
        """Requests routed here and not finished (arrived ones only)."""
        return len(self.running) + len(self.sched) + len(self.swapped)

    # -- driving ---------------------------------------------------------------------------------------
    def add(self, rid: int) -> None:
        self.arrivals.append(rid)
        self.st.replica[rid] = self.index

    def ingest(self) -> None:
        """Hand the requests that have arrived by now to the scheduler."""
        arr = self.st.arrival
        while self.ptr < len(self.arrivals) and arr[self.arrivals[self.ptr]] <= self.now:
            self.sched.on_arrival(self.arrivals[self.ptr])
            self.ptr += 1

    def next_arrival(self) -> float:
        return float(self.st.arrival[self.arrivals[self.ptr]]) if self.ptr < len(self.arrivals) else math.inf

    def idle(self) -> bool:
        return not self.running and not len(self.sched) and not self.swapped

    def run(self, until: float = math.inf) -> None:
        """Simulate until the clock reaches `until` (an iteration in flight may end after it)."""
        while True:
            self.ingest()
            if self.idle():
                t = self.next_arrival()
                if t < until and t < math.inf:
                    self.now = max(self.now, t)
                    continue
                return
            if self.now >= until:
                return
            self.step(until)

    # -- the pieces of one boundary (the simulator's step and the env both use them) ---------------------
    def running_array(self) -> np.ndarray:
        return np.fromiter(self.running, np.int64, len(self.running))

    def decode_need(self) -> tuple[np.ndarray, np.ndarray, int]:
        """(decoding requests, their blocks after this iteration's KV slot, blocks still to allocate)."""
        return self._decode_need()[2:]

    def _decode_need(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
        """`decode_need` after the running array and its prefill mask (which `step` reuses)."""
        st = self.st
        R = self.running_array()
        inpf = st.in_prefill[R]
        # a small batch with no prefill (every decode step of prefill-first schedulers) skips the mask's two array
        # operations; a large one masks as before (its check would be a numpy reduction, no cheaper)
        d = R[~inpf] if len(R) > SMALL_REDUCE or anytrue(inpf) else R
        if not len(d):
            return R, inpf, d, d, 0
        held = st.blocks[d]
        kvb = st.kv[d] + self._bs0
        slots = kvb // self._bs0  # ceil((kv + 1) / bs)
        new = np.maximum(slots, held)
        # batch_cost prices the same decodes by the same slot counts, and _fast_forward starts from them (with
        # kv + bs and the blocks once this iteration's slots are allocated): kept with the array they belong to
        # (the iteration's decodes are this object; their KV does not change before the batch is priced)
        self._dec_slots = (d, slots, kvb, new)
        return R, inpf, d, new, isum(new - held)

    def decode_shortfall(self) -> int:
        """KV blocks the decodes lack for their next slot (> 0: something must be preempted)."""
        return self.decode_need()[2] - self.free_blocks

    def allocate_decodes(self) -> None:
        """Give every decode its next KV slot (call when `decode_shortfall() <= 0`)."""
        d, new, need = self.decode_need()
        if need:
            self.used += need
            self.st.blocks[d] = new

    def chunk_continuations(self, prefills: list) -> int:
        """Mixed batching: the ongoing chunked prefills join this iteration; returns the token budget left."""
        return self._continuations(prefills)[0]

    def _continuations(self, prefills: list, R: np.ndarray | None = None, inpf: np.ndarray | None = None,
                       dec: np.ndarray | None = None) -> tuple[int, np.ndarray]:
        """`chunk_continuations`, and the running decodes (admission adds only prefills, so `step` keeps them);
        `R`, `inpf`, `dec`: the running array, its prefill mask and its decodes when the caller has them."""
        st = self.st
        if R is None:
            R = self.running_array()
            inpf = st.in_prefill[R]
            dec = R[~inpf]
        budget = self.token_budget - len(dec)
        if self.sched.chunked and len(dec) < len(R):
            prompt, generated, kv = self.prompt, self.generated, st.kv
            for r in R[inpf].tolist():
                if budget <= 0:
                    break
                c = min(int(prompt[r] + generated[r] - kv[r]), budget)
                prefills.append((r, c))
                budget -= c
        return budget, dec

    def admissible(self, rid: int, prefills: list, budget: int) -> tuple[bool, int]:
        """Whether the engine may admit `rid` now (batch cap, token budget, the scheduler's memory rule),
        and the blocks it would take."""
        if budget <= 0 or len(self.running) >= self.max_num_seqs:
            return False, 0
        need_tokens = int(self.prompt[rid] + self.generated[rid])
        sched = self.sched
        if not sched.chunked and need_tokens > budget and (prefills or (self.running and sched.mixed)):
            return False, 0
        need = sched.admit_blocks(rid)
        return sched.fits(rid, need), need

    def admit(self, rid: int, need: int, prefills: list, budget: int) -> int:
        """Admit `rid` (its prefill, or its first chunk, joins `prefills`); returns the token budget left."""
        st, sched = self.st, self.sched
        sched.pop(rid)
        st.blocks[rid] = need
        self.used += need
        st.kv[rid] = 0
        st.in_prefill[rid] = True
        if math.isnan(st.first_scheduled[rid]):
            st.first_scheduled[rid] = self.now
        self.running.append(rid)
        sched.on_admit(rid)
        need_tokens = int(self.prompt[rid] + self.generated[rid])
        chunk = min(need_tokens, budget) if sched.chunked else need_tokens
        prefills.append((rid, chunk))
        return budget - chunk

    def _admit(self, prefills: list, budget: int) -> bool:
        """Admit waiting requests in the scheduler's order; True when a waiting request was refused
        (`self._holds` then says whether the refusal holds while the batch only decodes)."""
        sched = self.sched
        self._holds = True
        self._hold = None
        while budget > 0:
            rid = sched.peek()
            if rid is None:
                return False
            if len(self.running) >= self.max_num_seqs:
                return True  # the batch cap: nothing is admitted before a completion, whoever comes first
            ok, need = self.admissible(rid, prefills, budget)
            if ok and sched.can_admit(rid, need):
                budget = self.admit(rid, need, prefills, budget)
                continue
            self._holds = sched.holds_while_decoding(rid, need, ok)
            if not self._holds and ok and self._refusal_holds is not None:
                self._hold = self._refusal_holds(rid, need)
            return True
        return len(sched) > 0

    def preempt(self, rid: int) -> float:
        """Preempt a running request (recompute: back to the queue; swap: its KV to host memory); returns
        the swap seconds it costs."""
        st = self.st
        self.running.remove(rid)
        self.used -= int(st.blocks[rid])
        st.preemptions[rid] += 1
        self.num_preemptions += 1
        cost = 0.0
        if self.sched.preemption_mode == "swap" and not st.in_prefill[rid]:
            cost = self.swap_s_per_block * int(st.blocks[rid])
            self.swapped.append(rid)
        else:
            st.kv[rid] = 0
            st.in_prefill[rid] = True
            self.sched.requeue(rid)
        st.blocks[rid] = 0
        return cost

    def _reserve_decodes(self) -> tuple[float, bool]:
        """Make room for every decode's next KV slot, preempting the scheduler's victims; allocate.
        `self._batch` keeps (running array, prefill mask, decodes) of the batch it leaves."""
        extra, preempted = 0.0, False
        while True:  # decode_shortfall and allocate_decodes, with the need computed once per round
            R, inpf, d, new, need = self._decode_need()
            if need - self.free_blocks <= 0:
                break
            extra += self.preempt(self.sched.victim(self.running))
            preempted = True
        if need:
            self.used += need
            self.st.blocks[d] = new
        self._batch = (R, inpf, d)
        return extra, preempted

    def swap_in(self) -> float:
        st = self.st
        cost = 0.0
        while self.swapped and len(self.running) < self.max_num_seqs:
            rid = self.swapped[0]
            need = -(-(int(st.kv[rid]) + 1) // self.block_size)
            if self.free_blocks - need < self.sched.watermark_blocks:
                break
            self.swapped.popleft()
            st.blocks[rid] = need
            self.used += need
            self.running.append(rid)
            cost += self.swap_s_per_block * need
        return cost

    def never_admitted(self) -> InvalidInstanceError:
        rid = self.sched.peek()
        return InvalidInstanceError(
            f"replica {self.index}: request {rid} ({int(self.prompt[rid])} prompt + {int(self.output[rid])} "
            f"output tokens) can never be admitted: {self.num_blocks} KV blocks of {self.block_size} tokens, "
            f"watermark {self.sched.watermark_blocks} blocks")

    # -- one scheduling step ------------------------------------------------------------------------
    def step(self, until: float = math.inf) -> None:
        sched = self.sched
        extra = 0.0
        prefills: list[tuple[int, int]] = []
        preempted = False
        if sched.mixed:
            extra, preempted = self._reserve_decodes()
            n = len(self.running)
            extra += self.swap_in()
            budget, dec = self._continuations(prefills, *(self._batch if len(self.running) == n else ()))
            before = len(self.running) - len(prefills)
            blocked = self._admit(prefills, budget) if not self.swapped else self._blocked_by_swaps()
            if len(self.running) - len(prefills) != before:  # an admission joined as a decode (disagg.py)
                R = self.running_array()
                dec = R[~self.st.in_prefill[R]]
        else:
            blocked = self._admit(prefills, self.token_budget) if not self.swapped else self._blocked_by_swaps()
            if not prefills:
                extra, preempted = self._reserve_decodes()
                n = len(self.running)
                extra += self.swap_in()
                R, _, d = self._batch
                dec = d if len(self.running) == n and len(d) == n else self.running_array()
            else:
                dec = np.zeros(0, np.int64)
        if not prefills and not preempted and extra == 0.0 and len(dec) and len(dec) == len(self.running):
            if not blocked or self._holds:
                self._fast_forward(until, blocked and sched.fcfs, dec)
                return
            if self._hold is not None and self._hold[0] > 0 and sched.fcfs:
                self._decode_run(until, dec, *self._hold)
                return
        if not prefills and not len(dec):
            if extra > 0:  # only swaps happened
                self.advance(extra, 0, 0)
                return
            self.nothing_to_run()
            return
        if (len(prefills) == 1 and self._chunk_runs and sched.chunked and not sched.counts_tokens and extra == 0.0
                and not preempted and not self.swapped and 0 < len(dec) <= SMALL_REDUCE
                and len(dec) + 1 == len(self.running) and self._chunk_run(until, prefills[0], dec)):
            return
        self.execute(prefills, dec, extra)

    def nothing_to_run(self) -> None:
        """A boundary found nothing to run: with no batch in flight, the head request can never be admitted
        (a pipelined replica waits for its in-flight batches instead, `pipeline.PipelineReplica`)."""
        raise self.never_admitted()

    def _blocked_by_swaps(self) -> bool:
        self._holds = True  # swapped requests return when blocks free up, which decoding never does
        return True

    def advance(self, dt: float, tokens: int, seqs: int, n: int = 1, blocks_max: int | None = None) -> None:
        log = self.log
        log.start.append(self.now)
        self.now += dt
        log.end.append(self.now)
        log.n.append(n)
        log.seqs.append(seqs)
        log.tokens.append(tokens)
        log.blocks_max.append(self.used if blocks_max is None else blocks_max)
        self.iterations += n

    def batch_cost(self, prefills: list, d: np.ndarray) -> tuple[int, list, float]:
        """(tokens, prefill attention items `(chunk, past)`, decode KV tokens in whole blocks) of a batch."""
        st, bs = self.st, self.block_size
        ntok = len(d)
        items = []
        for r, c in prefills:
            ntok += c
            items.append((c, int(st.kv[r])))
        kvtok = 0.0
        if len(d):
            kept, self._dec_slots = self._dec_slots, None
            slots = kept[1] if kept is not None and kept[0] is d else (st.kv[d] + bs) // bs  # ceil((kv + 1) / bs)
            kvtok = float(isum(slots) * bs)
        return ntok, items, kvtok

    def execute(self, prefills: list, d: np.ndarray, extra: float) -> None:
        """Run one iteration: the prefill items `(request, tokens)` and the decodes `d`."""
        kept = self._dec_slots  # (batch_cost takes it) the decodes' kv + bs from step's reservation
        kvb = kept[2] if kept is not None and kept[0] is d else None
        ntok, items, kvtok = self.batch_cost(prefills, d)
        dt = self.lat.iteration(ntok, items, kvtok, len(d)) + extra
        self.kv_area += self.used * dt
        self.advance(dt, ntok, len(prefills) + len(d))
        self.tokens_processed += ntok
        self.complete(prefills, d, self.now, kvb)

    def complete(self, prefills: list, d: np.ndarray, end: float, kvb: np.ndarray | None = None) -> None:
        """The batch's effects at its end: decodes `d` emit a token each, prefill chunks extend their KV
        (a completed prefill emits its first token), finished requests free their blocks. `kvb`: the decodes'
        KV + block size when the caller has it (one array write instead of a read, an add and a write)."""
        st = self.st
        nd = len(d)
        done: list[int] = []
        if nd:
            g = st.generated[d]
            st.token_time[st.offsets[d] + g] = end
            g += _ONE
            st.generated[d] = g
            if kvb is None:
                st.kv[d] += 1
            else:
                st.kv[d] = kvb - self._bsm1
            fin = g >= self.output[d]
            if anytrue(fin):
                done.extend(d[fin].tolist())
        emitted = []
        kv, gen = st.kv, st.generated
        for r, c in prefills:  # Python ints: a numpy scalar operation costs more than the arithmetic
            k = int(kv[r]) + c
            kv[r] = k
            gr = int(gen[r])
            if k >= int(self.prompt[r]) + gr:
                st.in_prefill[r] = False
                st.token_time[int(st.offsets[r]) + gr] = end
                gen[r] = gr + 1
                emitted.append(r)
                if gr + 1 >= int(self.output[r]):
                    done.append(r)
        if self.sched.counts_tokens:
            if nd:
                self.sched.on_tokens(d, 1)
            if emitted:
                self.sched.on_tokens(np.asarray(emitted, np.int64), 1)
        if done:
            self._finish(done)
        self.memory_trace.append((end, self.used))

    def _finish(self, done: list[int]) -> None:
        st = self.st
        if len(done) <= 4:  # (a run usually ends with one completion: list.remove, in C, keeps the order too)
            running = self.running = list(self.running)  # a new list, as before: a caller may hold the old
            for r in done:
                running.remove(r)
        else:
            gone = set(done)
            self.running = [r for r in self.running if r not in gone]
        for r in done:
            self.used -= int(st.blocks[r])
            st.blocks[r] = 0
            st.finish[r] = self.now
            self.sched.on_finish(r)

    def _decode_run(self, until: float, R: np.ndarray, hold: int, floor: int) -> None:
        """Run k >= 1 decode iterations of the running batch `R` (the first one's KV slots allocated) that
        `step` would run one by one, with the same results to the bit: the FCFS head was refused and the
        refusal holds for the next `hold` boundaries while `floor` blocks stay free (`Scheduler.refusal_holds`).

        The run stops after the first completion, before a boundary with fewer than `floor` free blocks (the
        memory rule refuses there, which `_fast_forward` handles), before an iteration whose KV slots do not
        fit (a preemption), and at `until`. An arrival changes nothing: the refused head stays the head.
        Unlike `_fast_forward` (one log row for the run) it keeps what `execute` records per iteration: a log
        row and a memory sample each, the clock and the KV area summed iteration by iteration in order (a
        cumulative sum from the current value), the iteration times from the same float operations
        (`BatchLatency.decode_times` is `iteration` of a decode-only batch)."""
        st, bs, lat = self.st, self.block_size, self.lat
        B = len(R)
        kv, g, held = st.kv[R], st.generated[R], st.blocks[R]  # held: this iteration's allocation included
        rem = self.output[R] - g
        rem_min = imin(rem)
        kcap = max(1, min(rem_min, hold + 1, FF_DENSE // B))
        if B <= RUN_SCALAR_MAX and kcap <= FF_SCALAR_ITERS:
            kvb = kv + self._bs0
            kvbl, heldl = kvb.tolist(), held.tolist()
            tot, cross = block_crossings(kvbl, bs)
            if tot == sum(heldl):  # no reservation: every request holds exactly its slots (see _fast_forward)
                self._decode_run_scalar(until, R, g, kvb, rem, rem_min, kcap, floor, tot, cross)
                return
        slots_m = ((kv + bs)[:, None] + _ITERS[:kcap]) // bs  # ceil((kv + j + 1) / bs): blocks of iteration j
        slots = np.add.reduce(slots_m, 0)
        blk_m = np.maximum(slots_m, held[:, None])
        used = np.add.reduce(blk_m, 0) + (self.used - isum(held))  # blocks in use at iteration j
        # iteration j > 0 runs when its slots fit (no preemption) and boundary j keeps `floor` blocks free
        # (used[j - 1]: the blocks in use when boundary j decides)
        k = kcap
        ok = (used[1:] <= self.num_blocks) & (used[:-1] <= self.num_blocks - floor)
        if not np.logical_and.reduce(ok):
            k = 1 + int(np.argmin(ok))
        dts = lat.decode_times(B, slots[:k] * float(bs))
        ends = np.empty(k + 1)
        ends[0] = self.now
        ends[1:] = dts
        ends = np.add.accumulate(ends)  # now + dt_0, then + dt_1, ...: the clock of iteration-by-iteration steps
        if until < math.inf and ends[k - 1] >= until:  # iteration j starts at ends[j]; none starts at/after until
            k = max(1, int(ends[:k].searchsorted(until, side="left")))
        starts, ends, dts = ends[:k], ends[1:k + 1], dts[:k]
        used = used[:k]
        area = np.empty(k + 1)
        area[0] = self.kv_area
        area[1:] = used * dts
        self.kv_area = float(np.add.accumulate(area)[-1])
        self._close_decode_run(R, g, kv + k, blk_m[:, k - 1], starts.tolist(), ends.tolist(), used.tolist(), rem,
                               rem_min)

    def _close_decode_run(self, R: np.ndarray, g: np.ndarray, kv: np.ndarray, blocks: np.ndarray, starts: list[float],
                          ends: list[float], used: list[int], rem: np.ndarray, rem_min: int) -> None:
        """What a decode run of `len(ends)` iterations leaves (`_decode_run` and `_decode_run_scalar`): every
        decode's token times, generated count, KV (`kv`) and blocks (`blocks`); a log row and a memory sample per
        iteration (`starts`, `ends`, blocks in use `used`); the finished requests (remaining `rem` == the run)."""
        st, k, B = self.st, len(ends), len(R)
        end = ends[-1]
        st.token_time[(st.offsets[R] + g)[:, None] + _ITERS[:k]] = ends
        st.generated[R] = g + k
        st.kv[R] = kv
        st.blocks[R] = blocks
        self.used = used[-1]
        self._dec_slots = None
        log = self.log
        log.start.extend(starts)
        log.end.extend(ends)
        log.n.extend([1] * k)
        log.seqs.extend([B] * k)
        log.tokens.extend([B] * k)
        log.blocks_max.extend(used)
        self.now = end
        self.iterations += k
        self.tokens_processed += B * k
        if self.sched.counts_tokens:
            for _ in range(k):
                self.sched.on_tokens(R, 1)
        self.memory_trace.extend(zip(ends[:-1], used[:-1]))
        if k == rem_min:
            self._finish(R[rem == k].tolist())
        self.memory_trace.append((end, self.used))

    def _decode_run_scalar(self, until: float, R: np.ndarray, g: np.ndarray, kvb: np.ndarray, rem: np.ndarray,
                           rem_min: int, kcap: int, floor: int, tot: int, cross: list[int]) -> None:
        """`_decode_run` for a batch of at most RUN_SCALAR_MAX requests, at most `kcap` <= FF_SCALAR_ITERS
        iterations, no request holding more blocks than its slots: the same run, to the bit, one iteration at a
        time in Python numbers. The blocks in use are the decodes' slots (`tot`, growing by `cross[j % bs]` at
        iteration j) plus the other requests' blocks; iteration j > 0 runs while its slots fit, boundary j
        keeps `floor` blocks free and starts before `until`; its time is `_ff_scalar`'s; the clock and the KV
        area are summed iteration by iteration from their current values (`_decode_run`'s accumulations)."""
        bs, lat = self.block_size, self.lat
        B = len(R)
        base, ovh, layers = lat.base(B), lat.decode_ovh, lat.layers
        split = B * lat._kv_heads_int < lat._few_ctas
        div = B * DECODE_BLOCK_N
        coef = lat._decode_coef_for(B, float(tot * bs))
        nb = max(math.ceil(float(tot * bs) / div), 1)
        N, other = self.num_blocks, self.used - tot
        t, now, area = tot, self.now, self.kv_area
        u = t + other  # the blocks in use at iteration j (self.used at j = 0)
        dt = base + (ovh + coef * float(t * bs)) * layers
        starts: list[float] = []
        ends: list[float] = []
        ul: list[int] = []
        for j in range(kcap):
            if j:
                if now >= until:
                    break
                c = cross[j % bs]
                if c:
                    if t + c + other > N or u > N - floor:
                        break
                    t += c
                    if split and max(math.ceil(float(t * bs) / div), 1) != nb:
                        nb = max(math.ceil(float(t * bs) / div), 1)
                        coef = lat._decode_coef_for(B, float(t * bs))
                    dt = base + (ovh + coef * float(t * bs)) * layers
                elif u > N - floor:
                    break
                u = t + other
            starts.append(now)
            now += dt
            ends.append(now)
            ul.append(u)
            area += u * dt
        k = len(ends)
        self.kv_area = area
        self._close_decode_run(R, g, kvb + (k - bs), (kvb + (k - 1)) // self._bs0, starts, ends, ul, rem, rem_min)

    def _fast_forward(self, until: float, queue_blocked: bool, R: np.ndarray | None = None) -> None:
        """Run k >= 1 pure-decode iterations of the current batch in one go (`R`: the running requests as an
        array, when the caller has it).

        The run stops before the first iteration that would need more blocks than exist, after the first
        completion, and (unless the waiting queue is blocked for FCFS admission by a refusal that decoding
        cannot lift) before the first iteration starting after the next arrival. So every boundary it skips
        is one where the scheduler would decide exactly as it did at the start of the run.

        Most runs are short (an arrival ends them) and the batch small, so the fixed cost per call matters:
        the run's block counts come from a (requests x iterations) array when that is small, else from the
        closed form over the requests' block remainders.
        """
        st, bs, lat = self.st, self.block_size, self.lat
        if R is None:
            R = self.running_array()
        kept, self._dec_slots = self._dec_slots, None
        if kept is not None and kept[0] is R:  # step's reservation: kv + bs and the allocated blocks
            kvb, held = kept[2], kept[3]
        else:
            kvb, held = st.kv[R] + bs, st.blocks[R]
            kept = None
        B = len(R)
        g = st.generated[R]
        rem = self.output[R] - g
        horizon = until if queue_blocked else min(self.next_arrival(), until)
        small = B <= SMALL_REDUCE
        if small:  # the reductions below through Python lists (see SMALL_REDUCE), kept for _ff_scalar
            kvbl, heldl, reml = kvb.tolist(), held.tolist(), rem.tolist()
            rem_min, kvb_sum, held_sum = min(reml), sum(kvbl), sum(heldl)
        else:
            rem_min, kvb_sum, held_sum = imin(rem), isum(kvb), isum(held)
        kcap = min(rem_min, FF_MAX_ITERS)
        if horizon < math.inf:  # sum of x = kv + 1, the KV slots each request needs at the first iteration
            lower = lat.min_decode_time(B) + lat.decode_coef * lat.layers * float(kvb_sum - B * (bs - 1))
            kcap = max(1, min(kcap, int((horizon - self.now) / max(lower, 1e-9)) + 2))
        if small and kcap <= FF_SCALAR_ITERS:
            tot, cross = block_crossings(kvbl, bs)
            # no reservation (no request holds more blocks than its slots): step's allocation holds each request's
            # slots or more (`_decode_need`: the maximum), so the sums are equal exactly when every request is
            if (tot == held_sum) if kept is not None else not any(h > x // bs for h, x in zip(heldl, kvbl)):
                self._ff_scalar(horizon, R, g, kvb, reml, rem_min, kcap, held_sum, tot, cross)
                return
            # reservations (orca) that hold every request's slots up to the run's last possible iteration: the
            # blocks in use stay the reserved ones (the array branch's constant `tot`)
            if all(h >= (x + kcap - 1) // bs for h, x in zip(heldl, kvbl)):
                self._ff_scalar(horizon, R, g, kvb, reml, rem_min, kcap, held_sum, tot, cross, reserved=True)
                return
        blk_m = None
        if B * kcap <= FF_DENSE:
            slots_m = (kvb[:, None] + _ITERS[:kcap]) // bs  # ceil((x + j) / bs)
            slots = np.add.reduce(slots_m, 0)
            # reservations (orca): per-request maximum. The allocated blocks are >= the first iteration's
            # slots request by request, so their sums differ exactly when some request holds more
            if (held_sum > int(slots[0])) if kept is not None else anytrue(held > slots_m[:, 0]):
                if (held >= slots_m[:, -1]).all():  # ... which the reservations hold for the whole run
                    tot = np.full(kcap, held_sum, np.int64)
                    blk_m = np.broadcast_to(held[:, None], slots_m.shape)
                else:
                    blk_m = np.maximum(slots_m, held[:, None])
                    tot = blk_m.sum(0)
            else:
                tot = slots
                blk_m = slots_m
        else:
            kv = kvb - bs
            x = kv + 1
            j = np.arange(kcap)
            q, r = np.divmod(kv, bs)
            if (held > q + 1).any():  # reservations (orca): per-request maximum, as an array
                slots_m = -(-(x[:, None] + j[None, :]) // bs)
                blk_m = np.maximum(slots_m, held[:, None])
                tot = blk_m.sum(0)
                slots = slots_m.sum(0)
            else:
                # sum_i ceil((x_i + j) / bs) = sum_i (q_i + 1) + B * (j // bs) + #{i : r_i >= bs - j % bs}
                ge = np.concatenate([np.cumsum(np.bincount(r, minlength=bs)[::-1])[::-1], [0]])
                slots = int(q.sum()) + B + B * (j // bs) + ge[bs - j % bs]
                tot = slots
        # tot never decreases along the run: its first and last entries say whether it overflows
        if tot[0] > self.num_blocks:
            raise AssertionError("fast-forward started without room for its first iteration")
        if tot[kcap - 1] > self.num_blocks:
            kcap = int(np.argmax(tot > self.num_blocks))
        dts = lat.decode_times(B, slots[:kcap] * float(bs))
        ends = np.add.accumulate(dts)  # (what .cumsum() calls, without its dispatch)
        ends += self.now
        k = kcap
        if horizon < math.inf:
            k = max(1, min(k, int((ends - dts).searchsorted(horizon, side="left"))))
            dts, ends = dts[:k], ends[:k]
        end = float(ends[-1])
        st.token_time[(st.offsets[R] + g)[:, None] + _ITERS[:k]] = ends
        st.generated[R] = g + k
        st.kv[R] = kvb + (k - bs)
        new_blocks = blk_m[:, k - 1] if blk_m is not None else np.maximum((kvb + (k - 1)) // bs, held)
        self.kv_area += float(np.add.reduce(tot[:k] * dts))
        self.used += int(tot[k - 1]) - held_sum  # tot[k - 1]: the run's last blocks, summed (every branch above)
        st.blocks[R] = new_blocks
        log = self.log
        log.start.append(self.now)
        log.end.append(end)
        log.n.append(k)
        log.seqs.append(B)
        log.tokens.append(B)
        log.blocks_max.append(int(tot[k - 1]))
        self.now = end
        self.iterations += k
        self.tokens_processed += B * k
        if self.sched.counts_tokens:
            self.sched.on_tokens(R, k)
        if k == rem_min:  # the run ends with a completion
            self._finish(R[rem == k].tolist())
        self.memory_trace.append((self.now, self.used))


    def _ff_scalar(self, horizon: float, R: np.ndarray, g: np.ndarray, kvb: np.ndarray, reml: list[int],
                   rem_min: int, kcap: int, held_sum: int, tot: int, cross: list[int],
                   reserved: bool = False) -> None:
        """`_fast_forward`'s run for a small batch and at most `kcap` <= FF_SCALAR_ITERS iterations, with no
        request holding more blocks than its slots (no reservation): the same run, to the bit, one iteration
        at a time in Python floats, stopping where the array version cuts (a block overflow, the first
        iteration starting at or after `horizon`). The same operations in the same order: the iteration's KV
        slots sum_i ceil((x_i + j) / bs) (`tot` at j = 0) grow by the `cross[j % bs]` requests crossing a block
        boundary at j; its time is `BatchLatency.decode_times`'s base + (overhead + coef * kv tokens) x layers
        with the coefficient of its KV-split count, computed again only when the slots change; ends are the
        running sum of the times plus the start; the KV area numpy's pairwise sum (`pairwise_sum`) of
        blocks x time. `reserved`: every request's reservation covers its slots for all `kcap` iterations, so
        the blocks in use stay `held_sum` (no allocation, no overflow; the slots still price the iterations)."""
        st, bs, lat = self.st, self.block_size, self.lat
        B = len(reml)
        if tot > self.num_blocks:
            raise AssertionError("fast-forward started without room for its first iteration")
        base, ovh, layers = lat.base(B), lat.decode_ovh, lat.layers
        split = B * lat._kv_heads_int < lat._few_ctas  # few CTAs: the coefficient depends on the KV splits
        div = B * DECODE_BLOCK_N
        coef = lat._decode_coef_for(B, float(tot * bs))
        nb = max(math.ceil(float(tot * bs) / div), 1)
        limit, now, acc = self.num_blocks, self.now, 0.0
        ends: list[float] = []
        area: list[float] = []
        t = tot  # the slots of iteration j; `tot` those of the last iteration run
        dt = base + (ovh + coef * float(t * bs)) * layers
        a = (held_sum if reserved else t) * dt
        for j in range(kcap):
            if j and cross[j % bs]:
                t += cross[j % bs]
                if t > limit:
                    break
                if split and max(math.ceil(float(t * bs) / div), 1) != nb:
                    nb = max(math.ceil(float(t * bs) / div), 1)
                    coef = lat._decode_coef_for(B, float(t * bs))
                dt = base + (ovh + coef * float(t * bs)) * layers
                a = (held_sum if reserved else t) * dt
            acc += dt
            end = acc + now
            if end - dt >= horizon:  # iteration j starts at or after the horizon: only the first one runs
                if not j:
                    tot = t
                    ends.append(end)
                    area.append(a)
                break
            tot = t
            ends.append(end)
            area.append(a)
        k = len(ends)
        end = ends[-1]
        st.token_time[(st.offsets[R] + g)[:, None] + _ITERS[:k]] = ends
        st.generated[R] = g + k
        st.kv[R] = kvb + (k - bs)
        if reserved:
            tot = held_sum  # the blocks in use (the reservations' own; st.blocks keeps them)
        else:
            st.blocks[R] = (kvb + (k - 1)) // self._bs0
        self.kv_area += pairwise_sum(area)
        self.used += tot - held_sum
        log = self.log
        log.start.append(now)
        log.end.append(end)
        log.n.append(k)
        log.seqs.append(B)
        log.tokens.append(B)
        log.blocks_max.append(tot)
        self.now = end
        self.iterations += k
        self.tokens_processed += B * k
        if self.sched.counts_tokens:
            self.sched.on_tokens(R, k)
        if k == rem_min:  # the run ends with a completion
            self._finish([r for r, m in zip(R.tolist(), reml) if m == k])
        self.memory_trace.append((self.now, self.used))


    def _chunk_run(self, until: float, item: tuple[int, int], d: np.ndarray) -> bool:
        """Run the iterations of one chunked prefill (`item`: its request and this iteration's chunk) beside the
        decodes `d` that `step` would run one boundary at a time, with the same results to the bit; False (and
        nothing changed) when this boundary does not start such a run.

        A run starts at a chunk that is not the prompt's last (it takes the whole token budget, so nothing is
        admitted) of a batch of one prefill and a few decodes, none holding more blocks than its slots. Each
        further boundary decides the same: the same decodes, the next chunk (`min(left, budget)`), the decodes'
        new slots allocated. The run stops after the iteration in which a decode finishes or the prompt
        completes (its first token), and before a boundary at which a request arrives or `until` is reached,
        the decodes' slots do not fit (a preemption), or the prompt's last chunk leaves budget to a waiting
        request. It keeps what `execute` records per iteration (a log row, a memory sample, the clock and the
        KV area summed in order, `BatchLatency.iteration` for the time); the decodes' slots grow as in
        `_ff_scalar`."""
        st, bs, lat = self.st, self.block_size, self.lat
        kept = self._dec_slots
        if kept is None or kept[0] is not d:
            return False
        r, c = item
        B = len(d)
        budget = self.token_budget - B
        kv_r, g_r = st.kv.item(r), st.generated.item(r)
        left = self.prompt.item(r) + g_r - kv_r  # prompt (and, after a recompute, generated) tokens to prefill
        if left <= budget or c != budget:  # the prompt's last chunk: the budget it leaves may admit a request
            return False
        kvb = kept[2]
        kvbl = kvb.tolist()
        tot, cross = block_crossings(kvbl, bs)
        if tot != sum(kept[3].tolist()):  # a reservation (a request holding more blocks than its slots)
            return False
        self._dec_slots = None  # (what batch_cost takes)
        g = st.generated[d]
        reml = (self.output[d] - g).tolist()
        rem_min = min(reml)
        waiting = len(self.sched) > 0
        horizon = min(self.next_arrival(), until)
        limit, used, now, area, tokens, t = self.num_blocks, self.used, self.now, self.kv_area, 0, tot
        log, ends, samples = self.log, [], []
        j = 0
        while True:
            cj = min(left, budget)
            ntok = B + cj
            dt = lat.iteration(ntok, [(cj, kv_r)], float(t * bs), B) + 0.0  # (execute's `+ extra`)
            area += used * dt
            log.start.append(now)
            now += dt
            log.end.append(now)
            log.n.append(1)
            log.seqs.append(1 + B)
            log.tokens.append(ntok)
            log.blocks_max.append(used)
            tokens += ntok
            ends.append(now)
            samples.append((now, used))
            kv_r += cj
            left -= cj
            j += 1
            if j == rem_min or not left or now >= horizon:  # a decode or the prompt finished; an arrival, until
                break
            if left <= budget and waiting:
                break
            need = cross[j % bs]  # boundary j: the decodes' next slots (no reservation: the crossings)
            if need > limit - used:
                break
            used += need
            t += need
        k = j
        self.now, self.kv_area, self.used = now, area, used
        self.iterations += k
        self.tokens_processed += tokens
        st.token_time[(st.offsets[d] + g)[:, None] + _ITERS[:k]] = ends
        st.generated[d] = g + k
        st.kv[d] = kvb + (k - bs)
        st.blocks[d] = (kvb + (k - 1)) // self._bs0
        st.kv[r] = kv_r
        done = [x for x, m in zip(d.tolist(), reml) if m == k] if k == rem_min else []
        if not left:  # the prompt completed: its first token
            st.in_prefill[r] = False
            st.token_time[st.offsets.item(r) + g_r] = now
            st.generated[r] = g_r + 1
            if g_r + 1 >= self.output.item(r):
                done.append(r)
        self.memory_trace.extend(samples[:-1])
        if done:
            self._finish(done)
        self.memory_trace.append((now, self.used))
        return True


def _pcie_gbps(gpu) -> float:
    from sysgym.kernels.hardware import PCIE_X16_GBPS

    return PCIE_X16_GBPS.get(gpu.pcie_gen, PCIE_X16_GBPS[4])


def request_arrays(trace: Trace, max_tokens: int, oversize: str = "truncate") -> tuple[np.ndarray, np.ndarray, int]:
    """Effective (prompt, output) under the replica's max_tokens, and how many requests were cut.

    ``truncate`` (vidur's trace handling): output capped at max_tokens - 1, then the prompt cut so that
    prompt + output <= max_tokens. ``error`` raises on the first oversize request."""
    prompt, output = trace.prompt.copy(), trace.output.copy()
    over = (prompt + output) > max_tokens
    if over.any():
        if oversize == "error":
            i = int(np.argmax(over))
            raise InvalidInstanceError(f"request {i} has {int(prompt[i])} + {int(output[i])} tokens, more than "
                                       f"max_tokens={max_tokens}")
        if oversize != "truncate":
            raise UnknownNameError("oversize rule", oversize, ("truncate", "error"))
        output = np.minimum(output, max_tokens - 1)
        prompt = np.minimum(prompt, max_tokens - output)
    return prompt, output, int(over.sum())
