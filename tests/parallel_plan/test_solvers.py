"""Every method is scored by the evaluator; the partition solvers reach the enumerated optimum."""
import math

import pytest

from sysgym import solvers
from sysgym.envs.parallel_plan import generate
from sysgym.envs.parallel_plan.evaluate import evaluate
from sysgym.errors import InvalidArgumentError
from sysgym.testing import check_solver

NAMES = ["parallel_plan.exhaustive", "parallel_plan.dp", "parallel_plan.cpsat", "parallel_plan.optuna_tpe",
         "parallel_plan.optuna_cmaes", "parallel_plan.megatron"]


@pytest.fixture(scope="module")
def tiny():
    return generate(preset="tiny")


def test_all_methods_registered():
    assert set(NAMES) <= set(solvers.list("parallel_plan"))


@pytest.fixture(scope="module")
def referee(tiny):
    # Partition space without ZeRO-2/3 (which wins outright on this instance with pp = 1): the optimum is an
    # unequal split with per-stage recomputation, which equal-stage search cannot express.
    return check_solver("parallel_plan.exhaustive", tiny, time_limit=None, partitions="all", max_zero_stage=1)


def test_enumerated_optimum_needs_an_unequal_split(referee, tiny):
    sol, _ = referee
    assert sol.status == "optimal" and sol.gap == 0.0
    assert len(set(sol.decisions["partition"])) > 1
    uniform, _ = check_solver("parallel_plan.exhaustive", tiny, interleaving=False, max_zero_stage=1)
    assert sol.objective < uniform.objective * 0.99


@pytest.mark.parametrize("name", ["parallel_plan.dp", "parallel_plan.cpsat"])
def test_partition_solvers_reach_the_enumerated_optimum(name, referee, tiny):
    ref, _ = referee
    sol, metrics = check_solver(name, tiny, time_limit=None, max_zero_stage=1)
    assert sol.status == "optimal"
    assert metrics["iteration_time_s"] == pytest.approx(ref.objective, rel=1e-6)
    if name == "parallel_plan.cpsat":
        assert sol.bound is not None and sol.bound <= sol.objective and sol.gap < 1e-6


def test_full_space_dp_matches_exhaustive_with_zero(tiny):
    ref, _ = check_solver("parallel_plan.exhaustive", tiny, time_limit=None, partitions="all")
    sol, _ = check_solver("parallel_plan.dp", tiny, time_limit=None)
    assert sol.objective == pytest.approx(ref.objective, rel=1e-6)


@pytest.mark.parametrize("name", ["parallel_plan.optuna_tpe", "parallel_plan.optuna_cmaes"])
def test_optuna_is_scored_by_the_evaluator_and_seeded(name, tiny):
    a, _ = check_solver(name, tiny, n_trials=60, seed=3)
    b, _ = check_solver(name, tiny, n_trials=60, seed=3)
    assert a.decisions == b.decisions and a.status == "feasible"
    best, _ = check_solver("parallel_plan.exhaustive", tiny)
    assert a.objective >= best.objective - 1e-12


def test_megatron_heuristic_follows_the_papers_rules():
    inst = generate(preset="medium")
    sol, _ = check_solver("parallel_plan.megatron", inst)
    plan = sol.decisions
    assert plan["recompute"] == "full" and plan["tp"] == 8  # t fills a server before p grows
    assert plan["tp"] * plan["pp"] < inst.num_gpus


def test_no_feasible_plan_reports_the_smallest_memory():
    inst = generate(model="gpt-1t", cluster="dgx-a100", nodes=1, seq_len=2048, global_batch=8)
    for name in NAMES:
        sol = solvers.get(name).solve(inst, time_limit=30)
        assert sol.status == "infeasible" and math.isinf(sol.objective) and sol.decisions is None, name
        assert "no feasible plan" in sol.stats["reason"] and sol.stats["min_memory_gib"] > 1000, name
        assert sol.stats["feasible"] is False


def test_a_method_without_a_plan_says_that_plans_exist(tiny):
    """The Megatron rules find nothing under tiny's 10 GiB budget; the report must not call the instance
    infeasible."""
    sol = solvers.get("parallel_plan.megatron").solve(tiny)
    assert sol.decisions is None and sol.status == "infeasible"
    assert sol.stats["feasible"] is True and "legal plans do" in sol.stats["reason"]
    cut = solvers.get("parallel_plan.exhaustive", partitions="all", max_candidates=1).solve(tiny)
    assert cut.decisions is None and cut.status == "timeout"  # stopped early: not proven infeasible


@pytest.mark.parametrize("name", ["parallel_plan.optuna_tpe", "parallel_plan.optuna_cmaes"])
def test_optuna_budgets_give_a_valid_answer(name, tiny):
    """time_limit <= 0 is refused before any work; a limit shorter than one trial, or one trial, still answers:
    a scored feasible plan, or no plan with status "timeout" (feasible plans exist) and the reason."""
    with pytest.raises(InvalidArgumentError, match="time_limit"):
        solvers.get(name).solve(tiny, time_limit=0)
    with pytest.raises(InvalidArgumentError, match="n_trials"):
        solvers.get(name, n_trials=0)
    outcomes = set()
    for seed in range(6):  # one trial lands on a plan that fits for some seeds, not for others
        short = solvers.get(name).solve(tiny, time_limit=1e-6, seed=seed)
        one = solvers.get(name, n_trials=1).solve(tiny, seed=seed)
        assert short.decisions == one.decisions and short.status == one.status
        for sol in (short, one):
            assert sol.stats["trials"] == 1
            if sol.decisions is None:
                assert sol.status == "timeout" and "legal plans do" in sol.stats["reason"]
            else:
                assert sol.status == "feasible" and evaluate(tiny, sol)["iteration_time_s"] == sol.objective
        outcomes.add(short.status)
    assert outcomes == {"feasible", "timeout"}


def test_evaluator_rejects_bad_plans(tiny):
    from sysgym.errors import InfeasibleSolutionError

    with pytest.raises(InfeasibleSolutionError, match="GPU count: dp\\*tp\\*pp = 1\\*8\\*1 = 8"):
        evaluate(tiny, {"tp": 8, "pp": 1, "dp": 1, "micro_batch": 1})
    with pytest.raises(InfeasibleSolutionError, match="memory: out of memory"):
        evaluate(tiny, {"tp": 1, "pp": 1, "dp": 16, "micro_batch": 1})
    with pytest.raises(InfeasibleSolutionError, match="format"):
        evaluate(tiny, {"tp": 1, "bogus": 2})
    m = evaluate(tiny, {"tp": 1, "pp": 1, "dp": 16, "micro_batch": 1}, raise_on_infeasible=False)
    assert m["feasible"] is False and "out of memory" in m["violation"]


def test_cpsat_without_dominance_reduction_agrees(referee, tiny):
    ref, _ = referee
    sol, _ = check_solver("parallel_plan.cpsat", tiny, time_limit=None, max_zero_stage=1, dominance=False)
    assert sol.objective == pytest.approx(ref.objective, rel=1e-6)
