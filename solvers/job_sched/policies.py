"""The job-scheduling policies. Each named policy is one class: the registered solver `job_sched.<name>` and
the policy object the simulator and the env drive (`sysgym.envs.job_sched.simulator.SchedulingPolicy`:
`reset(sim, seed)`, `pick(sim) -> (stage, count) | None`, `runtime_partition_s`).

`solve(instance)` simulates the policy and returns the executed schedule (task executor/start/end), which
`sysgym.envs.job_sched.evaluate` re-checks and scores; `policy()` gives a fresh policy object with the solver's
options; `PolicyAgent` drives one through the env's steps (`act(observation) -> action`).

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
  user is served at executors x w_u / (sum of active users' weights); a job's virtual runtime is R = max(critical
  path, estimated work / the user's share) (a bounded fairness model: a job cannot go faster than its DAG
  allows), and each user's virtual server runs the user's own jobs one at a time, so a user's deadlines chain: a
  user who submits many jobs pushes its own later jobs back, not the other users'. Runnable stages run
  earliest-deadline-first. `runtime_partition_s=0.5` adds UWFQ's runtime partitioning (tasks split to about 0.5 s
  of expected runtime). `user_order` is the order of a user's jobs in its virtual queue: "arrival" (the earlier
  default: a job arriving for user u at t gets F = max(t, F_u) + R) or "srpt" (default: shortest remaining
  virtual runtime first, so a heavy user's small job no longer waits in virtual time behind the same user's
  larger one; the user's virtual service, hence every other user's deadlines, is unchanged). Measured on
  `multiuser` held-out seeds 5-34 (not the bench's 0-4), srpt against arrival: shared_app uwfq+part small-job
  mean 7.73 -> 7.32 s and mean response 20.13 -> 17.93 s (uwfq 10.97 -> 10.79 s, 24.18 -> 22.22 s); multi_app
  small-job mean unchanged (21.86 -> 21.84 s) and mean response 43.69 -> 42.83 s; `decima` (one user, 20 jobs,
  seeds 1000-1004) mean response 67.22 -> 63.47 s (66.55 s with the three earlier settings; FAIR 65.81 s).

Moving costs (`fair`, `user_fair`, `uwfq`; option `move_aware`). In the `multi_app` setting (Decima's executor
model: an executor that changes job waits the moving delay and pays the stage's warm-up on its first task) a policy
that sends each freed executor to the job it ranks first moves executors between jobs for every few tasks: on
`multiuser` with Decima's 2 s delay, UWFQ moved executors 26,718 times for 98,755 tasks, 76 % of them into a stage
whose own executors would drain it before the mover could start, and its mean response went from 18 s to 401 s.
Move-aware, these three policies follow Decima (`spark_env/env.py`, `assign_executor`: an executor keeps working
on its job while the job has runnable work) and Spark's executors staying with their application:
* an executor that frees keeps serving its own job's runnable stages (no move);
* an executor whose job has no runnable work (or a fresh one) moves only to a job that holds fewer executors than
  its fair share (FAIR: the pool's weighted share of the executors; user_fair and UWFQ: the two-level share, the
  user's weighted share split among its active jobs, UWFQ's bounded fairness model), best-ranked first, and only
  when the move pays: the job's unlaunched runnable work per executor it holds exceeds the move's cost (moving
  delay + the stage's warm-up), i.e. work is left when the mover arrives; otherwise it stays idle in its job;
* an executor leaves a job that still has runnable work only when a priority difference pays for the move: the
  source holds more than its share, the target less, and the target ranks ahead by more than the move costs
  (UWFQ: its virtual deadline is earlier by more than `move_margin` x (moving delay + warm-up); FAIR and
  user_fair: the target still ranks ahead after the move);
* UWFQ only (the earlier behaviour: `user_share_moves=False, below_share_margin=None`): with `user_share_moves`
  (default True) an executor also leaves a job above its share for another user's job below its share whenever
  the source's user holds more than its user share and the target's user less (it restores the user-level share
  UWFQ's fairness model promises, whatever the deadlines); with `below_share_margin` (default 20) a job at or
  below its share gives an executor to a job whose virtual deadline is earlier by more than below_share_margin x
  (moving delay + warm-up) (about 40 s on TPC-H: a small job's whole runtime at its share, so only for the
  priority inversions EDF exists to remove). Why: the two-level caps split a user's share evenly among its jobs
  while the deadlines chain within the user, so in a heavy user's burst its earliest job stopped at its cap,
  its later jobs ranked behind a light user's large job that kept its whole user share, and the heavy user got
  less than its share (on `multiuser` seed 30 two light users held 35-41 of the 50 executors against a share of
  25). Moves still only go to strictly earlier deadlines or towards the user shares, so none goes back and forth.
  Measured on `multiuser` multi_app held-out seeds (small-job mean, arrival order; FAIR 26.01 s on 5-14, 22.04 s
  on 15-34): before 25.79 / 23.53 s; user_share_moves 24.43 / 22.59 s; below_share_margin=20 alone 23.24 / 22.22
  s; both 22.62 / 21.48 s (margins 10, 30, 40 on 15-34: 21.54, 21.46, 21.51 s; 80: 21.85 s), mean response within
  5 % of FAIR's. Then, once, on fresh seeds 35-54 with every default (srpt too): FAIR 23.73 s, the earlier UWFQ
  23.59 s, UWFQ 20.98 s (mean response 46.06, 45.94, 45.55 s);
* `max_moves_per_event` bounds how many executors change job per simulator event (None: no bound).
`move_aware=None` (default) switches this on exactly when the instance charges for moves (`multi_app`; a moving
delay or a warm-up > 0) and off in `shared_app`, where every policy's behaviour is today's; `move_aware=False`
gives today's behaviour in both settings.

Runtime estimates (srpt, uwfq): perfect (`estimate_error=0`) or noisy: each job's work is multiplied by
exp(N(0, estimate_error)), drawn once per job from the run's seed (a stated log-normal error).
"""
from __future__ import annotations

import heapq
import math
import time
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from sysgym.envs.job_sched.simulator import Simulator, simulate
from sysgym.errors import InvalidArgumentError
from sysgym.solution import Solution
from sysgym.solver import Solver, register


class PolicySolver(Solver):
    """A scheduling policy that is also its registered solver (see the module doc)."""

    family = "job_sched"
    kind = "heuristic"
    runtime_partition_s: float | None = None

    def policy(self) -> PolicySolver:
        """A fresh policy object with this solver's options, for the simulator or a `PolicyAgent`."""
        return type(self)(**self.config)

    def reset(self, sim: Simulator, seed: int = 0) -> None:
        self.rng = np.random.default_rng([int(seed), 0x504F4C])  # "POL"

    def pick(self, sim: Simulator) -> tuple[int, int] | None:  # pragma: no cover - every policy defines it
        raise NotImplementedError

    def solve(self, instance, *, time_limit=None, seed=0) -> Solution:
        t0 = time.perf_counter()
        res = simulate(instance, self.policy(), seed=seed)
        m = res.metrics
        stats = {"events": res.events, "events_per_s": res.events_per_s, "sim_wall_s": res.wall_time_s,
                 "small_job_mean_response_s": m["small_job_mean_response_s"], "p95_response_s": m["p95_response_s"],
                 "user_slowdown_ratio": m["user_slowdown_ratio"]}
        return Solution(res.schedule, m["mean_response_s"], "feasible", time.perf_counter() - t0, stats=stats)


class _StaticPriority:
    """For priorities fixed once a stage is runnable (FIFO, UWFQ deadlines): a heap fed from the simulator's
    append-only `ready_log`, with lazy deletion of stages no longer runnable. O(log n) per decision."""

    _rekey = False  # True: a stage's key may grow after it was pushed; re-checked (and re-pushed) at the top

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
        while True:
            while heap[0][1] not in ready:
                heapq.heappop(heap)
            if not self._rekey:
                return heap[0][1]
            key, s = heap[0]
            cur = self.key(sim, s)
            if cur == key:
                return s
            heapq.heapreplace(heap, (cur, s))  # a key that grew since it was pushed (keys never shrink)


class _MovingCosts:
    """Moving-cost awareness for fair, user_fair and uwfq (module doc). A subclass gives `_job_key(sim, j)` (its
    ranking of jobs, smaller first), `_share_caps(sim)` ({job: fair share of executors}) and `_pays(sim, src, dst,
    stage)` (the priority difference pays for moving an executor from job src, which has runnable work, to
    stage of job dst); `_move_pick` is then its `pick` when move-aware."""

    @staticmethod
    def _check_move_options(move_aware, max_moves_per_event) -> None:
        if move_aware not in (None, True, False):
            raise InvalidArgumentError(f"move_aware must be true, false or null (auto), got {move_aware!r}")
        if max_moves_per_event is not None and (isinstance(max_moves_per_event, bool) or
                                                not isinstance(max_moves_per_event, int) or max_moves_per_event < 1):
            raise InvalidArgumentError(f"max_moves_per_event must be a positive integer or null, got "
                                       f"{max_moves_per_event!r}")

    def _moves_reset(self, sim) -> None:
        aware = self.move_aware
        self.moves_on = sim.inst.effective_setting == "multi_app" if aware is None else bool(aware)
        if self.moves_on:
            self._cum = np.concatenate([[0.0], np.cumsum(sim.dur)]).tolist()  # unlaunched work in O(1)
            self._event, self._moved = -1, 0

    _yields_below_share = False  # whether a job at or below its share may give an executor up (`_pays` decides)

    def _move_cost(self, sim, s) -> float:
        return sim.delay + sim.warm[s]

    def _move_pick(self, sim):
        if sim.events != self._event:  # a new event: a new budget of moves
            self._event, self._moved = sim.events, 0
        cum, sj, nt, et = self._cum, sim.stage_job, sim.next_task, sim.end_task
        best: dict[int, int] = {}  # job -> its runnable stage to serve (lowest index)
        work: dict[int, float] = {}  # job -> unlaunched work of its runnable stages
        for s in sim.ready:
            j = sj[s]
            if j not in best or s < best[j]:
                best[j] = s
            work[j] = work.get(j, 0.0) + cum[et[s]] - cum[nt[s]]
        caps = self._share_caps(sim)
        jr = sim.job_running
        under = sorted((j for j in best if jr[j] < caps[j]), key=lambda j: self._job_key(sim, j))
        budget = self.max_moves_per_event is None or self._moved < self.max_moves_per_event
        free = sim.free_by_job

        def worth(j):  # work is left for a mover when it arrives
            return jr[j] == 0 or work[j] / jr[j] > self._move_cost(sim, best[j])

        for pool, idle in free.items():
            if not idle:
                continue
            if pool in best:  # the pool's job has runnable work: stay, unless a priority difference pays
                over = jr[pool] > caps[pool]
                if budget and (over or self._yields_below_share):
                    for t in under:
                        if t != pool and worth(t) and self._pays(sim, pool, t, best[t], over):
                            self._moved += 0 if free.get(t) else 1  # the simulator takes t's own executors first
                            return best[t], 1
                return best[pool], len(idle)
            if budget:  # surplus (or fresh) executors: to the best-ranked job below its share, where it pays
                for t in under:
                    if worth(t):
                        n = min(len(idle), caps[t] - jr[t])
                        if self.max_moves_per_event is not None:
                            n = min(n, self.max_moves_per_event - self._moved)
                        self._moved += max(0, n - len(free.get(t) or ()))
                        return best[t], n
        return None  # the free executors stay where they are until the next event


def _weights(v, U: int, default: float, what: str) -> list[float]:
    """A per-user option: None (default), one number, a list with one value per user, or {user: value}."""
    if v is None:
        return [default] * U
    if isinstance(v, Mapping):
        return [float(v.get(str(u), v.get(u, default))) for u in range(U)]
    if isinstance(v, (int, float)):
        return [float(v)] * U
    if len(v) != U:
        raise InvalidArgumentError(f"{what} needs one value per user ({U}), got {len(v)}")
    return [float(x) for x in v]


def _two_level_caps(sim, w) -> dict[int, int]:
    """UWFQ's bounded fairness model (arXiv 2510.15485): each active user gets E x w_u / (sum of active users'
    weights), split evenly among its active jobs; the cap is its ceiling (at least 1 executor per job)."""
    ua = sim.user_active_jobs
    tw = sum(w[u] for u in range(len(ua)) if ua[u] > 0)
    ju = sim.job_user
    return {j: math.ceil(sim.E * w[ju[j]] / tw / ua[ju[j]] - 1e-9) for j in sim.active_jobs}


class _FairPools(PolicySolver, _MovingCosts):
    """Spark FAIR's pool parameters, given per user (a job's pool inherits its user's): `min_share` and `weight`,
    each None (0 and 1), one number, a list with one value per user, or {user: value}; and the moving-cost
    options `move_aware` (None: auto, on in `multi_app`) and `max_moves_per_event` (module doc)."""

    def __init__(self, min_share=None, weight=None, move_aware: bool | None = None,
                 max_moves_per_event: int | None = None):
        self._check_move_options(move_aware, max_moves_per_event)
        super().__init__(min_share=min_share, weight=weight, move_aware=move_aware,
                         max_moves_per_event=max_moves_per_event)
        self._ms, self._w = min_share, weight
        self.move_aware, self.max_moves_per_event = move_aware, max_moves_per_event

    def reset(self, sim, seed=0):
        super().reset(sim, seed)
        U = sim.inst.num_users
        self.min_share = _weights(self._ms, U, 0.0, "FAIR min_share")
        self.weight = _weights(self._w, U, 1.0, "FAIR weight")
        if min(self.weight) <= 0:
            raise InvalidArgumentError("FAIR pool weights must be > 0")
        self._moves_reset(sim)

    def _pool_key(self, u, r, delta=0):
        """Spark's FairSchedulingAlgorithm for a pool of user u running r (+delta) tasks: needy pools first."""
        r += delta
        ms = self.min_share[u]
        needy = r < ms
        return (not needy, r / max(ms, 1.0) if needy else r / self.weight[u])


class _Estimates:
    def _setup_estimates(self, sim, estimate_error):
        J = sim.inst.num_jobs
        if estimate_error < 0:
            raise ValueError(f"estimate_error must be >= 0, got {estimate_error}")
        rng = np.random.default_rng([int(self._seed), 0x455354])  # "EST"
        self.factor = np.exp(rng.normal(0.0, estimate_error, J)).tolist() if estimate_error > 0 else [1.0] * J


@register
class Fifo(PolicySolver, _StaticPriority):
    """Spark FIFO: the earliest job takes every free executor it can use."""

    name = "job_sched.fifo"
    kind = "baseline"

    def __init__(self):
        super().__init__()

    def reset(self, sim, seed=0):
        super().reset(sim, seed)
        self._heap_reset()

    @staticmethod
    def key(sim, s):
        j = sim.stage_job[s]
        return (sim.arrival[j], j)

    def pick(self, sim):
        return self._heap_pick(sim), sim.free_count


@register
class Fair(_FairPools):
    """Spark FAIR, one pool per job: needy pools (running < minShare) first, then running / weight."""

    name = "job_sched.fair"
    kind = "baseline"

    def pick(self, sim):
        if self.moves_on:
            return self._move_pick(sim)
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

    # moving costs (module doc): pools are jobs, each with its user's weight and minShare
    def _job_key(self, sim, j):
        return (*self._pool_key(sim.job_user[j], sim.job_running[j]), sim.arrival[j], j)

    def _share_caps(self, sim):
        w, ms, ju = self.weight, self.min_share, sim.job_user
        tw = sum(w[ju[j]] for j in sim.active_jobs)
        return {j: math.ceil(max(sim.E * w[ju[j]] / tw, ms[ju[j]]) - 1e-9) for j in sim.active_jobs}

    def _pays(self, sim, src, dst, stage, over=True):
        ju, jr = sim.job_user, sim.job_running
        return self._pool_key(ju[dst], jr[dst], +1) < self._pool_key(ju[src], jr[src], -1)


@register
class UserFair(_FairPools):
    """Spark FAIR with one pool per user (minShare and weight per user), FAIR among a user's jobs."""

    name = "job_sched.user_fair"

    def pick(self, sim):
        if self.moves_on:
            return self._move_pick(sim)
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

    # moving costs (module doc): pools are users; the share cap is the two-level share (user, then job)
    def _job_key(self, sim, j):
        u = sim.job_user[j]
        return (*self._pool_key(u, sim.user_running[u]), u, sim.job_running[j], sim.arrival[j], j)

    def _share_caps(self, sim):
        caps = _two_level_caps(sim, self.weight)
        ms, ju, ua = self.min_share, sim.job_user, sim.user_active_jobs
        return {j: max(c, math.ceil(ms[ju[j]] / ua[ju[j]] - 1e-9)) for j, c in caps.items()}

    def _pays(self, sim, src, dst, stage, over=True):
        us, ud, jr, ur = sim.job_user[src], sim.job_user[dst], sim.job_running, sim.user_running
        if us != ud:
            return self._pool_key(ud, ur[ud], +1) < self._pool_key(us, ur[us], -1)
        return jr[dst] + 1 < jr[src] - 1  # FAIR between the user's own jobs


@register
class Cfq(PolicySolver):
    """Stage-level fair queuing: the runnable stage with the fewest running tasks."""

    name = "job_sched.cfq"

    def __init__(self):
        super().__init__()

    def pick(self, sim):
        run, sj, arr = sim.running, sim.stage_job, sim.arrival
        s = min(sim.ready, key=lambda s: (run[s], arr[sj[s]], s))
        return s, 1


@register
class DecimaCap(PolicySolver):
    """Decima's fair-cap heuristic: FIFO jobs, each at most ceil(executors / unfinished jobs) executors."""

    name = "job_sched.decima_cap"

    def __init__(self):
        super().__init__()

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


@register
class Srpt(PolicySolver, _Estimates):
    """Shortest remaining (unlaunched) work first; `estimate_error` = sigma of a log-normal estimate error."""

    name = "job_sched.srpt"

    def __init__(self, estimate_error: float = 0.0):
        super().__init__(estimate_error=estimate_error)
        self.estimate_error = float(estimate_error)

    def reset(self, sim, seed=0):
        super().reset(sim, seed)
        self._seed = seed
        self._setup_estimates(sim, self.estimate_error)

    def pick(self, sim):
        rem, sj, f = sim.job_unlaunched_work, sim.stage_job, self.factor
        s = min(sim.ready, key=lambda s: (rem[sj[s]] * f[sj[s]], sj[s], s))
        return s, sim.free_count


@register
class RandomPolicy(PolicySolver):
    """A random runnable stage gets each free executor (a floor every method must beat)."""

    name = "job_sched.random"
    kind = "baseline"

    def __init__(self):
        super().__init__()

    def pick(self, sim):
        ready = list(sim.ready)
        return ready[int(self.rng.integers(len(ready)))], 1


@register
class Uwfq(PolicySolver, _Estimates, _StaticPriority, _MovingCosts):
    """UWFQ (arXiv 2510.15485): user-level virtual fair queuing, per-user virtual deadlines, EDF stages;
    `runtime_partition_s` (e.g. 0.5) adds runtime partitioning; `estimate_error` noisy runtime estimates;
    `user_order` the order of a user's own jobs in its virtual queue ("srpt" default, "arrival" the earlier
    chain); `move_aware`, `move_margin`, `max_moves_per_event`, `user_share_moves`, `below_share_margin` its
    handling of executor moving costs (module doc)."""

    name = "job_sched.uwfq"

    USER_ORDERS = ("arrival", "srpt")

    def __init__(self, estimate_error: float = 0.0, runtime_partition_s: float | None = None, user_weight=None,
                 move_aware: bool | None = None, move_margin: float = 1.0, max_moves_per_event: int | None = None,
                 user_order: str = "srpt", user_share_moves: bool = True, below_share_margin: float | None = 20.0):
        self._check_move_options(move_aware, max_moves_per_event)
        for what, v in (("move_margin", move_margin), ("below_share_margin", below_share_margin)):
            if what == "below_share_margin" and v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise InvalidArgumentError(f"{what} must be a number >= 0" +
                                           (" or null" if what == "below_share_margin" else "") + f", got {v!r}")
        if user_order not in self.USER_ORDERS:
            raise InvalidArgumentError(f"user_order must be one of {self.USER_ORDERS}, got {user_order!r}")
        if not isinstance(user_share_moves, bool):
            raise InvalidArgumentError(f"user_share_moves must be true or false, got {user_share_moves!r}")
        super().__init__(estimate_error=estimate_error, runtime_partition_s=runtime_partition_s,
                         user_weight=user_weight, move_aware=move_aware, move_margin=move_margin,
                         max_moves_per_event=max_moves_per_event, user_order=user_order,
                         user_share_moves=user_share_moves, below_share_margin=below_share_margin)
        self.estimate_error = float(estimate_error)
        self.runtime_partition_s = runtime_partition_s
        self._uw = user_weight
        self.move_aware, self.move_margin, self.max_moves_per_event = move_aware, float(move_margin), \
            max_moves_per_event
        self.user_order, self.user_share_moves = user_order, user_share_moves
        self.below_share_margin = None if below_share_margin is None else float(below_share_margin)
        self._yields_below_share = below_share_margin is not None

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
        # user_order="srpt": each user's virtual queue, [job, virtual runtime left] in virtual service order, and
        # the time it was last advanced to
        self._vq: list[list[list]] = [[] for _ in range(U)]
        self._vt = [0.0] * U
        self._heap_reset()
        self._rekey = self.user_order != "arrival"  # srpt: a queued job's deadline grows when a shorter one arrives
        self._moves_reset(sim)

    def key(self, sim, s):
        j = sim.stage_job[s]
        return (self.deadline[j], j)

    def on_arrival(self, sim, j):
        """Job j's virtual deadline. Its virtual runtime is its runtime at the user's fair share (bounded below by
        its critical path: a job cannot use more executors than its DAG allows); the user's virtual server runs
        the user's jobs one after another, in arrival order (`user_order="arrival"`: j's deadline is the user's
        last deadline, or now, plus j's runtime) or shortest remaining virtual runtime first ("srpt": j goes
        ahead of the user's queued jobs with more virtual runtime left, whose deadlines then grow by j's)."""
        u = sim.job_user[j]
        active = [v for v in range(len(self.w)) if sim.user_in_system[v] > 0 or v == u]
        share = self.E * self.w[u] / sum(self.w[v] for v in active)
        runtime = max(self.cpath[j], self.work[j] / share)
        if self.user_order == "arrival":
            start = max(sim.now, self.F_user[u])
            self.deadline[j] = start + runtime
            self.F_user[u] = self.deadline[j]
            return
        # srpt: the user's virtual server runs its queue shortest-remaining-first
        q, now = self._vq[u], sim.now
        left = now - self._vt[u]
        while q and left > 0:  # virtual service since the last arrival, in queue order
            step = min(left, q[0][1])
            q[0][1] -= step
            left -= step
            if q[0][1] <= 1e-12:
                q.pop(0)
        self._vt[u] = now
        i = 0
        while i < len(q) and q[i][1] <= runtime:  # ties keep arrival order
            i += 1
        q.insert(i, [j, runtime])
        t = now
        for k, (job, rem) in enumerate(q):
            t += rem
            if k >= i:  # jobs ahead of j keep their deadlines; j's and those behind it are recomputed
                self.deadline[job] = t
        self.F_user[u] = t

    def on_job_done(self, sim, j):
        pass

    def pick(self, sim):
        if self.moves_on:
            return self._move_pick(sim)
        return self._heap_pick(sim), sim.free_count

    # moving costs (module doc): EDF among jobs; the share cap is UWFQ's two-level share
    def _job_key(self, sim, j):
        return (self.deadline[j], j)

    def _share_caps(self, sim):
        return _two_level_caps(sim, self.w)

    def _pays(self, sim, src, dst, stage, over=True):
        gap = self.deadline[src] - self.deadline[dst]
        if not over:  # src at or below its share: only for a far earlier deadline (below_share_margin)
            return gap > self.below_share_margin * self._move_cost(sim, stage)
        if self.user_share_moves:  # user level: src's user keeps at least its share, dst's gets at most its share
            us, ud = sim.job_user[src], sim.job_user[dst]
            if us != ud:
                ua, w, ur = sim.user_active_jobs, self.w, sim.user_running
                tw = sum(w[v] for v in range(len(ua)) if ua[v] > 0)
                if ur[us] - 1 >= sim.E * w[us] / tw and ur[ud] + 1 <= sim.E * w[ud] / tw:
                    return True
        return gap > self.move_margin * self._move_cost(sim, stage)


class PolicyAgent:
    """A policy object (e.g. `sysgym.solvers.get("job_sched.uwfq").policy()`) behind the agent interface
    `act(observation) -> action` on a `JobSchedEnv`, so heuristics and learned policies are run the same way.

    It drives the env's own simulator (`env.sim`), so in an env built with `allow_wait=True` (a policy may
    leave executors idle, as `decima_cap` does at its caps), `num_limits` equal to the executor count (every
    executor count is a limit level) and every unfinished job visible (at most `max_jobs`), the env-driven run
    takes exactly the simulator-driven run's decisions. Otherwise a declined decision becomes the policy's
    best visible stage with one executor, and a count the limits cannot express the next larger one.
    """

    def __init__(self, policy, env: gym.Env, seed: int = 0):
        self.policy, self.env, self.seed = policy, env, seed
        self._sim = None

    def act(self, observation: Any = None) -> int:
        base = self.env.unwrapped
        sim = base.sim
        if sim is not self._sim:  # a new episode
            self._sim = sim
            self.policy.reset(sim, self.seed)
            if hasattr(self.policy, "on_arrival"):
                for j in sim.active_jobs:
                    self.policy.on_arrival(sim, j)
                sim.listeners.append(self.policy)
        visible = base.visible_stages()
        choice = self.policy.pick(sim)
        wait = base.wait_action
        if choice is None and wait is not None and base.action_masks()[wait]:
            return wait
        if choice is None or choice[0] not in visible:
            s = next(s for s in sim.ready if s in visible)
            return base.action_for(s, 1)
        return base.action_for(choice[0], choice[1])
