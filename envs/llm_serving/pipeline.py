"""Pipeline parallelism with several micro-batches in flight (`PipelineReplica`).

How vLLM V1's batch queue, Sarathi-Serve's PP engine and Vidur's replica scheduler (`_num_running_batches <
num_stages`) run a pipeline: one scheduler forms a new batch whenever the first stage is free and fewer than
`pp` batches are in flight; a request sits in at most one in-flight batch (the scheduler does not see it
until its batch leaves the last stage), so one request's consecutive decode steps are a whole pipeline
traversal apart while other requests' batches fill the other stages. (vLLM V0 instead ran pp "virtual
engines", each with its own scheduler and 1/pp of the KV cache; that split is not modelled.) A consequence
for prefill-first scheduling (``vllm``): every visible decode joins one micro-batch, so once the KV cache is
full and nothing can be admitted the other stages idle; chunked mixed batches (``sarathi``) fill more.

Timing of one batch (a flow shop, stages first-in first-out):

    stage 0:  starts at the launch, runs overhead + swaps + compute x layers_0 / L
    stage k:  starts at max(end of stage k-1 + activation send, end of the previous batch on stage k)

`compute` is the whole model's iteration time on one stage's GPUs without pipeline sends (the replica's
`BatchLatency` built with pp=1: linear ops, attention and TP all-reduces of every layer, the embedding
spread over the stages with the layers); `layers_k` is vLLM's layer split (`get_pp_indices` in
vllm/distributed/utils.py: L // pp each, the remainder on the stages before the last), so an uneven split
is a real stage imbalance. The send between stage k and k+1 moves the batch's hidden states (tokens x
hidden x 2 bytes, fp16) from each TP rank to its peer: `kernels.predict_collective_time("send_recv")` over
NVLink when both stages sit on one node and over the node's NIC (kernels' default 200 Gb/s HDR InfiniBand
per GPU, DGX A100 whitepaper) when the boundary crosses nodes (ranks packed node by node, `gpus_per_node`).
The bubble is whatever this leaves idle: the fill while fewer than `pp` batches are in flight, waits behind
the slowest stage, and the sends.

The batch cap (`max_num_seqs`) and token budget apply per micro-batch (vLLM runs one scheduler per
virtual engine, each with its own `max_num_seqs`); the KV-block pool is the replica's (one pool, as
Sarathi's and Vidur's single scheduler). `simulate(..., pp > 1)` uses this replica by default
(`pipeline="micro_batch"`); `pipeline="sequential"` keeps the old one-batch-at-a-time model.
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np

from sysgym import kernels
from sysgym.envs.llm_serving.replica import Replica

PIPELINES = ("micro_batch", "sequential")
FP16 = 2  # activations sent between stages are fp16 (vLLM's default dtype for fp16/bf16 models)


def stage_layers(num_layers: int, pp: int) -> list[int]:
    """Layers per stage as vLLM splits them (`get_pp_indices`): L // pp each, the remainder one each on the
    stages before the last (the last stage also holds the LM head)."""
    parts = [num_layers // pp] * pp
    for i in range(2, num_layers % pp + 2):
        parts[-i] += 1
    return parts


class StageSends:
    """Seconds to send a batch's activations across each stage boundary, tabulated by token count."""

    def __init__(self, spec, gpu, tp: int, pp: int, calibration, gpus_per_node: int = 8):
        self.hidden = spec.hidden_size
        self.calibration = calibration
        self.intra = kernels.Cluster(gpu=gpu, num_nodes=1, gpus_per_node=gpus_per_node)
        self.inter = kernels.Cluster(gpu=gpu, num_nodes=2, gpus_per_node=1)  # one GPU's NIC to its peer's
        # boundary k sits between the GPUs of stage k and stage k+1; ranks are packed node by node
        self.crosses = [((k + 1) * tp - 1) // gpus_per_node != (k + 1) * tp // gpus_per_node for k in range(pp - 1)]
        self._tab = {False: np.zeros(0), True: np.zeros(0)}

    def _table(self, cross: bool, upto: int) -> np.ndarray:
        tab = self._tab[cross]
        if upto >= len(tab):
            n = max(upto + 1, 2 * len(tab), 1024)
            nbytes = np.arange(n, dtype=float) * self.hidden * FP16
            tab = kernels.predict_collective_time("send_recv", nbytes, 2, self.inter if cross else self.intra,
                                                  calibration=self.calibration) * 1e-3
            tab[0] = 0.0
            self._tab[cross] = tab
        return tab

    def seconds(self, num_tokens: int) -> list[float]:
        return [float(self._table(c, num_tokens)[num_tokens]) for c in self.crosses]


class PipelineReplica(Replica):
    """A replica of `pp` stages with up to `pp` micro-batches in flight (see the module doc).

    `latency` prices the whole model on one stage's GPUs without sends (a pp=1 `BatchLatency`); the memory
    plan is the pp-stage one. `self.running` keeps every admitted request in admission order; while the
    scheduler decides, it sees only those not in flight."""

    def __init__(self, index, st, plan, latency, scheduler, *, pp: int, sends: StageSends,
                 iteration_overhead_s: float = 0.0, **kw):
        super().__init__(index, st, plan, latency, scheduler, **kw)
        self.pp = int(pp)
        layers = stage_layers(latency.layers, self.pp)
        self.frac = [n / latency.layers for n in layers]
        self.sends = sends
        self.stage_overhead = float(iteration_overhead_s)
        self.stage_free = [0.0] * self.pp
        self.inflight: deque[tuple[float, list, np.ndarray]] = deque()
        self.busy: set[int] = set()
        self._progress = False

    # -- the event loop -----------------------------------------------------------------------------
    def run(self, until: float = math.inf) -> None:
        while True:
            self.ingest()
            self._retire()
            if self.idle():
                t = self.next_arrival()
                if t < until and t < math.inf:
                    self._advance_to(max(self.now, t))
                    continue
                return
            if self.now >= until:
                return
            if len(self.inflight) < self.pp:
                self._progress = False
                self.step(until)
                if self._progress:
                    continue
            # the pipeline is full or nothing can be scheduled: wait for a batch to leave or a request to come
            t = min(self.inflight[0][0] if self.inflight else math.inf, self.next_arrival())
            if t == math.inf:
                raise self.never_admitted()
            self._advance_to(max(self.now, t))

    def _advance_to(self, t: float) -> None:
        self.kv_area += self.used * (t - self.now)
        self.now = t

    def _retire(self) -> None:
        """Batches that left the last stage by now: their tokens, at their own end time."""
        while self.inflight and self.inflight[0][0] <= self.now:
            end, prefills, d = self.inflight.popleft()
            self.busy.difference_update(d.tolist())
            self.busy.difference_update(r for r, _ in prefills)
            now, self.now = self.now, end  # finish times are the batch's end
            self.complete(prefills, d, end)
            self.now = now

    # -- one boundary: the scheduler sees the requests not in flight -----------------------------------
    def step(self, until: float = math.inf) -> None:
        full, busy = self.running, self.busy
        self.running = [r for r in full if r not in busy] if busy else list(full)
        try:
            super().step(until)
        finally:
            seen = set(self.running)
            kept = [r for r in full if r in busy or r in seen]
            old = set(full)
            self.running = kept + [r for r in self.running if r not in old]

    def nothing_to_run(self) -> None:
        if not self.inflight:
            raise self.never_admitted()

    def _fast_forward(self, until: float, queue_blocked: bool, R: np.ndarray | None = None) -> None:
        # every decode's next KV slot is allocated (step reserved it): launch one decode micro-batch
        self.execute([], self.running_array() if R is None else R, 0.0)

    def _decode_run(self, until: float, R: np.ndarray, hold: int, floor: int) -> None:
        # a refused head's decode run: here too one decode micro-batch at a time
        self.execute([], R, 0.0)

    def advance(self, dt: float, tokens: int, seqs: int, n: int = 1, blocks_max: int | None = None) -> None:
        super().advance(dt, tokens, seqs, n, blocks_max)  # only swaps (stage 0 copies KV back)
        self.stage_free[0] = max(self.stage_free[0], self.now)
        self._progress = True

    def execute(self, prefills: list, d: np.ndarray, extra: float) -> None:
        """Launch a micro-batch into the pipeline; its effects come when it leaves the last stage."""
        ntok, items, kvtok = self.batch_cost(prefills, d)
        compute = self.lat.iteration(ntok, items, kvtok, len(d))
        sends = self.sends.seconds(ntok)
        start = self.now
        t = start + self.stage_overhead + extra + compute * self.frac[0]
        self.stage_free[0] = t
        for k in range(1, self.pp):
            t = max(t + sends[k - 1], self.stage_free[k]) + compute * self.frac[k]
            self.stage_free[k] = t
        self.inflight.append((t, list(prefills), d))
        self.busy.update(d.tolist())
        self.busy.update(r for r, _ in prefills)
        log = self.log
        log.start.append(start)
        log.end.append(t)
        log.n.append(1)
        log.seqs.append(len(prefills) + len(d))
        log.tokens.append(ntok)
        log.blocks_max.append(self.used)
        self.iterations += 1
        self.tokens_processed += ntok
        self._progress = True
        self._advance_to(self.stage_free[0])
