"""`parallel_plan.optuna_tpe` / `parallel_plan.optuna_cmaes`: black-box search over the equal-stage plan space.

Each plan dimension (t, c, p, placement, b, v, sequence parallelism, recomputation, optimizer sharding) is an
integer index;
indices map onto the values legal after the earlier choices (modulo their number), and a plan over the
memory limit scores a penalty. Every trial is priced by `estimate_training`; the best feasible trial is returned.

The search stops after `n_trials` trials or at `time_limit` seconds, whichever comes first (the time is checked
after each trial, so at least one trial runs). When no trial fits, the answer has no plan and says why:
"infeasible" when no legal plan of the space fits the memory limit, "timeout" when some would have.
"""
from __future__ import annotations

import math
import time

import optuna

from sysgym.envs.parallel_plan.plan import RECOMPUTE, TrainingPlan
from sysgym.envs.parallel_plan.space import (
    OPT_OPTIONS,
    cp_options,
    divisors,
    infeasible_report,
    mb_options,
    placement_options,
    pp_options,
    tp_options,
    vs_options,
)
from sysgym.errors import InvalidArgumentError
from sysgym.solvers.base import Solver, register
from sysgym.solvers.parallel_plan.common import scored_solution

PENALTY_S = 1.0e6  # score of an illegal or out-of-memory plan (seconds; far above any real iteration)


def dimensions(inst) -> dict[str, int]:
    """Size of each integer dimension; an index is mapped onto the values legal after the earlier choices
    (index modulo the number of legal values), so every trial is a legal plan whenever one exists."""
    L = inst.model.num_layers
    n = inst.num_gpus
    ts = tp_options(inst)
    max_c = max(len(cp_options(inst, t)) for t in ts)
    max_p = max(len(pp_options(inst, t, c=c)) for t in ts for c in cp_options(inst, t))
    max_b = max((len(mb_options(inst, d)) for d in divisors(n)), default=1)
    max_place = 1 + (math.factorial(len(inst.cluster.groups)) if inst.cluster.heterogeneous else 0)
    return {"t": len(ts), "c": max_c, "p": max_p, "place": max_place, "b": max(max_b, 1), "v": len(divisors(L)),
            "sp": 2, "rc": len(RECOMPUTE), "opt": len(OPT_OPTIONS)}


def decode(inst, idx: dict[str, int]) -> TrainingPlan | None:
    ts = tp_options(inst)
    t = ts[idx["t"] % len(ts)]
    cs = cp_options(inst, t)
    c = cs[idx.get("c", 0) % len(cs)]
    ps = pp_options(inst, t, c=c)
    if not ps:
        return None
    p = ps[idx["p"] % len(ps)]
    d = inst.num_gpus // (t * c * p)
    places = placement_options(inst, t, c, p, d)
    placement = places[idx.get("place", 0) % len(places)]
    bs = mb_options(inst, d)
    if not bs:
        return None
    b = bs[idx["b"] % len(bs)]
    vs = vs_options(inst, p, inst.global_batch // (d * b))
    opts = [o for o in OPT_OPTIONS if p == 1 or o[0] < 2]
    z, dopt = opts[idx["opt"] % len(opts)]
    return TrainingPlan(tp=t, pp=p, dp=d, micro_batch=b, virtual_stages=vs[idx["v"] % len(vs)],
                        sequence_parallel=bool(idx["sp"]) and t > 1 and (inst.seq_len // c) % t == 0,
                        recompute=RECOMPUTE[idx["rc"]], zero_stage=z, distributed_optimizer=dopt,
                        context_parallel=c, placement=placement)


class _OptunaBase(Solver):
    family = "parallel_plan"
    kind = "search"

    def __init__(self, n_trials: int = 300):
        if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
            raise InvalidArgumentError(f"{self.name}: n_trials must be a positive integer, got {n_trials!r}")
        super().__init__(n_trials=n_trials)
        self.n_trials = n_trials

    def _sampler(self, seed: int):
        raise NotImplementedError

    def solve(self, instance, *, time_limit: float | None = None, seed: int = 0):
        t0 = time.perf_counter()
        dims = dimensions(instance)
        best: dict = {"time": math.inf, "plan": None}
        counts = {"illegal": 0, "oom": 0, "feasible": 0}

        def objective(trial: optuna.Trial) -> float:
            idx = {k: trial.suggest_int(k, 0, size - 1) for k, size in dims.items()}
            plan = decode(instance, idx)
            if plan is None:
                counts["illegal"] += 1
                return PENALTY_S * 2.0
            est = instance.estimate(plan)
            if not est.feasible:
                counts["illegal" if est.rule != "memory" else "oom"] += 1
                return PENALTY_S * (2.0 if est.rule != "memory" else 1.0)
            counts["feasible"] += 1
            if est.iteration_time_s < best["time"]:
                best.update(time=est.iteration_time_s, plan=plan)
            return est.iteration_time_s

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="minimize", sampler=self._sampler(seed))

        def stop_at_time_limit(study: optuna.Study, _trial) -> None:
            # Checked after each trial (not before, as Optuna's own `timeout`), so even a time limit shorter
            # than one trial gives an answer from one trial.
            if time_limit is not None and time.perf_counter() - t0 >= time_limit:
                study.stop()

        study.optimize(objective, n_trials=self.n_trials, callbacks=[stop_at_time_limit])
        stats = {"trials": len(study.trials), **counts}
        if best["plan"] is None:
            report = infeasible_report(instance)
            return scored_solution(instance, None, t0, "timeout" if report["feasible"] else "infeasible",
                                   stats={**stats, **report})
        return scored_solution(instance, best["plan"], t0, "feasible", stats=stats)


@register
class OptunaTPE(_OptunaBase):
    """Optuna's TPE sampler over the equal-stage plan space (n_trials trials or the time limit)."""

    name = "parallel_plan.optuna_tpe"

    def _sampler(self, seed: int):
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=20)


@register
class OptunaCmaEs(_OptunaBase):
    """Optuna's CMA-ES sampler over the equal-stage plan space (n_trials trials or the time limit)."""

    name = "parallel_plan.optuna_cmaes"

    def _sampler(self, seed: int):
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=10, warn_independent_sampling=False)
