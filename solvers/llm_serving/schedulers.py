"""The literature's request schedulers of one replica: admission order and rule, batching style, preemption
victim. Each is the one implementation of its name: the simulator (`sysgym.envs.llm_serving.simulate`, which
finds it through the registered method `llm_serving.<name>`) calls it through the protocol documented in
`sysgym.envs.llm_serving.replica.Scheduler`, and the same object drives `sysgym/LlmServing-v0` as a policy
(`act(observation, mask)`, see `Scheduler.act`).

Every scheduler keeps these documented, stable knobs (keyword arguments of `simulate` and of the
registered solvers):

* ``max_num_seqs`` -- batch cap: requests running at once (default: the memory plan's `max_batch_size`).
* ``max_num_batched_tokens`` -- token budget of one iteration (default: max(max_tokens, 4096) when not
  chunking; for ``sarathi`` it is the chunk size / token budget, default 512).
* ``watermark`` -- fraction of KV blocks admission keeps free (vLLM: 0.01).
* ``preemption_mode`` -- ``"recompute"`` (default: drop the victim's KV, re-prefill prompt + generated
  tokens later) or ``"swap"`` (copy its KV blocks to host memory over PCIe and back).

Schedulers (registry names `llm_serving.<name>`):

* ``vllm`` -- vLLM v0 (Kwon et al., SOSP'23): FCFS; a prefill iteration admits waiting requests in order
  while ``free_blocks - needed >= watermark x num_blocks`` (head-of-line blocking), else a decode
  iteration; when a decode needs a block and none is free the newest running request (latest arrival) is
  preempted (recompute: it goes back to the front of the queue).
* ``orca`` -- Orca (Yu et al., OSDI'22) as the vLLM paper models it: iteration-level batching mixing whole
  prefills with decodes; admission reserves the worst case up front (``reserve="max"``: max_tokens per
  request; ``"pow2"``: prompt + output rounded up to a power of two; ``"oracle"``: prompt + output), so it
  never preempts.
* ``sarathi`` -- Sarathi-Serve (Agrawal et al., OSDI'24) / DeepSpeed-FastGen: stall-free batching with a
  token budget per iteration: all decodes first, then ongoing prefill chunks, then new prefills chunked to
  fit the budget.
* ``past_future`` -- LightLLM's Past-Future scheduler (Gong et al., arXiv 2507.10150 / LightLLM router):
  admit while the batch's predicted *peak* KV use, ``max_k sum_{j<=k} c_j + k r_k`` over requests sorted
  by predicted remaining tokens r (descending) with current tokens c, stays within the KV cache.
  ``predictor="oracle"`` uses the true output lengths; ``"past"`` uses the ``quantile`` of the output
  lengths of recently finished requests longer than what the request has already generated.
* ``vtc`` -- Virtual Token Counter (Sheng et al., OSDI'24 "Fairness in Serving Large Language Models"):
  admit from the backlogged client with the smallest counter; counters grow by ``w_prompt`` per prompt
  token admitted and ``w_output`` per generated token; a client that arrives to an empty queue is lifted
  to the smallest counter of the backlogged clients (or of the client that left last).
* ``sjf`` -- shortest job first on predicted output length (``predictor="oracle"`` or ``"noisy"`` with
  log-normal error ``noise_sigma``).
"""
from __future__ import annotations

import bisect
import heapq
from collections import deque
from typing import Any

import numpy as np

from sysgym.errors import InvalidArgumentError, UnknownNameError


class Scheduler:
    """Base: FCFS waiting queue, vLLM admission rule, newest-first preemption, no mixing, no chunks."""

    name = "base"
    mixed = False  # prefills and decodes share an iteration
    chunked = False  # prefills may be split over iterations
    fcfs = True  # a refused queue head blocks the queue (later arrivals cannot overtake it)
    counts_tokens = False  # on_tokens is called for every generated token

    def __init__(self, *, max_num_seqs: int | None = None, max_num_batched_tokens: int | None = None,
                 watermark: float = 0.01, preemption_mode: str = "recompute"):
        if preemption_mode not in ("recompute", "swap"):
            raise UnknownNameError("preemption mode", preemption_mode, ("recompute", "swap"))
        if not 0 <= watermark < 1:
            raise InvalidArgumentError(f"watermark must be in [0, 1), got {watermark}")
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens
        self.watermark = float(watermark)
        self.preemption_mode = preemption_mode
        self.sim: Any = None

    def params(self) -> dict[str, Any]:
        return {"max_num_seqs": self.max_num_seqs, "max_num_batched_tokens": self.max_num_batched_tokens,
                "watermark": self.watermark, "preemption_mode": self.preemption_mode}

    def clone(self) -> Scheduler:
        return type(self)(**self.params())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params()})"

    # -- lifecycle --------------------------------------------------------------------------------------
    def bind(self, sim) -> None:
        """Called once by the replica; `sim` exposes the request arrays and the block pool."""
        self.sim = sim
        self.queue: deque[int] = deque()
        self.watermark_blocks = int(self.watermark * sim.num_blocks)

    def __len__(self) -> int:
        return len(self.queue)

    def on_arrival(self, rid: int) -> None:
        self.queue.append(rid)

    def requeue(self, rid: int) -> None:
        """A preempted (recompute) request goes back to the front (vLLM `waiting.appendleft`)."""
        self.queue.appendleft(rid)

    def peek(self) -> int | None:
        return self.queue[0] if self.queue else None

    def pop(self, rid: int) -> None:
        if self.queue and self.queue[0] == rid:
            self.queue.popleft()
        else:
            self.queue.remove(rid)

    def waiting(self) -> list[int]:
        """Every waiting request, in the order this scheduler considers them (its head first)."""
        return list(self.queue)

    # -- rules -----------------------------------------------------------------------------------------
    def admit_blocks(self, rid: int) -> int:
        """Blocks to allocate at admission: the KV of prompt + generated tokens."""
        s = self.sim
        return -(-int(s.prompt[rid] + s.generated[rid]) // s.block_size)

    def fits(self, rid: int, need: int) -> bool:
        """vLLM's memory rule: the blocks left after admission stay at or above the watermark."""
        return self.sim.free_blocks - need >= self.watermark_blocks

    def can_admit(self, rid: int, need: int) -> bool:
        """A further admission rule of the scheduler (asked once `fits` holds): none."""
        return True

    def holds_while_decoding(self, rid: int, need: int, admissible: bool) -> bool:
        """Whether, after refusing its head `rid`, the head and the refusal stay while the batch only decodes
        (`admissible`: the engine allowed `rid`, `can_admit` refused it). Here: yes, the order is fixed and
        the memory rule only gets stricter as decodes take blocks."""
        return True

    def on_admit(self, rid: int) -> None:
        pass

    def on_tokens(self, rids: np.ndarray, counts) -> None:
        pass

    def on_finish(self, rid: int) -> None:
        pass

    def victim(self, running: list[int]) -> int:
        """Newest request (latest arrival, then highest id) among the running ones."""
        s = self.sim
        best, key = running[-1], (s.arrival[running[-1]], running[-1])
        for r in running:
            k = (s.arrival[r], r)
            if k > key:
                best, key = r, k
        return best

    # -- as the policy of sysgym/LlmServing-v0 -----------------------------------------------------------
    def act(self, observation: Any = None, mask: Any = None) -> int:
        """The action this scheduler takes in `sysgym/LlmServing-v0` (built with `scheduler=` this object,
        which binds it to the env's replica): at a shortfall of KV blocks, preempt `victim(...)`; otherwise
        admit `peek()` if the env's mask allows it and `can_admit` agrees, else run the iteration. These are
        the decisions `Replica.step` takes with this scheduler, so the episode is the simulator's run."""
        point = getattr(self.sim, "decision", None)
        if point is None:
            raise InvalidArgumentError(f"{self.name}: act() needs this scheduler bound to an LlmServing-v0 env: "
                                       "sysgym.make('LlmServing-v0', scheduler=<this object>, ...)")
        mask = np.asarray(point.mask if mask is None else mask, bool)
        if point.phase == "preempt":
            return point.preempt_action(self.victim(self.sim.running))
        rid = self.peek()
        if rid is not None and rid in point.waiting:
            a = point.admit_action(rid)
            if mask[a] and self.can_admit(rid, self.admit_blocks(rid)):
                return a
        if not mask[0]:  # nothing runs and nothing may be admitted: the simulator's dead end
            raise self.sim.never_admitted()
        return 0


class VllmScheduler(Scheduler):
    name = "vllm"


class OrcaScheduler(Scheduler):
    name = "orca"
    mixed = True

    def __init__(self, *, reserve: str = "max", **kw):
        super().__init__(**kw)
        if reserve not in ("max", "pow2", "oracle"):
            raise UnknownNameError("orca reservation", reserve, ("max", "pow2", "oracle"))
        self.reserve = reserve

    def params(self):
        return {**super().params(), "reserve": self.reserve}

    def admit_blocks(self, rid: int) -> int:
        s = self.sim
        if self.reserve == "max":
            tokens = s.max_tokens
        else:
            tokens = int(s.prompt[rid] + s.output[rid])
            if self.reserve == "pow2":
                tokens = 1 << (tokens - 1).bit_length()
            tokens = min(tokens, s.max_tokens) if self.reserve == "pow2" else tokens
        tokens = max(tokens, int(s.prompt[rid] + s.output[rid]))
        return -(-tokens // s.block_size)

    def fits(self, rid: int, need: int) -> bool:
        """Orca reserves the worst case, so it needs no watermark: the reservation must fit."""
        return self.sim.free_blocks - need >= 0


class SarathiScheduler(Scheduler):
    name = "sarathi"
    mixed = True
    chunked = True

    def __init__(self, *, chunk_size: int = 512, **kw):
        super().__init__(**kw)
        if chunk_size < 1:
            raise InvalidArgumentError(f"chunk_size must be >= 1, got {chunk_size}")
        self.chunk_size = int(chunk_size)
        if self.max_num_batched_tokens is None:
            self.max_num_batched_tokens = self.chunk_size

    def params(self):
        return {**super().params(), "chunk_size": self.chunk_size}


class PastFutureScheduler(Scheduler):
    name = "past_future"

    def __init__(self, *, predictor: str = "past", quantile: float = 0.9, history: int = 1000,
                 min_history: int = 20, **kw):
        super().__init__(**kw)
        if predictor not in ("past", "oracle"):
            raise UnknownNameError("past_future predictor", predictor, ("past", "oracle"))
        self.predictor, self.quantile = predictor, float(quantile)
        self.history, self.min_history = int(history), int(min_history)

    def params(self):
        return {**super().params(), "predictor": self.predictor, "quantile": self.quantile,
                "history": self.history, "min_history": self.min_history}

    def bind(self, sim) -> None:
        super().bind(sim)
        self._past: deque[int] = deque(maxlen=self.history)
        # The history kept sorted as it changes (one insertion, and one eviction once full, per finished request)
        # instead of re-sorting it whenever `_remaining` follows a finish: `_hist[:n]` is the sorted history of
        # n entries and `_hist[n]` a 0 that `_cut_index` points at when no entry is above the cut.
        self._hist = np.zeros(max(self.history, 0) + 1, np.int64)
        self._cut_n = -1  # the history length `_cut_index` was computed for (it depends on nothing else)
        self._cut_index = np.zeros(1, np.int64)
        self._batch_of: list[int] | None = None  # the running list `can_admit`'s arrays were made for
        # every request fits the context (the simulator truncates them to it): see can_admit's first test
        self._within_context = bool(np.all(sim.prompt + sim.output <= sim.max_tokens))
        self._refused: tuple[int, int] | None = None  # (rid, tokens over) of the last peak refusal: refusal_holds

    def on_finish(self, rid: int) -> None:
        past, hist = self._past, self._hist
        if past.maxlen == 0:
            return
        v = int(self.sim.output[rid])
        n = len(past)
        j = bisect.bisect_right(hist, v, 0, n)  # v's place among the current entries (bisect: a scalar is cheaper
        if n == past.maxlen:  # than through numpy); the append evicts the oldest entry: remove one copy of it
            i = bisect.bisect_left(hist, past[0], 0, n)
            if j <= i:
                hist[j + 1:i + 1] = hist[j:i]
            else:
                j -= 1
                hist[i:j] = hist[i + 1:j + 1]
        else:
            hist[j + 1:n + 1] = hist[j:n]
            hist[n + 1] = 0
        hist[j] = v
        past.append(v)

    def predicted_remaining(self, rids: np.ndarray) -> np.ndarray:
        """Predicted tokens still to generate (>= 1) for requests `rids`."""
        s = self.sim
        return self._remaining(rids, s.prompt[rids], s.generated[rids])

    def _remaining(self, rids: np.ndarray, prompt: np.ndarray, g: np.ndarray) -> np.ndarray:
        """`predicted_remaining` given the requests' prompts and generated counts."""
        s = self.sim
        if self.predictor == "oracle":
            return np.maximum(s.output[rids] - g, 1)
        n = len(self._past)
        if n < self.min_history:  # no past yet: assume the longest (Orca's worst case)
            return np.maximum(s.max_tokens - prompt - g, 1)
        if self._cut_n != n:
            # the position in the sorted history of the quantile of the entries above each cut `lo` (count =
            # n - lo of them); a function of n alone. None left (lo = n): the prediction is g + 1, one token to
            # go; the index points at the 0 after the entries, which gives the same max(min(0, cap) - g, 1) = 1
            lo = np.arange(n + 1)
            count = n - lo
            idx = np.minimum(lo + np.floor(self.quantile * np.maximum(count - 1, 0)).astype(np.int64), n - 1)
            self._cut_index, self._cut_n = np.where(count > 0, idx, n), n
        # the quantile of the history entries longer than what was generated (each > g)
        pred = self._hist[self._cut_index[self._hist[:n].searchsorted(g, side="right")]]
        return np.maximum(np.minimum(pred, s.max_tokens - prompt) - g, 1)

    def can_admit(self, rid: int, need: int) -> bool:
        """The predicted peak KV use of the batch with `rid` stays within the cache above the watermark."""
        s = self.sim
        capacity = (s.num_blocks - self.watermark_blocks) * s.block_size
        n = len(s.running) + 1
        slack = (s.block_size - 1) * n  # each request may leave its last block partly empty
        # A request's current tokens plus its predicted remaining ones are max(min(prompt + prediction,
        # max_tokens), prompt + generated + 1) <= max_tokens when prompt + output fits the context (the
        # prediction is capped at max_tokens - prompt, and generated < output). So the batch's peak is at most
        # n x max_tokens, and when that fits, the upper bound below holds without looking at the requests.
        if self._within_context and n * s.max_tokens + slack <= capacity:
            return True
        if s.running != self._batch_of:
            # A refused head is asked again at every iteration boundary while the running set stays the same:
            # its ids and prompts (fixed per request) are kept until the running list changes (compared by
            # value), with one slot at the end for the candidate.
            self._batch_of = list(s.running)
            self._ids = np.fromiter(self._batch_of + [rid], np.int64, len(self._batch_of) + 1)
            self._prompts = s.prompt[self._ids]
        rids, prompt = self._ids, self._prompts
        rids[-1] = rid
        prompt[-1] = s.prompt[rid]
        g = s.generated[rids]
        cur = prompt + g
        rem = self._remaining(rids, prompt, g)
        # bounds decide most calls without the sort: sum(cur) + n x min(rem) <= peak <= sum(cur + rem)
        total = int(np.add.reduce(cur))  # (ufunc reductions: cheaper than the .sum()/.min() wrappers)
        if total + int(np.add.reduce(rem)) + slack <= capacity:
            return True
        over = total + len(rids) * int(np.minimum.reduce(rem)) + slack - capacity
        if over <= 0:
            over = peak_tokens(cur, rem) + slack - capacity
            if over <= 0:
                return True
        self._refused = (rid, over)  # by how many tokens the peak (or its lower bound) is over: refusal_holds
        return False

    def holds_while_decoding(self, rid: int, need: int, admissible: bool) -> bool:
        """A memory refusal holds; a refusal by the predicted peak does not: as the batch decodes, its
        predicted future shrinks, and the peak with `rid` may come to fit."""
        return not admissible

    def refusal_holds(self, rid: int, need: int) -> tuple[int, int] | None:
        """After `can_admit` refused `rid` by the predicted peak: (boundaries, free-block floor) such that at
        the next `boundaries` iteration boundaries of a decode-only run of the same batch (no arrival, no
        completion, no preemption before them) `rid` is refused again, as long as `fits` holds, i.e. while
        the free blocks stay >= the floor (below it the refusal is the memory rule's, which `holds_while_decoding`
        covers). None: no such bound.

        Why: one decode iteration of every running request lowers the batch's predicted peak by at most one
        token. With f(t) = sum over the requests predicted to still run at step t of (current_j + t), the peak
        is max_{t >= 1} f(t). A decoding request's current grows by one and its predicted remaining drops by at
        most one (the quantile of the finished lengths above `generated` never decreases as `generated` grows,
        the history changes only at a completion, the cap and the floor of 1 only raise it), so after the
        iteration f'(t) >= f(t + 1) - 1 (the waiting candidate, not decoding, contributes one token less) and
        f'(1) >= f(1). So a peak `over` tokens above the capacity stays above it for `over - 1` iterations."""
        refused = self._refused
        if refused is None or refused[0] != rid or not 0.0 <= self.quantile <= 1.0:
            return None
        self._refused = None
        return refused[1] - 1, need + self.watermark_blocks


def peak_tokens(current: np.ndarray, remaining: np.ndarray) -> int:
    """Past-Future peak KV tokens of a batch: request j holds current_j + t tokens at step t <= remaining_j
    and frees them after; the peak is max_k (sum of current over the k longest-remaining) + k x r_(k)."""
    if len(current) == 0:
        return 0
    # (array methods and ufuncs: np.argsort / np.cumsum / .max() add a dispatch layer, called per admission)
    remaining, current = np.asarray(remaining), np.asarray(current)
    order = (-remaining).argsort(kind="stable")
    c = current[order].cumsum()
    return int(np.maximum.reduce(c + np.arange(1, len(order) + 1) * remaining[order]))


class VtcScheduler(Scheduler):
    name = "vtc"
    fcfs = False
    counts_tokens = True

    def __init__(self, *, w_prompt: float = 1.0, w_output: float = 2.0, **kw):
        super().__init__(**kw)
        self.w_prompt, self.w_output = float(w_prompt), float(w_output)  # VTC paper: w_p = 1, w_q = 2

    def params(self):
        return {**super().params(), "w_prompt": self.w_prompt, "w_output": self.w_output}

    def bind(self, sim) -> None:
        super().bind(sim)
        n = max(1, int(sim.client.max()) + 1 if len(sim.client) else 1)
        self.counter = np.zeros(n)
        self.queues: dict[int, deque[int]] = {}
        self.last_left = -1
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def lift(self, client: int) -> None:
        """VTC's counter lift for a client whose queue was empty (Sheng et al., Alg. 2)."""
        backlogged = [c for c, q in self.queues.items() if q]
        if backlogged:
            self.counter[client] = max(self.counter[client], min(self.counter[c] for c in backlogged))
        elif self.last_left >= 0:
            self.counter[client] = max(self.counter[client], self.counter[self.last_left])

    def on_arrival(self, rid: int) -> None:
        c = int(self.sim.client[rid])
        q = self.queues.get(c)
        if not q:
            self.lift(c)
            q = self.queues.setdefault(c, deque())
        q.append(rid)
        self._n += 1

    def requeue(self, rid: int) -> None:
        c = int(self.sim.client[rid])
        self.queues.setdefault(c, deque()).appendleft(rid)
        self._n += 1

    def _order(self) -> list[int]:
        """Backlogged clients, least served first (ties: lower client id)."""
        return sorted((c for c, q in self.queues.items() if q), key=lambda c: (self.counter[c], c))

    def peek(self) -> int | None:
        best = None
        for c, q in self.queues.items():
            if q and (best is None or self.counter[c] < self.counter[best] or
                      (self.counter[c] == self.counter[best] and c < best)):
                best = c
        return None if best is None else self.queues[best][0]

    def pop(self, rid: int) -> None:
        c = int(self.sim.client[rid])
        q = self.queues[c]
        if q[0] == rid:
            q.popleft()
        else:
            q.remove(rid)
        self._n -= 1
        self.last_left = c

    def waiting(self) -> list[int]:
        return [r for c in self._order() for r in self.queues[c]]

    def on_admit(self, rid: int) -> None:
        s = self.sim
        if s.generated[rid] == 0:
            self.counter[s.client[rid]] += self.w_prompt * s.prompt[rid]

    def on_tokens(self, rids: np.ndarray, counts) -> None:
        np.add.at(self.counter, self.sim.client[rids], self.w_output * np.asarray(counts, float))

    def holds_while_decoding(self, rid: int, need: int, admissible: bool) -> bool:
        """Only when the head's client has nothing running: otherwise its counter grows as the batch
        decodes and another client's head, which may fit, comes first."""
        s, c = self.sim, self.sim.client[rid]
        return not any(s.client[r] == c for r in s.running)


class SjfScheduler(Scheduler):
    name = "sjf"
    fcfs = False

    def __init__(self, *, predictor: str = "oracle", noise_sigma: float = 0.5, seed: int = 0, **kw):
        super().__init__(**kw)
        if predictor not in ("oracle", "noisy"):
            raise UnknownNameError("sjf predictor", predictor, ("oracle", "noisy"))
        self.predictor, self.noise_sigma, self.seed = predictor, float(noise_sigma), int(seed)

    def params(self):
        return {**super().params(), "predictor": self.predictor, "noise_sigma": self.noise_sigma, "seed": self.seed}

    def bind(self, sim) -> None:
        super().bind(sim)
        self.heap: list[tuple[float, float, int]] = []
        out = sim.output.astype(float)
        if self.predictor == "noisy":
            rng = np.random.default_rng([self.seed, 0x534A46])
            out = out * np.exp(self.noise_sigma * rng.standard_normal(len(out)))
        self.pred = out
        self._gone: set[int] = set()

    def __len__(self) -> int:
        return len(self.heap) - len(self._gone)

    def on_arrival(self, rid: int) -> None:
        heapq.heappush(self.heap, (self.pred[rid] - self.sim.generated[rid], self.sim.arrival[rid], rid))

    requeue = on_arrival

    def _clean(self) -> None:
        while self.heap and self.heap[0][2] in self._gone:
            self._gone.discard(heapq.heappop(self.heap)[2])

    def peek(self) -> int | None:
        self._clean()
        return self.heap[0][2] if self.heap else None

    def pop(self, rid: int) -> None:
        self._clean()
        if self.heap and self.heap[0][2] == rid:
            heapq.heappop(self.heap)
        else:
            self._gone.add(rid)

    def waiting(self) -> list[int]:
        return [r for _, _, r in sorted(self.heap) if r not in self._gone]


SCHEDULERS: dict[str, type[Scheduler]] = {c.name: c for c in (
    VllmScheduler, OrcaScheduler, SarathiScheduler, PastFutureScheduler, VtcScheduler, SjfScheduler)}


def accepted_parameters(cls: type[Scheduler]) -> list[str]:
    import inspect

    accepted: set[str] = set()
    for k in cls.__mro__:
        if "__init__" in vars(k):
            accepted |= {p for p in inspect.signature(k.__init__).parameters if p not in ("self", "kw")}
    return sorted(accepted)


def build(name: str, **params: Any) -> Scheduler:
    """A scheduler of this module by name; unknown parameters are named with the accepted ones."""
    if name not in SCHEDULERS:
        raise UnknownNameError("scheduler", name, SCHEDULERS)
    cls = SCHEDULERS[name]
    unknown = sorted(set(params) - set(accepted_parameters(cls)))
    if unknown:
        raise InvalidArgumentError(f"scheduler {name!r} has no parameter(s) {', '.join(unknown)}; accepted "
                                   f"parameters: {', '.join(accepted_parameters(cls))}")
    return cls(**params)


__all__ = ["SCHEDULERS", "OrcaScheduler", "PastFutureScheduler", "SarathiScheduler",
           "Scheduler", "SjfScheduler", "VllmScheduler", "VtcScheduler", "build", "peak_tokens"]
