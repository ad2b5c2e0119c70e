"""Registered methods: each claims the objective the evaluator gives; CP-SAT bounds every policy."""
import pytest

from sysgym import solvers
from sysgym.envs.job_sched import SchedulingPolicy, generate, policy_names, simulate
from sysgym.errors import InvalidArgumentError, InvalidInstanceError
from sysgym.testing import check_solver

POLICY_SOLVERS = ["job_sched.fifo", "job_sched.fair", "job_sched.user_fair", "job_sched.cfq", "job_sched.decima_cap",
                  "job_sched.srpt", "job_sched.random", "job_sched.uwfq"]


def test_registered_names():
    assert set(POLICY_SOLVERS + ["job_sched.cpsat", "job_sched.agent"]) == set(solvers.list("job_sched"))
    assert [f"job_sched.{n}" for n in policy_names()] == sorted(POLICY_SOLVERS)
    assert solvers.solver_class("job_sched.cpsat").kind == "bound"  # clairvoyant: an offline optimum, a bound


@pytest.mark.parametrize("name", POLICY_SOLVERS)
def test_each_policy_is_one_class_the_solver_and_the_simulators_policy(name):
    solver = solvers.get(name)
    pol = solver.policy()
    assert isinstance(pol, SchedulingPolicy) and type(pol) is type(solver) and pol is not solver
    assert pol.config == solver.config
    inst = generate(preset="small", seed=2)
    by_name = simulate(inst, name.split(".")[1], seed=4)
    by_object = simulate(inst, solvers.get(name).policy(), seed=4)
    assert by_name.schedule == by_object.schedule == solver.solve(inst, seed=4).decisions


def test_policy_options_are_checked_by_name():
    inst = generate(preset="tiny", seed=0)
    with pytest.raises(InvalidArgumentError, match="estimate_error"):
        simulate(inst, "fifo", estimate_error=0.3)
    with pytest.raises(InvalidArgumentError, match="go with a policy name"):
        simulate(inst, solvers.get("job_sched.srpt").policy(), estimate_error=0.3)
    assert simulate(inst, "job_sched.srpt", estimate_error=0.3).schedule == \
        simulate(inst, "srpt", estimate_error=0.3).schedule


@pytest.mark.parametrize("name", POLICY_SOLVERS)
def test_policy_solver_claims_what_the_evaluator_scores(name):
    inst = generate(preset="small", seed=1)
    sol, metrics = check_solver(name, inst)
    assert sol.status == "feasible" and metrics["mean_response_s"] > 0


def test_uwfq_options_reach_the_policy():
    inst = generate(preset="small", seed=1)
    plain, _ = check_solver("job_sched.uwfq", inst)
    part, _ = check_solver("job_sched.uwfq", inst, runtime_partition_s=0.5)
    assert part.decisions["runtime_partition_s"] == 0.5
    assert part.objective != plain.objective


def test_cpsat_is_optimal_on_tiny_and_bounds_every_policy():
    inst = generate(preset="tiny", seed=0)
    sol, _ = check_solver("job_sched.cpsat", inst, time_limit=30)
    assert sol.status == "optimal" and sol.gap == pytest.approx(0.0, abs=1e-9)
    for name in POLICY_SOLVERS:
        other = solvers.get(name).solve(inst)
        assert other.objective >= sol.bound - 1e-9, name
    # FIFO is not optimal here: the bound is informative
    assert solvers.get("job_sched.fair").solve(inst).objective > sol.bound * 1.05


def test_cpsat_with_delays_is_a_relaxation_bound():
    inst = generate(preset="tiny", seed=0, moving_delay_s=2.0, warmup_scale=1.0)
    sol, metrics = check_solver("job_sched.cpsat", inst, time_limit=20)
    assert sol.status in ("feasible", "timeout") and sol.bound < metrics["mean_response_s"]
    for name in ("job_sched.fifo", "job_sched.uwfq"):
        assert solvers.get(name).solve(inst).objective >= sol.bound


def test_cpsat_refuses_big_instances():
    with pytest.raises(InvalidInstanceError, match="max_tasks"):
        solvers.get("job_sched.cpsat").solve(generate(preset="small", seed=0))


def test_fast_machine_bound_is_valid_and_hand_checked():
    from sysgym.envs.job_sched import build
    from sysgym.solvers.job_sched.cpsat import fast_machine_bound

    # 2 executors; job 0 (t=0) 4 s of work, job 1 (t=1) 1 s: on a 2x machine SRPT ends job 0 at 2.5, job 1 at 1.5
    inst = build(2, [{"arrival": 0, "stages": [[2.0, 2.0]]}, {"arrival": 1, "stages": [[1.0]]}], moving_delay_s=0)
    assert fast_machine_bound(inst).tolist() == pytest.approx([2.5, 1.5])
    for seed in range(3):
        inst = generate(preset="small", seed=seed)
        lb = float((fast_machine_bound(inst) - inst.job_arrival).mean())
        for name in ("job_sched.srpt", "job_sched.uwfq", "job_sched.decima_cap"):
            assert solvers.get(name).solve(inst).objective >= lb
