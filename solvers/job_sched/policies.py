"""Every scheduling policy as a registered solver: `solve(instance)` simulates the policy and returns the
executed schedule (task executor/start/end), which `sysgym.envs.job_sched.evaluate` re-checks and scores.

`policy()` gives the policy object itself (`reset(sim, seed)`, `pick(sim)`) for the simulator and for the env's
`PolicyAgent` (`act(observation) -> action`).
"""
from __future__ import annotations

import time

from sysgym.envs.job_sched import policies as P
from sysgym.envs.job_sched.simulator import simulate
from sysgym.solution import Solution
from sysgym.solvers.base import Solver, register


class _PolicySolver(Solver):
    family = "job_sched"
    kind = "heuristic"
    policy_cls: type[P.Policy] = P.Policy

    def policy(self) -> P.Policy:
        return self.policy_cls(**self.config)

    def solve(self, instance, *, time_limit=None, seed=0) -> Solution:
        t0 = time.perf_counter()
        res = simulate(instance, self.policy(), seed=seed)
        m = res.metrics
        stats = {"events": res.events, "events_per_s": res.events_per_s, "sim_wall_s": res.wall_time_s,
                 "small_job_mean_response_s": m["small_job_mean_response_s"], "p95_response_s": m["p95_response_s"],
                 "user_slowdown_ratio": m["user_slowdown_ratio"]}
        return Solution(res.schedule, m["mean_response_s"], "feasible", time.perf_counter() - t0, stats=stats)


@register
class Fifo(_PolicySolver):
    """Spark FIFO: the earliest job takes every free executor it can use."""

    name = "job_sched.fifo"
    kind = "baseline"
    policy_cls = P.Fifo

    def __init__(self):
        super().__init__()


@register
class Fair(_PolicySolver):
    """Spark FAIR, one pool per job: needy pools (running < minShare) first, then running / weight."""

    name = "job_sched.fair"
    kind = "baseline"
    policy_cls = P.Fair

    def __init__(self, min_share=None, weight=None):
        super().__init__(min_share=min_share, weight=weight)


@register
class UserFair(_PolicySolver):
    """Spark FAIR with one pool per user (minShare and weight per user), FAIR among a user's jobs."""

    name = "job_sched.user_fair"
    policy_cls = P.UserFair

    def __init__(self, min_share=None, weight=None):
        super().__init__(min_share=min_share, weight=weight)


@register
class Cfq(_PolicySolver):
    """Stage-level fair queuing: the runnable stage with the fewest running tasks."""

    name = "job_sched.cfq"
    policy_cls = P.Cfq

    def __init__(self):
        super().__init__()


@register
class DecimaCap(_PolicySolver):
    """Decima's fair-cap heuristic: FIFO jobs, each at most ceil(executors / unfinished jobs) executors."""

    name = "job_sched.decima_cap"
    policy_cls = P.DecimaCap

    def __init__(self):
        super().__init__()


@register
class Srpt(_PolicySolver):
    """Shortest remaining (unlaunched) work first; `estimate_error` = sigma of a log-normal estimate error."""

    name = "job_sched.srpt"
    policy_cls = P.Srpt

    def __init__(self, estimate_error: float = 0.0):
        super().__init__(estimate_error=estimate_error)


@register
class RandomPolicy(_PolicySolver):
    """A random runnable stage gets each free executor (a floor every method must beat)."""

    name = "job_sched.random"
    kind = "baseline"
    policy_cls = P.RandomPolicy

    def __init__(self):
        super().__init__()


@register
class Uwfq(_PolicySolver):
    """UWFQ (arXiv 2510.15485): user-level virtual fair queuing, chained per-user virtual deadlines, EDF stages;
    `runtime_partition_s` (e.g. 0.5) adds runtime partitioning; `estimate_error` noisy runtime estimates."""

    name = "job_sched.uwfq"
    policy_cls = P.Uwfq

    def __init__(self, estimate_error: float = 0.0, runtime_partition_s: float | None = None, user_weight=None):
        super().__init__(estimate_error=estimate_error, runtime_partition_s=runtime_partition_s,
                         user_weight=user_weight)
