"""Scheduling policies for the simulator. Each has `name`, `reset(sim, seed)` and `pick(sim) -> (stage, count)`
(or None to leave the free executors idle until the next event).

* `fifo`: Spark FIFO: the earliest job's lowest stage gets every free executor it can use.
* `fair`: Spark FAIR (`FairSchedulingAlgorithm`), one pool per job (job-level fairness, Spark's behaviour when
  each job is a schedulable): needy pools (running < minShare) first by running / minShare, then by
  running / weight; one executor per decision. `min_share` / `weight` are per user (a job inherits its user's).
* `user_fair`: the same comparator with one pool per user and FAIR between the user's jobs inside the pool.
* `cfq`: stage-level fair queuing: the runnable stage with the fewest running tasks.
* `decima_cap`: Decima's fair-cap heuristic (Mao et al. SIGCOMM'19, the "dynamic partition" baseline): jobs in
  FIFO order, each at most ceil(executors / unfinished jobs) executors; executors beyond the caps idle.
* `srpt`: shortest remaining (unlaunched) work first, from runtime estimates.
* `random`: a uniformly random runnable stage, one executor per decision.
* `uwfq`: User Weighted Fair Queuing (arXiv 2510.15485), a virtual fair-queuing system at user level: each active
  user is served at executors x w_u / (sum of active users' weights); a job arriving for user u at t gets the
  virtual deadline F = max(t, F_u) + R, R = max(critical path, estimated work / the user's share) (a bounded
  fairness model: a job cannot go faster than its DAG allows), so a user's deadlines chain (start + running
  sum of estimated job runtimes): a user who submits many jobs pushes its own later jobs back, not the other
  users'. Runnable stages run earliest-deadline-first. `runtime_partition_s=0.5` adds UWFQ's runtime
  partitioning (tasks split to about 0.5 s of expected runtime).

Runtime estimates (srpt, uwfq): perfect (`estimate_error=0`) or noisy: each job's work is multiplied by
exp(N(0, estimate_error)), drawn once per job from the run's seed (a stated log-normal error).
"""
from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from sysgym.errors import UnknownNameError


class Policy:
    name = "base"
    runtime_partition_s: float | None = None

    def reset(self, sim, seed: int = 0) -> None:
        self.rng = np.random.default_rng([int(seed), 0x504F4C])  # "POL"

    def pick(self, sim):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<policy {self.name}>"


class _StaticPriority:
    """For priorities fixed once a stage is runnable (FIFO, UWFQ deadlines): a heap fed from the simulator's
    append-only `ready_log`, with lazy deletion of stages no longer runnable. O(log n) per decision."""

    def _heap_reset(self):
        self._heap: list = []
        self._seen = 0

    def _heap_pick(self, sim):
        log, heap = sim.ready_log, self._heap
        while self._seen < len(log):
            s = log[self._seen]
            heapq.heappush(heap, (self.key(sim, s), s))
            self._seen += 1
        ready = sim.ready
        while heap[0][1] not in ready:
            heapq.heappop(heap)
        return heap[0][1]


class Fifo(Policy, _StaticPriority):
    name = "fifo"

    def reset(self, sim, seed=0):
        super().reset(sim, seed)
        self._heap_reset()

    @staticmethod
    def key(sim, s):
        j = sim.stage_job[s]
        return (sim.arrival[j], j)

    def pick(self, sim):
        return self._heap_pick(sim), sim.free_count


class _Weights:
    def _setup_weights(self, sim, min_share, weight):
        U = sim.inst.num_users

        def per_user(v, default):
            if v is None:
                return [default] * U
            if isinstance(v, Mapping):
                return [float(v.get(str(u), v.get(u, default))) for u in range(U)]
            if isinstance(v, (int, float)):
                return [float(v)] * U
            if len(v) != U:
                raise ValueError(f"need one value per user ({U}), got {len(v)}")
            return [float(x) for x in v]

        self.min_share = per_user(min_share, 0.0)
        self.weight = per_user(weight, 1.0)
        if min(self.weight) <= 0:
            raise ValueError("FAIR pool weights must be > 0")


class Fair(Policy, _Weights):
    """Spark's FairSchedulingAlgorithm comparator over per-job pools."""

    name = "fair"

    def __init__(self, min_share=None, weight=None):
        self._ms, self._w = min_share, weight

    def reset(self, sim, seed=0):
        super().reset(sim, seed)
        self._setup_weights(sim, self._ms, self._w)

    def pick(self, sim):
        jr, sj, ju, arr = sim.job_running, sim.stage_job, sim.job_user, sim.arrival
        ms, w = self.min_share, self.weight
        best, best_key = None, None
        for s in sim.ready:
            j = sj[s]
            u = ju[j]
            r = jr[j]
            needy = r < ms[u]
            key = (not needy, r / max(ms[u], 1.0) if needy else r / w[u], arr[j], j, s)
            if best_key is None or key < best_key:
                best, best_key = s, key
        return best, 1


class UserFair(Policy, _Weights):
    """Spark FAIR with one pool per user (minShare, weight per user), FAIR among the user's jobs."""

    name = "user_fair"

    def __init__(self, min_share=None, weight=None):
        self._ms, self._w = min_share, weight

    def reset(self, sim, seed=0):
        super().reset(sim, seed)
        self._setup_weights(sim, self._ms, self._w)

    def pick(self, sim):
        jr, ur, sj, ju, arr = sim.job_running, sim.user_running, sim.stage_job, sim.job_user, sim.arrival
        ms, w = self.min_share, self.weight
        best, best_key = None, None
        for s in sim.ready:
            j = sj[s]
            u = ju[j]
            r = ur[u]
            needy = r < ms[u]
            key = (not needy, r / max(ms[u], 1.0) if needy else r / w[u], u, jr[j], arr[j], j, s)
            if best_key is None or key < best_key:
                best, best_key = s, key
        return best, 1


class Cfq(Policy):
    name = "cfq"

    def pick(self, sim):
        run, sj, arr = sim.running, sim.stage_job, sim.arrival
        s = min(sim.ready, key=lambda s: (run[s], arr[sj[s]], s))
        return s, 1


class DecimaCap(Policy):
    name = "decima_cap"

    def pick(self, sim):
        cap = math.ceil(sim.E / max(len(sim.active_jobs), 1))
        jr, sj, arr = sim.job_running, sim.stage_job, sim.arrival
        best, best_key = None, None
        for s in sim.ready:
            j = sj[s]
            if jr[j] >= cap:
                continue
            key = (arr[j], j, s)
            if best_key is None or key < best_key:
                best, best_key = s, key
        if best is None:
            return None
        return best, cap - jr[sj[best]]


class _Estimates:
    def _setup_estimates(self, sim, estimate_error):
        J = sim.inst.num_jobs
        if estimate_error < 0:
            raise ValueError(f"estimate_error must be >= 0, got {estimate_error}")
        rng = np.random.default_rng([int(self._seed), 0x455354])  # "EST"
        self.factor = np.exp(rng.normal(0.0, estimate_error, J)).tolist() if estimate_error > 0 else [1.0] * J


class Srpt(Policy, _Estimates):
    name = "srpt"

    def __init__(self, estimate_error: float = 0.0):
        self.estimate_error = float(estimate_error)

    def reset(self, sim, seed=0):
        super().reset(sim, seed)
        self._seed = seed
        self._setup_estimates(sim, self.estimate_error)

    def pick(self, sim):
        rem, sj, f = sim.job_unlaunched_work, sim.stage_job, self.factor
        s = min(sim.ready, key=lambda s: (rem[sj[s]] * f[sj[s]], sj[s], s))
        return s, sim.free_count


class RandomPolicy(Policy):
    name = "random"

    def pick(self, sim):
        ready = list(sim.ready)
        return ready[int(self.rng.integers(len(ready)))], 1


class Uwfq(Policy, _Estimates, _StaticPriority):
    name = "uwfq"

    def __init__(self, estimate_error: float = 0.0, runtime_partition_s: float | None = None,
                 user_weight=None):
        self.estimate_error = float(estimate_error)
        self.runtime_partition_s = runtime_partition_s
        self._uw = user_weight

    def reset(self, sim, seed=0):
        super().reset(sim, seed)
        self._seed = seed
        self._setup_estimates(sim, self.estimate_error)
        U = sim.inst.num_users
        self.w = [1.0] * U if self._uw is None else [float(x) for x in self._uw]
        if len(self.w) != U or min(self.w) <= 0:
            raise ValueError(f"user_weight needs {U} positive values")
        self.F_user = [0.0] * U  # last virtual deadline of each user
        self.deadline = [math.inf] * sim.inst.num_jobs
        f = np.asarray(self.factor)
        self.work = (sim.inst.job_work_s() * f).tolist()
        self.cpath = (sim.inst.job_critical_path_s() * f).tolist()
        self.E = sim.E
        self._heap_reset()

    def key(self, sim, s):
        j = sim.stage_job[s]
        return (self.deadline[j], j)

    def on_arrival(self, sim, j):
        """Job j's virtual deadline: its user's chain, plus its runtime at the user's fair share (bounded below by
        its critical path: a job cannot use more executors than its DAG allows)."""
        u = sim.job_user[j]
        active = [v for v in range(len(self.w)) if sim.user_in_system[v] > 0 or v == u]
        share = self.E * self.w[u] / sum(self.w[v] for v in active)
        runtime = max(self.cpath[j], self.work[j] / share)
        start = max(sim.now, self.F_user[u])
        self.deadline[j] = start + runtime
        self.F_user[u] = self.deadline[j]

    def on_job_done(self, sim, j):
        pass

    def pick(self, sim):
        return self._heap_pick(sim), sim.free_count


POLICIES: dict[str, type[Policy]] = {c.name: c for c in (Fifo, Fair, UserFair, Cfq, DecimaCap, Srpt, RandomPolicy,
                                                         Uwfq)}


def make_policy(name: str, **options: Any) -> Policy:
    """A policy by registry name (`fifo`, `fair`, `user_fair`, `cfq`, `decima_cap`, `srpt`, `random`, `uwfq`);
    the `job_sched.` prefix is accepted."""
    key = name.removeprefix("job_sched.")
    if key not in POLICIES:
        raise UnknownNameError("job_sched policy", name, POLICIES)
    return POLICIES[key](**options)
