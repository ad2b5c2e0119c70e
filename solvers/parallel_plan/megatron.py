"""`parallel_plan.megatron`: the rules of thumb of Narayanan et al. (SC'21), Sec. 3.3 takeaways.

1. Model parallelism (t * p) only as large as needed for the model to fit; data parallelism for the rest
   (takeaway #2: "use model parallelism to fit, data parallelism to scale").
2. Tensor parallelism up to the GPUs of a server, pipeline parallelism across servers (takeaway #1).
3. Full activation recomputation, the 1F1B schedule, no optimizer sharding (the paper's runs).
4. The micro-batch size that gives the best throughput among those that fit (takeaway #3: the optimum depends
   on the model; the paper measured it, this heuristic asks the cost model for b in {1, 2, 4, 8}).
5. Long sequences (FlashAttention instances) that fit no such plan: context parallelism c = 2, 4, ... in
   front of pipelining (Megatron-Core's advice for long contexts: split the sequence before the layers).
The rules know nothing of node groups: on a heterogeneous cluster they keep Megatron's rank order (the
placement-oblivious baseline).
"""
from __future__ import annotations

import time

from sysgym.envs.parallel_plan.plan import TrainingPlan
from sysgym.envs.parallel_plan.space import cp_options, divisors, infeasible_report, tp_options
from sysgym.solvers.base import Solver, register
from sysgym.solvers.parallel_plan.common import scored_solution


def megatron_plan(inst, micro_batches=(1, 2, 4, 8)) -> TrainingPlan | None:
    n, g, L = inst.num_gpus, inst.cluster.gpus_per_node, inst.model.num_layers
    legal_t = set(tp_options(inst))
    cps = [c for c in cp_options(inst, 1) if c == 1 or inst.seq_len // (2 * c) >= g]
    for c in sorted(cps):
        for mp in divisors(n // c):  # model-parallel size, smallest first
            t = min(mp, g)
            if mp % t or t not in legal_t:
                continue
            p = mp // t
            if L % p:
                continue
            best = None
            for b in micro_batches:
                plan = TrainingPlan(tp=t, pp=p, dp=n // (mp * c), micro_batch=b, recompute="full",
                                    context_parallel=c)
                est = inst.estimate(plan)
                if est.feasible and (best is None or est.iteration_time_s < best[0]):
                    best = (est.iteration_time_s, plan)
            if best is not None:
                return best[1]
    return None


@register
class Megatron(Solver):
    """Narayanan et al. (SC'21) rules of thumb: model parallelism only to fit, t within a server, full recompute."""

    name = "parallel_plan.megatron"
    family = "parallel_plan"
    kind = "heuristic"

    def __init__(self):
        super().__init__()

    def solve(self, instance, *, time_limit: float | None = None, seed: int = 0):
        t0 = time.perf_counter()
        plan = megatron_plan(instance)
        if plan is None:
            return scored_solution(instance, None, t0, "infeasible", stats=infeasible_report(instance))
        return scored_solution(instance, plan, t0, "feasible")
