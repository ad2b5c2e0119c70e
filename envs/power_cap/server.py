"""One inference server under a clock cap: a per-interval cost model priced by `sysgym.kernels`.

SIMPLIFICATION (documented, not hidden): the serving family's simulator (`sysgym.envs.llm_serving.simulate`)
replays a whole trace at one fixed speed and takes no time-varying clock, so this module runs its own small
iteration loop, advanced one control interval at a time with that interval's clock:

* Scheduling: continuous batching with chunked prefill (Sarathi-Serve's scheduler, as vLLM runs it): every
  iteration carries one token per decoding request, then prefill chunks (requests already prefilling first, then
  arrivals in FCFS order) up to `max_batched_tokens`; at most `max_num_seqs` requests run at once, and a request
  is admitted only when its prompt + output tokens fit the KV cache still free (reserved whole on admission, so
  nothing is ever preempted; a vLLM engine preempts instead, which this model does not price).
* Iteration time at full clock: the serving family's own pricing (`llm_serving.BatchLatency`: kernels' operator
  times and TP all-reduces for T batch tokens, plus the measured-A100 attention fit, each prefill chunk with its
  past context and decode attention by batch size and KV read), so the two families cannot drift apart
  (tests/power_cap/test_consistency.py holds them together).
* Under a clock cap f the iteration takes `kernels.energy.clock_time_factor(c, m, f)` times longer, c and m its
  ideal compute (FLOPs / peak) and memory (weight + KV bytes / bandwidth) times: memory-bound decode barely
  slows, compute-bound prefill slows by 1/f (POLCA's finding, Patel et al. ASPLOS'24).
* Power: each of the server's GPUs draws `kernels.energy.board_power_w(gpu, activity, f)` while an iteration
  runs, activity = MEM_ACTIVITY + (1 - MEM_ACTIVITY) x c / max(c, m), and idle power between iterations. An
  iteration that starts before an interval's end runs to completion at the clock it started with; its energy is
  split between the intervals in proportion to time.
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np

from sysgym import kernels
from sysgym.envs.llm_serving import BatchLatency
from sysgym.kernels.energy import IDLE_FRACTION, board_power_w, clock_time_factor

# ASSUMPTION: share of the dynamic power range a fully memory-bound iteration draws. Splitwise (Patel et al.,
# ISCA'24, Sec. III) and POLCA measure LLM token (decode) phases well below TDP while prompt (prefill) phases
# reach it; half the range is our round reading of that gap, not a fitted number.
MEM_ACTIVITY = 0.5
EPS = 1e-12


class IterationCost:
    """Seconds, ideal compute/memory split and GPU activity of one serving iteration (one replica, tp GPUs)."""

    def __init__(self, model: str, gpu: str, tp: int, max_batched_tokens: int):
        self.spec = kernels.models.get(model)
        self.gpu = kernels.get_gpu(gpu)
        self.tp = int(tp)
        self.dtype = kernels.load_calibration(None).dtype
        spec, layers = self.spec, self.spec.num_layers
        self.latency = BatchLatency(model, gpu, tp=self.tp, max_batch_tokens=int(max_batched_tokens))
        self.layers = layers
        # Roofline inputs (per GPU): FLOPs per token of the weights, bytes of weights and of one KV token.
        b = kernels.dtype_bytes(self.dtype)
        self.weight_bytes = kernels.weight_bytes(spec, self.dtype, tp=self.tp)
        self.flops_per_token = 2.0 * self.weight_bytes / b
        self.kv_bytes = kernels.kv_bytes_per_token(spec, self.dtype, tp=self.tp)
        self.attn_width = spec.num_heads * spec.head_dim / self.tp * layers  # q.k and p.v per key, all layers
        self.peak = self.gpu.peak_flops(self.dtype)
        self.bw = self.gpu.memory_bw

    def split(self, tokens, kv_read, attn_pairs):
        """Ideal (compute, memory) seconds: `tokens` batch tokens, `kv_read` KV tokens read, `attn_pairs` the
        query-key products (sum over requests of new tokens x keys each attends to)."""
        c = (self.flops_per_token * tokens + 4.0 * self.attn_width * attn_pairs) / self.peak
        m = (self.weight_bytes + self.kv_bytes * kv_read) / self.bw
        return c, m


class Server:
    """The requests routed to one server and its iteration loop (see the module doc)."""

    def __init__(self, cost: IterationCost, arrival: np.ndarray, prompt: np.ndarray, output: np.ndarray, *,
                 kv_capacity: int, max_num_seqs: int, max_batched_tokens: int, exponent: float):
        self.cost = cost
        self.arrival, self.prompt, self.output = arrival, prompt, output
        n = len(arrival)
        self.prefilled = np.zeros(n, np.int64)
        self.generated = np.zeros(n, np.int64)
        self.first = np.full(n, np.nan)
        self.finish = np.full(n, np.nan)
        self.kv_capacity, self.max_num_seqs = int(kv_capacity), int(max_num_seqs)
        self.max_tokens = int(max_batched_tokens)
        self.exponent = float(exponent)
        self.t = 0.0
        self.next = 0
        self.waiting: deque[int] = deque()
        self.prefilling: list[int] = []
        self.decoding: list[int] = []
        self.kv_used = 0
        self.carry_j = 0.0  # energy of the last iteration that runs past the interval's end
        self.carry_busy = 0.0
        self.idle_w = IDLE_FRACTION * cost.gpu.tdp_w * cost.tp
        self.completed_now: list[int] = []

    # -- state the env observes ----------------------------------------------------------------------------
    @property
    def queued(self) -> int:
        return len(self.waiting)

    @property
    def running(self) -> int:
        return len(self.prefilling) + len(self.decoding)

    # -- the interval loop ---------------------------------------------------------------------------------
    def advance(self, t0: float, t1: float, clock: float) -> tuple[float, float]:
        """Run from t0 to t1 at `clock`; return (energy J, busy seconds) inside [t0, t1)."""
        energy, busy = self.carry_j, self.carry_busy
        self.carry_j = self.carry_busy = 0.0
        span = t1 - t0
        if self.t < t0:
            self.t = t0
        while self.t < t1 - EPS:
            self._arrive()
            if not self.running:
                nxt = self.arrival[self.next] if self.next < len(self.arrival) else math.inf
                if not self.waiting or not self._can_admit(self.waiting[0]):
                    self.t = min(t1, max(self.t, nxt))
                    continue
            if self.prefilling or (self.waiting and self._can_admit(self.waiting[0])):
                dts, powers = self._mixed(clock)
            else:
                dts, powers = self._decode_run(clock, t1)
            for dt, p in zip(dts, powers):  # only the last one may run past t1
                inside = max(0.0, min(dt, t1 - self.t))
                energy += p * inside
                busy += inside
                if dt > inside:
                    self.carry_j += p * (dt - inside)
                    self.carry_busy += dt - inside
                self.t += dt
        idle = max(0.0, span - busy)
        return energy + self.idle_w * idle, busy

    def _arrive(self) -> None:
        while self.next < len(self.arrival) and self.arrival[self.next] <= self.t + EPS:
            self.waiting.append(self.next)
            self.next += 1

    def _can_admit(self, i: int) -> bool:
        return (self.running < self.max_num_seqs
                and self.kv_used + int(self.prompt[i] + self.output[i]) <= self.kv_capacity)

    def _power(self, c: float, m: float, clock: float) -> float:
        sm = c / max(c, m, EPS)
        activity = MEM_ACTIVITY + (1.0 - MEM_ACTIVITY) * sm
        return board_power_w(self.cost.gpu, activity, clock, exponent=self.exponent) * self.cost.tp

    def _mixed(self, clock: float) -> tuple[list[float], list[float]]:
        """One iteration with prefill work: decodes first, then prefill chunks within the token budget."""
        cost = self.cost
        dec = self.decoding
        ctx = int(sum(int(self.prompt[i] + self.generated[i]) for i in dec))
        budget = self.max_tokens - len(dec)
        chunks: list[tuple[int, int, int]] = []
        for i in self.prefilling:
            if budget <= 0:
                break
            c = min(budget, int(self.prompt[i] - self.prefilled[i]))
            chunks.append((i, c, int(self.prefilled[i])))
            budget -= c
        while budget > 0 and self.waiting and self._can_admit(self.waiting[0]):
            i = self.waiting.popleft()
            self.prefilling.append(i)
            self.kv_used += int(self.prompt[i] + self.output[i])
            c = min(budget, int(self.prompt[i]))
            chunks.append((i, c, 0))
            budget -= c
        tokens = len(dec) + sum(c for _, c, _ in chunks)
        secs = cost.latency.iteration(tokens, [(c, p) for _, c, p in chunks], float(ctx), len(dec))
        kv_read = ctx + sum(p + c for _, c, p in chunks)
        pairs = ctx + sum(c * (p + (c + 1) / 2.0) for _, c, p in chunks)
        c_s, m_s = cost.split(tokens, kv_read, pairs)
        dt = secs * clock_time_factor(c_s, m_s, clock)
        end = self.t + dt
        for i in dec:
            self.generated[i] += 1
        for i, c, _ in chunks:
            self.prefilled[i] += c
        done_prefill = [i for i, _, _ in chunks if self.prefilled[i] >= self.prompt[i]]
        for i in done_prefill:
            self.prefilling.remove(i)
            self.generated[i] = 1  # the prefill's last iteration emits the first token
            self.first[i] = end
            self.decoding.append(i)
        self._retire(end)
        return [dt], [self._power(c_s, m_s, clock)]

    def _decode_run(self, clock: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        """Pure-decode iterations, fast-forwarded until a request finishes, an admissible arrival comes, or t1."""
        cost = self.cost
        dec = np.array(self.decoding, np.int64)
        b = len(dec)
        left = self.output[dec] - self.generated[dec]
        k = int(left.min())
        ctx0 = float((self.prompt[dec] + self.generated[dec]).sum())
        j = np.arange(k, dtype=float)
        ctx = ctx0 + j * b
        secs = cost.latency.decode_times(b, ctx)
        c_s, m_s = cost.split(b, ctx, ctx)
        dts = secs * clock_time_factor(c_s, m_s, clock)
        starts = self.t + np.concatenate(([0.0], np.cumsum(dts)[:-1]))
        stop = t1
        if self.next < len(self.arrival) and self.running < self.max_num_seqs:
            stop = min(stop, float(self.arrival[self.next]))
        n = max(1, int(np.searchsorted(starts, stop - EPS, side="left")))
        dts = dts[:n]
        sm = c_s[:n] / np.maximum(np.maximum(c_s[:n], m_s[:n]), EPS)
        activity = MEM_ACTIVITY + (1.0 - MEM_ACTIVITY) * sm
        powers = board_power_w(cost.gpu, activity, clock, exponent=self.exponent) * cost.tp
        self.generated[dec] += n
        self._retire(self.t + float(dts.sum()))
        return dts, np.atleast_1d(powers)

    def _retire(self, end: float) -> None:
        keep = []
        for i in self.decoding:
            if self.generated[i] >= self.output[i]:
                self.finish[i] = end
                self.kv_used -= int(self.prompt[i] + self.output[i])
                self.completed_now.append(i)
            else:
                keep.append(i)
        self.decoding = keep
