"""The offline optimum with the future known: a bound for every online policy.

Per function, the decisions that matter are made at each idle gap (the instance's last invocation ended at B,
the next one arrives at a > B). Three actions suffice:
* **warm**: be ready at a. If a - B <= c (the cold-start time) keep the instance through the gap (idle cost
  m (a - B)); otherwise unload at B and pre-warm just in time, loading at a - c (idle cost m c);
* **cold**: unload at B and cold-start at a (the invocation, and any arriving while it loads, waits).
Every other plan is dominated when memory_weight x memory <= 1/2 GB-s per second (the weight times the instance's
size in GB): keeping then unloading costs idle memory and still reloads; loading earlier than a - c only adds
idle memory; starting a load delta later than a - c saves at most memory_weight x m x delta now and as much in the
next gap (the busy period ends up to delta later), but makes the invocation wait delta. So the per-function
optimum over these actions is the optimum over all schedules, and without a capacity the functions are
independent: the sum of the per-function optima is the exact optimum of the uncapacitated problem, a lower bound
for the capacitated one and for every online policy. The first invocation of each function is a cold start for
every method (no decision precedes it).

`serverless.offline` (kind "bound"): that exact per-function optimum (a shortest path in each function's decision
graph: nodes are the states (invocation, busy end) at gaps, edges the two actions). Its schedule is returned when
it fits the pool; when it does not, the same plans are replayed through the simulator with clairvoyant (Belady)
eviction, the schedule is feasible, and the gap to the bound is reported.

`serverless.cpsat` (kind "bound"): the same decision graphs with the pool's capacity, one path per function
chosen by OR-Tools CP-SAT subject to a cumulative memory constraint (small instances). Its optimum is over the
three actions; with a binding capacity a pre-warm started later than a - c (when memory frees up) could do
better, which this model does not search, so the proven lower bound it reports is the uncapacitated optimum
(`restricted_bound` in stats is CP-SAT's bound over the three actions).
"""
from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from sysgym.envs.serverless.evaluate import evaluate
from sysgym.envs.serverless.instance import ServerlessInstance
from sysgym.envs.serverless.simulator import INF, Request, Simulator, drive
from sysgym.errors import InfeasibleSolutionError, InvalidArgumentError
from sysgym.solution import Solution
from sysgym.solvers.base import Solver, register
from sysgym.solvers.cpsat_params import set_limits

TERMINAL = -1
WLOG_LIMIT = 0.5  # memory_weight x GB of a function under which the three actions are w.l.o.g. (module doc)


@dataclass
class Edge:
    src: int
    dst: int  # node id or TERMINAL
    action: str  # "cold" | "keep" | "jit"
    k: int  # index (in the function's invocations) of the arrival the edge starts with
    occ_start: float  # when the instance is loaded (or, for "keep", from when it is idle)
    busy_end: float  # the busy end at the edge's last invocation
    cost: float  # waits + memory_weight x idle GB-s


@dataclass
class FunctionDag:
    f: int
    node_k: list[int]
    node_b: list[float]
    edges: list[Edge]
    out: list[list[int]]

    def shortest_path(self) -> tuple[float, list[Edge]]:
        n_nodes = len(self.node_k)
        dist = [INF] * n_nodes
        back: list[int | None] = [None] * n_nodes
        dist[0] = 0.0
        best, best_edge = INF, None
        for node in sorted(range(n_nodes), key=lambda i: self.node_k[i]):
            if dist[node] == INF:
                continue
            for ei in self.out[node]:
                e = self.edges[ei]
                d = dist[node] + e.cost
                if e.dst == TERMINAL:
                    if d < best:
                        best, best_edge = d, ei
                elif d < dist[e.dst]:
                    dist[e.dst], back[e.dst] = d, ei
        path = []
        ei = best_edge
        while ei is not None:
            path.append(self.edges[ei])
            ei = back[self.edges[ei].src]
        return best, path[::-1]

    def lifetimes(self, path: list[Edge]) -> list[tuple[int, float, float]]:
        out: list[tuple[int, float, float]] = []
        load = None
        for e in path:
            if e.action != "keep":
                if load is not None:
                    out.append((self.f, load, self.node_b[e.src]))
                load = e.occ_start
        if load is not None:
            out.append((self.f, load, path[-1].busy_end))
        return out


def build_dag(f: int, a: np.ndarray, e: np.ndarray, c: float, mem_gb: float, weight: float) -> FunctionDag:
    """Function f's decision graph (module doc) over its arrivals `a` and executions `e`."""
    a_l, e_l = a.tolist(), e.tolist()
    n = len(a_l)
    node_k, node_b = [0], [-INF]
    index: dict[tuple[int, float], int] = {}
    edges: list[Edge] = []
    out: list[list[int]] = [[]]
    buckets: dict[int, list[int]] = defaultdict(list)
    buckets[0].append(0)
    idle_cost = weight * mem_gb
    for k in range(n):
        for node in buckets.pop(k, []):
            b = node_b[node]
            for action in (("cold",) if node == 0 else ("warm", "cold")):
                ak = a_l[k]
                if action == "cold":
                    occ, ready, idle = ak, ak + c, 0.0
                elif ak - b <= c:
                    action, occ, ready, idle = "keep", b, ak, ak - b
                else:
                    action, occ, ready, idle = "jit", ak - c, ak, c
                waits, busy, j = 0.0, -INF, k
                while True:
                    start = a_l[j] if a_l[j] >= ready else ready
                    waits += start - a_l[j]
                    end = start + e_l[j]
                    if end > busy:
                        busy = end
                    j += 1
                    if j == n or a_l[j] > busy:
                        break
                if j == n:
                    dst = TERMINAL
                else:
                    dst = index.get((j, busy))
                    if dst is None:
                        dst = index[(j, busy)] = len(node_k)
                        node_k.append(j), node_b.append(busy), out.append([])
                        buckets[j].append(dst)
                out[node].append(len(edges))
                edges.append(Edge(node, dst, action, k, occ, busy, waits + idle_cost * idle))
    return FunctionDag(f, node_k, node_b, edges, out)


def build_dags(inst: ServerlessInstance) -> list[FunctionDag]:
    dags = []
    for f, idx in enumerate(inst.function_invocations()):
        if len(idx):
            dags.append(build_dag(f, inst.inv_time[idx], inst.inv_exec[idx], float(inst.cold_s[f]),
                                  float(inst.mem_mb[f]) / 1024.0, inst.memory_weight))
    return dags


def uncapacitated_optimum(inst: ServerlessInstance) -> tuple[float, list[tuple[int, float, float]], dict]:
    """(cost, schedule, per-function plans {f: {k: action}}) of the exact per-function optimum without capacity."""
    total, sched, plans = 0.0, [], {}
    for dag in build_dags(inst):
        cost, path = dag.shortest_path()
        total += cost
        sched += dag.lifetimes(path)
        plans[dag.f] = {e.k: e.action for e in path}
    return total, sched, plans


def bound_is_valid(inst: ServerlessInstance) -> bool:
    """Whether the three actions are w.l.o.g. for every function (memory_weight x GB <= 1/2)."""
    return bool(inst.num_functions == 0 or inst.memory_weight * inst.mem_mb.max() / 1024.0 <= WLOG_LIMIT)


class OraclePolicy:
    """Replays per-function plans with the future known; under memory pressure evicts the idle instance whose
    next invocation is furthest away (Belady). Used to make offline plans fit the pool."""

    name = "oracle"

    def __init__(self, inst: ServerlessInstance, plans: dict[int, dict[int, str]]):
        self.arrivals = [inst.inv_time[idx].tolist() for idx in inst.function_invocations()]
        self.plans = plans

    def reset(self, sim: Simulator, seed: int = 0) -> None:
        pass

    def _next(self, sim: Simulator, g: int) -> float:
        k = sim.count[g]
        return self.arrivals[g][k] if k < len(self.arrivals[g]) else INF

    def plan(self, sim: Simulator, f: int) -> tuple[float, float]:
        k, b = sim.count[f], sim.now
        if k >= len(self.arrivals[f]):
            return 0.0, 0.0
        a, c = self.arrivals[f][k], sim.cold[f]
        action = self.plans.get(f, {}).get(k, "warm")
        if action == "cold":
            return 0.0, 0.0
        if action == "jit" or (action == "warm" and a - b > c):
            p = (a - c) - b
            while b + p + c < a:
                p = math.nextafter(p, INF)
            if p > 0:
                return p, 0.0
        keep = a - b
        while b + keep < a:
            keep = math.nextafter(keep, INF)
        return 0.0, keep

    def victim(self, sim: Simulator, request: Request) -> int:
        return max(request.candidates, key=lambda g: (self._next(sim, g), sim.mem[g], -g))


def oracle_schedule(inst: ServerlessInstance, plans: dict[int, dict[int, str]]) -> Simulator:
    sim = Simulator(inst)
    drive(sim, OraclePolicy(inst, plans))
    return sim


def _status(objective: float, bound: float | None) -> str:
    if bound is not None and objective <= bound + 1e-9 * max(1.0, abs(bound)) + 1e-9:
        return "optimal"
    return "feasible"


@register
class Offline(Solver):
    """Clairvoyant optimum per function without capacity (exact; a bound for every policy), fitted to the pool."""

    name = "serverless.offline"
    family = "serverless"
    kind = "bound"

    def __init__(self):
        super().__init__()

    def solve(self, instance, *, time_limit=None, seed=0) -> Solution:
        t0 = time.perf_counter()
        bound_cost, sched, plans = uncapacitated_optimum(instance)
        stats: dict[str, Any] = {"uncapacitated_optimum": bound_cost, "repaired": False}
        try:
            m = evaluate(instance, sched)
        except InfeasibleSolutionError as exc:
            if exc.constraint != "capacity":
                raise
            sim = oracle_schedule(instance, plans)
            sched = sim.schedule
            m = evaluate(instance, sched)
            stats.update(repaired=True, evictions=sim.evictions, skipped_prewarms=sim.skipped_prewarms)
        bound = bound_cost if bound_is_valid(instance) else None
        if bound is None:
            stats["bound_note"] = (f"memory_weight x memory exceeds {WLOG_LIMIT} for some function: the three "
                                   "actions are not provably w.l.o.g., so no bound is claimed")
        stats.update({k: m[k] for k in ("cold_start_rate", "added_latency_p99_s", "wasted_gb_s")})
        return Solution(sched, m["cost"], _status(m["cost"], bound), time.perf_counter() - t0, bound=bound,
                        stats=stats)


@register
class CpSat(Solver):
    """Clairvoyant optimum with the pool's capacity: one plan path per function, CP-SAT cumulative memory model."""

    name = "serverless.cpsat"
    family = "serverless"
    kind = "bound"
    deterministic_limit = True  # time_limit in deterministic seconds (cpsat_params.py)

    def __init__(self, max_edges: int = 20000, workers: int = 1):
        super().__init__(max_edges=max_edges, workers=workers)
        if int(max_edges) <= 0 or int(workers) <= 0:
            raise InvalidArgumentError(f"max_edges and workers must be positive, got {max_edges}, {workers}")
        self.max_edges, self.workers = int(max_edges), int(workers)

    def solve(self, instance, *, time_limit=None, seed=0) -> Solution:
        from ortools.sat.python import cp_model

        t0 = time.perf_counter()
        dags = build_dags(instance)
        n_edges = sum(len(d.edges) for d in dags)
        if n_edges > self.max_edges:
            raise InvalidArgumentError(f"{self.name}: {instance.name} has {n_edges} decision edges, more than "
                                       f"max_edges={self.max_edges}; use serverless.offline on large instances")
        paths = [d.shortest_path() for d in dags]
        bound_cost = sum(cost for cost, _ in paths)
        model = cp_model.CpModel()
        lits, intervals, demands, objective = [], [], [], []
        scale = 1e6
        for d, (_, best) in zip(dags, paths):
            x = [model.NewBoolVar(f"x{d.f}_{i}") for i in range(len(d.edges))]
            lits.append(x)
            on_path = {id(e) for e in best}
            for lit, e in zip(x, d.edges):  # start from the uncapacitated optimum (feasible unless capacity binds)
                model.AddHint(lit, id(e) in on_path)
            incoming: dict[int, list] = defaultdict(list)
            terminal = []
            for i, e in enumerate(d.edges):
                (terminal if e.dst == TERMINAL else incoming[e.dst]).append(x[i])
            model.Add(sum(x[i] for i in d.out[0]) == 1)
            for node in range(1, len(d.node_k)):
                model.Add(sum(incoming[node]) == sum(x[i] for i in d.out[node]))
            model.Add(sum(terminal) == 1)
            mem = int(round(float(instance.mem_mb[d.f])))
            for i, e in enumerate(d.edges):
                start = math.ceil(d.node_b[e.src] * 1000) if e.action == "keep" else math.floor(e.occ_start * 1000)
                end = math.ceil(e.busy_end * 1000)
                if end > start:
                    intervals.append(model.NewOptionalFixedSizeIntervalVar(start, end - start, x[i], f"i{d.f}_{i}"))
                    demands.append(mem)
                objective.append(int(round(e.cost * scale)) * x[i])
        model.AddCumulative(intervals, demands, int(math.floor(instance.capacity_mb)))
        model.Minimize(sum(objective))
        solver = cp_model.CpSolver()
        set_limits(solver, time_limit=time_limit, workers=self.workers, seed=seed)  # deterministic (cpsat_params.py)
        status = solver.Solve(model)
        stats: dict[str, Any] = {"cpsat_status": solver.StatusName(status), "edges": n_edges,
                                 "uncapacitated_optimum": bound_cost}
        bound = bound_cost if bound_is_valid(instance) else None
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            sched = []
            for d, x in zip(dags, lits):
                path = [e for e, lit in zip(d.edges, x) if solver.Value(lit)]
                path.sort(key=lambda e: e.k)
                sched += d.lifetimes(path)
            stats.update(restricted_optimal=status == cp_model.OPTIMAL,
                         restricted_bound=solver.BestObjectiveBound() / scale)
            m = evaluate(instance, sched)
            sol_status = _status(m["cost"], bound)
        else:  # no CP-SAT solution in time: the clairvoyant replay (always feasible), marked as a timeout
            _, _, plans = uncapacitated_optimum(instance)
            sched = oracle_schedule(instance, plans).schedule
            m = evaluate(instance, sched)
            sol_status = "timeout"
        stats.update({k: m[k] for k in ("cold_start_rate", "added_latency_p99_s", "wasted_gb_s")})
        return Solution(sched, m["cost"], sol_status, time.perf_counter() - t0, bound=bound, stats=stats)
