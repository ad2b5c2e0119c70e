"""`llm_serving.cpsat`: a clairvoyant CP-SAT lower bound on mean end-to-end latency for tiny traces.

Relaxation (valid for every scheduler the simulator runs): time is cut into slots of length Delta, a lower
bound on the duration of *any* iteration (the smallest token-dependent time of the latency table plus the
smaller attention launch overhead). Iterations are sequential and each lasts >= Delta, so mapping an
iteration starting at t to slot floor(t / Delta) is one-to-one, and a request served in slot s finishes no
earlier than (s + 1) Delta. Every request needs at least `output` iterations (one per token), none before
its arrival slot; in every slot the requests served hold at least their prompt's KV blocks (<= the pool)
and are at most the batch cap. CP-SAT minimises the sum of completion slots; its proven bound
(`BestObjectiveBound`) gives the lower bound on mean latency even when the time limit stops it. A cut
strengthens it: the same slots on one machine `cap` times as fast, where a request may use all of it, is a
further relaxation solved exactly by SRPT (1|r_j, pmtn|sum C_j), and its sum of completions bounds ours.
The solution's decisions are the best records among the registered schedulers (so the gap is real).

Its kind is "bound": what it contributes is the lower bound. Its schedule is the best of several schedulers
picked after running them all on the known trace (hindsight), not a method an online server could run, and
its objective is that scheduler's own number.
"""
from __future__ import annotations

import heapq
import math
import time

import numpy as np
from ortools.sat.python import cp_model

from sysgym import kernels
from sysgym.envs.llm_serving.evaluate import num_blocks_of
from sysgym.envs.llm_serving.instance import ServingInstance
from sysgym.envs.llm_serving.latency import BatchLatency
from sysgym.envs.llm_serving.memory import plan_memory
from sysgym.envs.llm_serving.replica import request_arrays
from sysgym.envs.llm_serving.simulator import simulate
from sysgym.solution import Solution
from sysgym.solver import Solver, register
from sysgym.solvers.cpsat_params import set_limits


def slot_length(inst: ServingInstance, max_tokens_per_iter: int = 8192) -> float:
    """Delta: a lower bound on any iteration's duration (seconds)."""
    lat = BatchLatency(inst.model, inst.gpu, tp=inst.tp, pp=inst.pp, block_size=inst.block_size,
                       max_batch_tokens=max_tokens_per_iter)
    base = lat.base_table(max_tokens_per_iter)[1:]
    return float(base.min()) + lat.layers * min(lat.decode_ovh, lat.prefill_ovh)


def srpt_completions(release: np.ndarray, work: np.ndarray, speed: float) -> np.ndarray:
    """Completion times of SRPT on one machine of `speed` (optimal for 1|r_j, pmtn|sum C_j, Schrage 1968)."""
    n = len(release)
    order = np.argsort(release, kind="stable")
    rem = np.asarray(work, float).copy()
    done = np.zeros(n)
    t, i, active = 0.0, 0, []
    while i < n or active:
        if not active:
            t = max(t, float(release[order[i]]))
        while i < n and release[order[i]] <= t + 1e-12:
            heapq.heappush(active, (rem[order[i]], int(order[i])))
            i += 1
        r, j = heapq.heappop(active)
        nxt = float(release[order[i]]) if i < n else math.inf
        if t + r / speed <= nxt + 1e-12:
            t += r / speed
            done[j] = t
        else:
            rem[j] = r - (nxt - t) * speed
            t = nxt
            heapq.heappush(active, (rem[j], j))
    return done


def lower_bound(inst: ServingInstance, *, time_limit: float = 10.0, workers: int = 2, max_vars: int = 200_000,
                max_num_seqs: int | None = None, seed: int = 0) -> dict:
    """Solve the relaxation; returns {'bound', 'status', 'delta', 'slots', ...} (bound = mean latency, s).

    Instances too large for the time-indexed model (more than `max_vars` request-slot pairs) or with several
    replicas get the SRPT bound alone (status ``"SKIPPED"``): with R replicas the fast machine runs at
    R x cap, still a relaxation.
    """
    spec = kernels.models.get(inst.model)
    max_tokens = int(inst.max_tokens or spec.max_seq_len)
    prompt, output, _ = request_arrays(inst.trace, max_tokens)
    arrival = inst.trace.arrival
    n = len(arrival)
    delta = slot_length(inst)
    nb = num_blocks_of(inst)
    cap = max_num_seqs or inst.max_num_seqs or plan_memory(
        spec, inst.gpu, tp=inst.tp, pp=inst.pp, block_size=inst.block_size, max_tokens=max_tokens,
        semantics=inst.memory_semantics).max_batch_size
    first = np.floor(arrival / delta).astype(int)
    horizon = int(first.max() + output.sum() + 1)
    srpt = srpt_completions(first.astype(float), output, float(cap * inst.num_replicas))
    srpt_bound = float((srpt.sum() * delta - arrival.sum()) / n)
    trivial = float(np.mean((first + output) * delta - arrival))
    if n * horizon > max_vars or inst.num_replicas != 1:
        return {"bound": max(trivial, srpt_bound), "status": "SKIPPED", "delta": delta, "slots": horizon,
                "num_vars": 0, "trivial_bound": trivial, "srpt_bound": srpt_bound, "cpsat_bound": None,
                "proved_optimal": False}
    pb = -(-prompt // inst.block_size)
    m = cp_model.CpModel()
    x: dict[tuple[int, int], cp_model.IntVar] = {}
    comp = []
    for r in range(n):
        slots = range(int(first[r]), horizon)
        row = [m.NewBoolVar(f"x{r}_{s}") for s in slots]
        for s, v in zip(slots, row):
            x[r, s] = v
        m.Add(sum(row) == int(output[r]))
        c = m.NewIntVar(int(first[r] + output[r]), horizon, f"c{r}")
        for s, v in zip(slots, row):
            m.Add(c >= s + 1).OnlyEnforceIf(v)
        # out distinct slots with mean mu end no earlier than mu + (out - 1) / 2 (tightens the LP relaxation)
        o = int(output[r])
        m.Add(o * c >= sum((s + 1) * v for s, v in zip(slots, row)) + o * (o - 1) // 2)
        comp.append(c)
    by_slot: dict[int, list[int]] = {}
    for (r, s) in x:
        by_slot.setdefault(s, []).append(r)
    for s, rs in by_slot.items():
        if len(rs) > 1:
            if sum(int(pb[r]) for r in rs) > nb:
                m.Add(sum(int(pb[r]) * x[r, s] for r in rs) <= nb)
            if len(rs) > cap:
                m.Add(sum(x[r, s] for r in rs) <= cap)
    m.Add(sum(comp) >= int(math.ceil(float(srpt.sum()) - 1e-6)))
    m.Minimize(sum(comp))
    solver = cp_model.CpSolver()
    set_limits(solver, time_limit=time_limit, workers=workers, seed=seed)  # deterministic (cpsat_params.py)
    status = solver.Solve(m)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        bound_slots = solver.BestObjectiveBound()
        if not math.isfinite(bound_slots):
            bound_slots = float(sum(first + output))
    else:
        bound_slots = solver.BestObjectiveBound()
    bound = (bound_slots * delta - float(arrival.sum())) / n
    return {"bound": max(bound, trivial, srpt_bound), "status": solver.StatusName(status), "delta": delta,
            "slots": horizon, "num_vars": len(x), "trivial_bound": trivial, "srpt_bound": srpt_bound,
            "cpsat_bound": bound, "proved_optimal": status == cp_model.OPTIMAL}


@register
class CpsatBound(Solver):
    """Clairvoyant CP-SAT lower bound on mean latency (tiny traces); decisions = best scheduler's records."""

    name = "llm_serving.cpsat"
    family = "llm_serving"
    kind = "bound"
    deterministic_limit = True  # time_limit in deterministic seconds (cpsat_params.py)

    def __init__(self, workers: int = 2, schedulers: tuple[str, ...] | list[str] = ("vllm", "orca", "sarathi", "sjf"),
                 max_vars: int = 200_000):
        super().__init__(workers=workers, schedulers=list(schedulers), max_vars=max_vars)
        self.workers, self.schedulers, self.max_vars = int(workers), list(schedulers), int(max_vars)

    def solve(self, instance: ServingInstance, *, time_limit=None, seed: int = 0) -> Solution:
        t0 = time.perf_counter()
        best = None
        for name in self.schedulers:
            res = simulate(instance.trace, scheduler=name, seed=seed, **instance.simulate_kwargs())
            if best is None or res.metrics["e2e_mean"] < best[1].metrics["e2e_mean"]:
                best = (name, res)
        lb = lower_bound(instance, time_limit=float(time_limit or 10.0), workers=self.workers,
                         max_vars=self.max_vars, seed=seed)
        obj = float(best[1].metrics["e2e_mean"])
        bound = min(lb["bound"], obj)
        return Solution(best[1].records(), obj, "feasible", time.perf_counter() - t0, bound=bound,
                        stats={"best_scheduler": best[0], "cpsat_status": lb["status"], "slot_s": lb["delta"],
                               "num_vars": lb["num_vars"], "trivial_bound": lb["trivial_bound"],
                               "srpt_bound": lb["srpt_bound"], "cpsat_bound": lb["cpsat_bound"],
                               "proved_optimal_relaxation": lb["proved_optimal"]})
