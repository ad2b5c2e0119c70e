"""`job_sched.cpsat`: the clairvoyant bound. Knowing every arrival and task duration in advance, an OR-Tools
CP-SAT model schedules all tasks (integer milliseconds) on the executors, minimising the mean response time
(or, with `objective="user_mean"`, the mean over users of each user's mean response time).

Model: one interval per task of its warm duration, starting no earlier than its job's arrival; a cumulative
constraint of capacity `num_executors` (and, for up to 8 executors or `disjunctive=True`, an executor
assignment with a no-overlap constraint per executor, which propagates much better); a task starts after every
task of its parent stages ends; a job completes after each of its tasks; the total response time is at least
that of preemptive SRPT on one machine `num_executors` times faster (a cut that lifts the proven bound).
Moving delays and warm-ups are left out, so the model is a relaxation: its proven bound is a lower bound on the
mean response time of every policy (the learned one included) on the real instance. When the instance has no
moving delay and no warm-up the model is exact: the schedule is decoded onto executors and is optimal when
CP-SAT proves it. Otherwise the plan is replayed in the simulator (stages by planned start), which pays the
delays, and the status is "feasible".

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
from sysgym.envs.job_sched.instance import JobInstance
from sysgym.envs.job_sched.simulator import run_policy
from sysgym.errors import InvalidInstanceError
from sysgym.solution import Solution
from sysgym.solver import Solver, register
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
                 linearization_level: int = 1, disjunctive: bool | None = None):
        super().__init__(workers=workers, objective=objective, max_tasks=max_tasks, hint=hint,
                         linearization_level=linearization_level, disjunctive=disjunctive)
        self.disjunctive = disjunctive
        self.hint, self.linearization_level = hint, linearization_level
        if objective not in ("mean", "user_mean"):
            raise ValueError(f"objective must be 'mean' or 'user_mean', got {objective!r}")
        self.workers, self.objective, self.max_tasks = workers, objective, max_tasks

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
        m = cp_model.CpModel()
        st, en, iv = [], [], []
        for k in range(T):
            lo = int(arr[task_job[k]])
            s = m.NewIntVar(lo, horizon, f"s{k}")
            e = m.NewIntVar(lo + int(dur[k]), horizon, f"e{k}")
            iv.append(m.NewIntervalVar(s, int(dur[k]), e, f"i{k}"))
            st.append(s)
            en.append(e)
        m.AddCumulative(iv, [1] * T, int(inst.num_executors))
        disjunctive = self.disjunctive if self.disjunctive is not None else inst.num_executors <= 8
        x = None
        if disjunctive:  # executor assignment + no-overlap per executor: much stronger propagation for small E
            E = int(inst.num_executors)
            x = [[m.NewBoolVar(f"x{k}_{e}") for e in range(E)] for k in range(T)]
            for k in range(T):
                m.AddExactlyOne(x[k])
            m.Add(x[0][0] == 1)  # executors are interchangeable
            for e in range(E):
                m.AddNoOverlap([m.NewOptionalIntervalVar(st[k], int(dur[k]), en[k], x[k][e], f"o{k}_{e}")
                                for k in range(T)])
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
        if self.hint:  # warm start: the best policy schedule on the delay-free (relaxed) instance
            relaxed = dataclasses.replace(inst, moving_delay_s=0.0, stage_warmup_s=np.zeros(S))
            best = None
            for pol in (Fifo(), Srpt(), DecimaCap(), Uwfq()):
                sim = run_policy(relaxed, pol, seed=seed)
                val = float(np.dot(iw, np.asarray(sim.job_finish) - inst.job_arrival))
                if best is None or val < best[0]:
                    best = (val, np.rint(np.asarray(sim.task_start) * 1000).astype(np.int64))
            for k in range(T):
                m.AddHint(st[k], int(best[1][k]))
        solver = cp_model.CpSolver()
        solver.parameters.linearization_level = int(self.linearization_level)
        solver.parameters.num_workers = int(self.workers)
        solver.parameters.random_seed = int(seed)
        if time_limit is not None:
            solver.parameters.max_time_in_seconds = float(time_limit)
        code = solver.Solve(m)
        wall = time.perf_counter() - t0
        stats = {"branches": solver.NumBranches(), "conflicts": solver.NumConflicts(), "num_tasks": T,
                 "cp_status": solver.StatusName(code), "objective_kind": self.objective}
        if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            status = "infeasible" if code == cp_model.INFEASIBLE else "timeout"
            return Solution(None, float("inf"), status, wall, stats=stats)
        bound_val = solver.BestObjectiveBound() / denom / 1000.0
        s_ms = np.array([solver.Value(v) for v in st], np.int64)
        e_ms = s_ms + dur
        exact = inst.moving_delay_s == 0 and not (inst.stage_warmup_s > 0).any()
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
        if self.objective != "mean" and status == "optimal":
            status = "feasible"  # optimal for the user-weighted objective, not for the ranked mean
        return Solution(decisions, float(obj), status, time.perf_counter() - t0, bound=bound, stats=stats)
