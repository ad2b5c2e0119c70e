"""`job_sched.cpsat`: the clairvoyant bound. Knowing every arrival and task duration in advance, an OR-Tools
CP-SAT model schedules all tasks (integer milliseconds) on the executors, minimising the mean response time
(or, with `objective="user_mean"`, the mean over users of each user's mean response time).

Model: one interval per task, starting no earlier than its job's arrival; a cumulative constraint of capacity
`num_executors` (and, for up to 8 executors or `disjunctive=True`, an executor assignment with a no-overlap
constraint per executor, which propagates much better); a task starts after every task of its parent stages
ends; a job completes after each of its tasks; the total response time is at least that of preemptive SRPT on
one machine `num_executors` times faster (a cut that lifts the proven bound).

Both settings are modelled exactly:
* `shared_app` (no moving delay, no warm-up): intervals of the warm durations;
* `multi_app` (Decima's executor model; `model_delays=True`, the default): each executor's tasks form a circuit
  (OR-Tools AddCircuit over the depot and the tasks it runs); a task whose predecessor on its executor belongs to
  another job (or that is the executor's first) is fresh: it starts no earlier than its job's arrival plus the
  moving delay and after its predecessor's end plus the moving delay, and lasts its duration plus its stage's
  warm-up; tasks of one job follow each other directly. This is exactly what `job_sched.evaluate` checks, so the
  schedule is decoded from the model and every policy's executed schedule is a solution of it: the proven bound
  bounds every policy below, and the status is "optimal" when CP-SAT proves it. The circuits have T^2 x E arc
  literals, so this model is for tiny instances; `model_delays=False` keeps the earlier relaxation (delays left
  out: a weaker bound, the plan replayed in the simulator, which pays the delays, status "feasible").

Reproducibility (`deterministic=True`, the default): the same configuration gives the same answer on every run.
The search runs CP-SAT's deterministic interleaved mode (`interleave_search`: the `workers` subsolvers take turns
in fixed batches, independent of thread timing) and `time_limit` becomes a deterministic-time limit
(`max_deterministic_time`, CP-SAT's work units, about a second each on an idle machine; a wall-clock limit of
30 x time_limit + 60 s only guards against a hung machine, and `stats["wall_guard_hit"]` says when it bound).
`deterministic=False` is the earlier portfolio search under a wall-clock `time_limit`, whose answer depends on
thread timing (tiny seed 0 with delays gave 35.37 s and 40.10 s in two runs with 2 workers).

Sizes: meant for small instances (a few jobs, tens of tasks, e.g. the `tiny` preset); `max_tasks` refuses larger
ones with a clear error rather than running for hours.
"""
from __future__ import annotations

import dataclasses
import heapq
import time

import numpy as np
from ortools.sat.python import cp_model

from sysgym.envs.job_sched.evaluate import evaluate
from sysgym.envs.job_sched.instance import JobInstance, topological_order
from sysgym.envs.job_sched.simulator import run_policy
from sysgym.errors import InvalidArgumentError, InvalidInstanceError
from sysgym.solution import Solution
from sysgym.solver import Solver, register
from sysgym.solvers.cpsat_params import limit_stats, set_limits
from sysgym.solvers.job_sched.policies import DecimaCap, Fifo, Srpt, Uwfq


class _PlanPolicy:
    """Replays a plan: runnable stages in order of their planned start, one executor at a time."""

    name = "cpsat_plan"
    runtime_partition_s = None

    def __init__(self, stage_start: np.ndarray):
        self.key = stage_start.tolist()

    def reset(self, sim, seed=0):
        pass

    def pick(self, sim):
        key = self.key
        return min(sim.ready, key=lambda s: (key[s], s)), 1


def fast_machine_bound(inst: JobInstance) -> np.ndarray:
    """Job completion times of preemptive SRPT on one machine `num_executors` times faster, with release dates and
    sizes = job work. SRPT is optimal for 1|r_j, pmtn|sum C_j, and any schedule on E executors (with precedence,
    delays, warm-up) is a feasible preemptive schedule of that machine, so sum_j (C_j - a_j) of this is a lower
    bound on every schedule's total response time (added to the model as a cut)."""
    arr, rem, E = inst.job_arrival, inst.job_work_s().astype(float), float(inst.num_executors)
    order = np.argsort(arr, kind="stable")
    done = np.full(inst.num_jobs, np.nan)
    t, i, active = 0.0, 0, []
    while i < len(order) or active:
        if not active:
            t = max(t, float(arr[order[i]]))
        while i < len(order) and arr[order[i]] <= t + 1e-12:
            active.append(int(order[i]))
            i += 1
        j = min(active, key=lambda j: (rem[j], j))
        nxt = float(arr[order[i]]) if i < len(order) else np.inf
        fin = t + rem[j] / E
        if fin <= nxt:
            t, rem[j], done[j] = fin, 0.0, fin
            active.remove(j)
        else:
            rem[j] -= (nxt - t) * E
            t = nxt
    return done


def decode_executors(start: np.ndarray, end: np.ndarray, E: int) -> np.ndarray:
    """Assign executors to intervals that never exceed E at once (earliest-free executor first)."""
    order = np.lexsort((end, start))
    free = [(0, e) for e in range(E)]  # (free at, executor)
    heapq.heapify(free)
    ex = np.empty(len(start), np.int64)
    for k in order.tolist():
        t, e = heapq.heappop(free)
        if t > start[k]:
            raise RuntimeError("cumulative violated while decoding executors")
        ex[k] = e
        heapq.heappush(free, (int(end[k]), e))
    return ex


MAX_ARCS = 250_000  # arc literals of the exact multi_app model (T^2 x E) beyond which it refuses the instance
# Deterministic mode (solvers/cpsat_params.py): the wall-clock guard is WALL_GUARD x time_limit + 60 s. A
# deterministic second took up to ~10 wall seconds on a 2-core machine shared with other jobs
# (benchmarks/job_sched_bench.py), so 30 x leaves room.


@register
class JobCpSat(Solver):
    """The clairvoyant CP-SAT bound: knows every arrival and duration; a lower bound on every policy's mean response.

    `kind = "bound"`: the schedule it returns uses the future (arrivals and durations no online policy knows),
    so it is the offline optimum of an online problem (exactly, when the instance has no moving delay and no
    warm-up and CP-SAT proves optimality), and `bound` is a lower bound on every policy's mean response time.
    """

    name = "job_sched.cpsat"
    family = "job_sched"
    kind = "bound"

    def __init__(self, workers: int = 2, objective: str = "mean", max_tasks: int = 400, hint: bool = True,
                 linearization_level: int = 1, disjunctive: bool | None = None, deterministic: bool = True,
                 model_delays: bool = True):
        super().__init__(workers=workers, objective=objective, max_tasks=max_tasks, hint=hint,
                         linearization_level=linearization_level, disjunctive=disjunctive,
                         deterministic=deterministic, model_delays=model_delays)
        self.disjunctive = disjunctive
        self.hint, self.linearization_level = hint, linearization_level
        if objective not in ("mean", "user_mean"):
            raise InvalidArgumentError(f"objective must be 'mean' or 'user_mean', got {objective!r}")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise InvalidArgumentError(f"workers must be a positive integer, got {workers!r}")
        self.workers, self.objective, self.max_tasks = workers, objective, max_tasks
        self.deterministic, self.model_delays = bool(deterministic), bool(model_delays)
        self.deterministic_limit = self.deterministic

    def solve(self, instance: JobInstance, *, time_limit: float | None = None, seed: int = 0) -> Solution:
        t0 = time.perf_counter()
        inst = instance
        if inst.num_tasks > self.max_tasks:
            raise InvalidInstanceError(f"{inst.name}: {inst.num_tasks} tasks; job_sched.cpsat is a bound for small "
                                       f"instances (max_tasks={self.max_tasks}); use the `tiny` preset or "
                                       "max_tasks_per_stage")
        dur = np.rint(inst.task_duration_s * 1000).astype(np.int64)
        arr = np.rint(inst.job_arrival * 1000).astype(np.int64)
        T, S, J = inst.num_tasks, inst.num_stages, inst.num_jobs
        task_stage = np.repeat(np.arange(S), np.diff(inst.stage_task_ptr))
        task_job = inst.stage_job[task_stage]
        horizon = int(arr.max() + dur.sum())
        delays = self.model_delays and inst.charges_moves  # the exact multi_app model (module doc)
        E = int(inst.num_executors)
        if delays and T * T * E > MAX_ARCS:
            raise InvalidInstanceError(f"{inst.name}: {T} tasks on {E} executors need {T * T * E:,} arc literals in "
                                       f"the exact multi_app model (at most {MAX_ARCS:,}); use the `tiny` preset, or "
                                       "model_delays=False for the relaxation bound")
        D = int(round(inst.moving_delay_s * 1000))
        warm = np.rint(inst.stage_warmup_s[task_stage] * 1000).astype(np.int64) if delays else np.zeros(T, np.int64)
        horizon += (D + int(warm.max(initial=0))) * T if delays else 0
        m = cp_model.CpModel()
        st, en, iv, size = [], [], [], []
        fresh = [m.NewBoolVar(f"f{k}") for k in range(T)] if delays else None
        for k in range(T):
            lo = int(arr[task_job[k]])
            s = m.NewIntVar(lo, horizon, f"s{k}")
            e = m.NewIntVar(lo + int(dur[k]), horizon, f"e{k}")
            sz = int(dur[k]) + int(warm[k]) * fresh[k] if delays else int(dur[k])
            if delays:
                m.Add(s >= lo + D * fresh[k])  # a fresh executor moves only once the job has arrived
            iv.append(m.NewIntervalVar(s, sz, e, f"i{k}"))
            st.append(s)
            en.append(e)
            size.append(sz)
        m.AddCumulative(iv, [1] * T, E)
        disjunctive = delays or (self.disjunctive if self.disjunctive is not None else E <= 8)
        x = arcs = None
        if disjunctive:  # executor assignment + no-overlap per executor: much stronger propagation for small E
            x = [[m.NewBoolVar(f"x{k}_{e}") for e in range(E)] for k in range(T)]
            for k in range(T):
                m.AddExactlyOne(x[k])
            m.Add(x[0][0] == 1)  # executors are interchangeable
            for e in range(E):
                m.AddNoOverlap([m.NewOptionalIntervalVar(st[k], size[k], en[k], x[k][e], f"o{k}_{e}")
                                for k in range(T)])
        if delays:
            arcs, incoming_fresh = self._circuits(m, inst, T, E, D, task_job, task_stage, st, en, x)
            for k in range(T):
                m.Add(fresh[k] == sum(incoming_fresh[k]))
        stage_end = []
        for s_ in range(S):
            lo, hi = int(inst.stage_task_ptr[s_]), int(inst.stage_task_ptr[s_ + 1])
            v = m.NewIntVar(0, horizon, f"se{s_}")
            for k in range(lo, hi):
                m.Add(v >= en[k])
            stage_end.append(v)
        for a, b in inst.edges.tolist():
            for k in range(int(inst.stage_task_ptr[b]), int(inst.stage_task_ptr[b + 1])):
                m.Add(st[k] >= stage_end[a])
        comp = []
        for j in range(J):
            c = m.NewIntVar(int(arr[j]), horizon, f"c{j}")
            for s_ in inst.job_stages(j):
                if not inst.stage_children[s_]:
                    m.Add(c >= stage_end[s_])
            comp.append(c)
        if self.objective == "mean":
            iw, denom = np.ones(J, np.int64), float(J)  # objective (ms) = sum iw*(c-a) / denom
        else:
            counts = np.bincount(inst.job_user, minlength=inst.num_users)
            lcm = int(np.lcm.reduce(counts[counts > 0]))
            iw = (lcm // counts[inst.job_user]).astype(np.int64)
            denom = float(lcm * int((counts > 0).sum()))
        lb_fast = float(np.sum(fast_machine_bound(inst) - inst.job_arrival))  # seconds, sum of responses
        if self.objective == "mean":
            m.Add(sum(comp[j] - int(arr[j]) for j in range(J)) >= int(np.floor(lb_fast * 1000 - 1e-6)))
        m.Minimize(sum(int(iw[j]) * (comp[j] - int(arr[j])) for j in range(J)))
        if self.hint:  # warm start: the best policy schedule (on the delay-free instance when delays are relaxed)
            target = inst if delays or not inst.charges_moves else dataclasses.replace(
                inst, moving_delay_s=0.0, stage_warmup_s=np.zeros(S), setting=None)
            best = None
            for pol in (Fifo(), Srpt(), DecimaCap(), Uwfq()):
                sim = run_policy(target, pol, seed=seed)
                val = float(np.dot(iw, np.asarray(sim.job_finish) - inst.job_arrival))
                if best is None or val < best[0]:
                    best = (val, sim)
            self._hint(m, best[1], T, E, st, x, arcs, fresh, task_job)
        solver = cp_model.CpSolver()
        solver.parameters.linearization_level = int(self.linearization_level)
        set_limits(solver, time_limit=time_limit, workers=self.workers, seed=seed, deterministic=self.deterministic)
        code = solver.Solve(m)
        wall = time.perf_counter() - t0
        stats = {"branches": solver.NumBranches(), "conflicts": solver.NumConflicts(), "num_tasks": T,
                 "cp_status": solver.StatusName(code), "objective_kind": self.objective,
                 "model": "exact" if delays or not inst.charges_moves else "relaxation (delays left out)",
                 **limit_stats(solver, time_limit=time_limit, wall_s=solver.wall_time,
                               deterministic=self.deterministic)}
        if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            status = "infeasible" if code == cp_model.INFEASIBLE else "timeout"
            return Solution(None, float("inf"), status, wall, stats=stats)
        bound_val = solver.BestObjectiveBound() / denom / 1000.0
        s_ms = np.array([solver.Value(v) for v in st], np.int64)
        e_ms = s_ms + dur
        exact = delays or not inst.charges_moves
        if delays:
            e_ms = np.array([solver.Value(v) for v in en], np.int64)
        if exact:
            ex = (np.array([next(e for e, v in enumerate(row) if solver.Value(v)) for row in x]) if x is not None
                  else decode_executors(s_ms, e_ms, inst.num_executors))
            decisions = {"task_executor": ex.tolist(), "task_start": (s_ms / 1000.0).tolist(),
                         "task_end": (e_ms / 1000.0).tolist()}
        else:
            plan = np.minimum.reduceat(s_ms, inst.stage_task_ptr[:-1]).astype(float)
            sim = run_policy(inst, _PlanPolicy(plan), seed=seed)
            decisions = sim.schedule()
        metrics = evaluate(inst, decisions)
        obj = metrics["mean_response_s"]  # the family's objective, whichever one the model minimised
        status = "optimal" if (exact and code == cp_model.OPTIMAL) else ("feasible" if code == cp_model.OPTIMAL
                                                                         else "timeout")
        stats.update(relaxation_objective_s=solver.ObjectiveValue() / denom / 1000.0, exact_model=exact,
                     fast_machine_bound_s=lb_fast / J,
                     model_bound_s=float(bound_val),
                     user_mean_response_of_means_s=metrics["user_mean_response_of_means_s"])
        bound = float(bound_val) if self.objective == "mean" else None
        if delays:
            stats["moves"] = int(sum(solver.Value(f) for f in fresh))
        if self.objective != "mean" and status == "optimal":
            status = "feasible"  # optimal for the user-weighted objective, not for the ranked mean
        return Solution(decisions, float(obj), status, time.perf_counter() - t0, bound=bound, stats=stats)

    @staticmethod
    def _circuits(m, inst, T, E, D, task_job, task_stage, st, en, x):
        """Each executor's tasks in sequence (module doc): arc literals, and per task the literals that make it
        fresh (its predecessor is the depot or a task of another job)."""
        ancestors = _stage_ancestors(inst)
        arcs = []
        incoming_fresh: list[list] = [[] for _ in range(T)]
        for e in range(E):
            lits = {(-1, -1): m.NewBoolVar(f"empty{e}")}  # (previous, next); -1 is the depot
            arc_list = [(0, 0, lits[(-1, -1)])]
            for k in range(T):
                arc_list.append((k + 1, k + 1, x[k][e].Not()))
                lits[(-1, k)] = m.NewBoolVar(f"first{k}_{e}")
                lits[(k, -1)] = m.NewBoolVar(f"last{k}_{e}")
                arc_list.append((0, k + 1, lits[(-1, k)]))
                arc_list.append((k + 1, 0, lits[(k, -1)]))
                incoming_fresh[k].append(lits[(-1, k)])
            for k in range(T):
                for j in range(T):
                    if k == j or int(task_stage[j]) in ancestors[int(task_stage[k])]:
                        continue  # j's stage precedes k's: j cannot follow k
                    lit = m.NewBoolVar(f"a{k}_{j}_{e}")
                    arc_list.append((k + 1, j + 1, lit))
                    lits[(k, j)] = lit
                    move = D if task_job[k] != task_job[j] else 0
                    m.Add(st[j] >= en[k] + move).OnlyEnforceIf(lit)
                    if task_job[k] != task_job[j]:
                        incoming_fresh[j].append(lit)
            m.AddCircuit(arc_list)
            arcs.append(lits)
        return arcs, incoming_fresh

    @staticmethod
    def _hint(m, sim, T, E, st, x, arcs, fresh, task_job):
        """A complete warm start from a policy's executed schedule (executors relabelled so task 0 is on 0)."""
        start = np.rint(np.asarray(sim.task_start) * 1000).astype(np.int64)
        ex = np.asarray(sim.task_exec, np.int64)
        if x is not None:
            relabel = {int(ex[0]): 0, 0: int(ex[0])}
            ex = np.array([relabel.get(int(e), int(e)) for e in ex])
        for k in range(T):
            m.AddHint(st[k], int(start[k]))
        if x is None:
            return
        for k in range(T):
            for e in range(E):
                m.AddHint(x[k][e], int(ex[k] == e))
        if arcs is None:
            return
        for e in range(E):
            seq = sorted((k for k in range(T) if ex[k] == e), key=lambda k: (start[k], k))
            chosen = set(zip([-1, *seq], [*seq, -1])) if seq else {(-1, -1)}
            for key, lit in arcs[e].items():
                m.AddHint(lit, int(key in chosen))
        for k in range(T):
            e = int(ex[k])
            seq = sorted((j for j in range(T) if ex[j] == e), key=lambda j: (start[j], j))
            i = seq.index(k)
            m.AddHint(fresh[k], int(i == 0 or task_job[seq[i - 1]] != task_job[k]))


def _stage_ancestors(inst: JobInstance) -> list[set[int]]:
    """For each stage, the stages that must finish before it starts (transitive parents)."""
    anc: list[set[int]] = [set() for _ in range(inst.num_stages)]
    for s in topological_order(inst):
        for p in inst.stage_parents[s]:
            anc[s] |= anc[p] | {p}
    return anc
