"""Registered methods: each claims the objective the evaluator gives; CP-SAT bounds every policy."""
import json

import numpy as np
import pytest

from sysgym import solvers
from sysgym.envs.job_sched import SchedulingPolicy, evaluate, generate, policy_names, simulate
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


def test_cpsat_models_multi_app_exactly_and_bounds_every_policy():
    """multi_app (moving delay and warm-up in the model): the decoded schedule passes the evaluator with the delays,
    CP-SAT proves it optimal, and no policy (move-aware or not) is below the bound; the earlier relaxation
    (model_delays=False) is still there and is weaker."""
    inst = generate(preset="tiny", seed=0, setting="multi_app")
    sol, metrics = check_solver("job_sched.cpsat", inst, time_limit=20)
    assert sol.status == "optimal" and sol.stats["model"] == "exact" and sol.stats["moves"] >= inst.num_jobs
    assert metrics["mean_response_s"] == pytest.approx(sol.bound, abs=1e-9)
    for name in POLICY_SOLVERS:
        assert solvers.get(name).solve(inst).objective >= sol.bound - 1e-9, name
    for name in ("job_sched.fair", "job_sched.user_fair", "job_sched.uwfq"):
        assert solvers.get(name, move_aware=False).solve(inst).objective >= sol.bound - 1e-9, name
    relaxed, _ = check_solver("job_sched.cpsat", inst, time_limit=20, model_delays=False)
    assert relaxed.status == "feasible" and relaxed.stats["model"].startswith("relaxation")
    assert relaxed.bound < sol.bound and relaxed.objective >= sol.objective - 1e-9


def test_cpsat_same_config_twice_gives_byte_identical_metrics():
    """Deterministic by default: interleaved search and a deterministic time limit (here one that binds)."""
    inst = generate(preset="tiny", seed=1, setting="multi_app")
    runs = [solvers.get("job_sched.cpsat").solve(inst, time_limit=2) for _ in range(2)]
    blobs = [json.dumps(evaluate(inst, r), sort_keys=True) for r in runs]
    assert blobs[0] == blobs[1]
    assert runs[0].bound == runs[1].bound and runs[0].status == runs[1].status
    assert runs[0].stats["deterministic_time"] < 2.0 + 1.0  # CP-SAT stops at its next check past the limit


def test_cpsat_options_are_checked():
    with pytest.raises(InvalidArgumentError, match="objective"):
        solvers.get("job_sched.cpsat", objective="max")
    with pytest.raises(InvalidArgumentError, match="workers"):
        solvers.get("job_sched.cpsat", workers=0)
    big = generate(preset="tiny", seed=0, setting="multi_app", max_tasks_per_stage=20, num_jobs=6, num_executors=10)
    assert big.num_tasks <= 400  # within max_tasks: the refusal is the arc count's (166^2 x 10 > 250,000)
    with pytest.raises(InvalidInstanceError, match="arc literals .* model_delays=False"):
        solvers.get("job_sched.cpsat").solve(big, time_limit=1)


# -- moving costs (issue 20) -----------------------------------------------------------------------------------
def _moves(inst, sched):
    job = inst.stage_job[np.repeat(np.arange(inst.num_stages), np.diff(inst.stage_task_ptr))]
    ex, st = np.asarray(sched["task_executor"]), np.asarray(sched["task_start"])
    order = np.lexsort((st, ex))
    e, j, t = ex[order], job[order], st[order]
    fresh = np.concatenate([[True], (e[1:] != e[:-1]) | (j[1:] != j[:-1])])
    return t[fresh]  # start times of tasks run by an executor that moved


@pytest.mark.parametrize("name", ["job_sched.fair", "job_sched.user_fair", "job_sched.uwfq"])
def test_move_aware_policies_move_less_and_respond_faster_in_multi_app(name):
    inst = generate(preset="small", seed=0)  # multi_app
    aware, unaware = solvers.get(name).solve(inst), solvers.get(name, move_aware=False).solve(inst)
    assert len(_moves(inst, aware.decisions)) < 0.8 * len(_moves(inst, unaware.decisions))
    assert aware.objective < unaware.objective
    # shared_app: the default (auto) is today's behaviour exactly
    shared = generate(preset="small", seed=0, setting="shared_app")
    assert solvers.get(name).solve(shared).decisions == solvers.get(name, move_aware=False).solve(shared).decisions


def test_max_moves_per_event_bounds_the_moves_of_each_event():
    inst = generate(preset="small", seed=1)
    sol = solvers.get("job_sched.uwfq", max_moves_per_event=1).solve(inst)
    starts = _moves(inst, sol.decisions) - inst.moving_delay_s  # a mover is sent moving_delay_s before it starts
    _, per_instant = np.unique(np.round(starts, 6), return_counts=True)
    assert per_instant.max() == 1
    free = solvers.get("job_sched.uwfq").solve(inst)
    _, counts = np.unique(np.round(_moves(inst, free.decisions) - inst.moving_delay_s, 6), return_counts=True)
    assert counts.max() > 1 and sol.decisions != free.decisions


def test_move_options_are_checked_by_name():
    for name in ("job_sched.fair", "job_sched.user_fair", "job_sched.uwfq"):
        with pytest.raises(InvalidArgumentError, match="move_aware"):
            solvers.get(name, move_aware="yes")
        with pytest.raises(InvalidArgumentError, match="max_moves_per_event"):
            solvers.get(name, max_moves_per_event=0)
    with pytest.raises(InvalidArgumentError, match="move_margin"):
        solvers.get("job_sched.uwfq", move_margin=-1)
    with pytest.raises(InvalidArgumentError, match="below_share_margin"):
        solvers.get("job_sched.uwfq", below_share_margin=-1)
    with pytest.raises(InvalidArgumentError, match="user_share_moves"):
        solvers.get("job_sched.uwfq", user_share_moves="yes")
    with pytest.raises(InvalidArgumentError, match="user_order"):
        solvers.get("job_sched.uwfq", user_order="sjf")


# the three options that give UWFQ's behaviour before user_order / user_share_moves / below_share_margin
UWFQ_EARLIER = {"user_order": "arrival", "user_share_moves": False, "below_share_margin": None}


def test_uwfq_user_order_srpt_puts_a_users_shorter_job_first_in_its_virtual_queue():
    from sysgym.envs.job_sched import build

    # one user, 2 executors, no moving costs: job 0 (t=0) has 4 tasks of 2 s (virtual runtime 4 s at the user's
    # 2 executors), job 1 (t=1) one task of 1 s (virtual runtime 1 s)
    inst = build(2, [{"arrival": 0, "stages": [[2.0] * 4]}, {"arrival": 1, "stages": [[1.0]]}], moving_delay_s=0)
    arrival = solvers.get("job_sched.uwfq", user_order="arrival").policy()
    simulate(inst, arrival)
    assert arrival.deadline == pytest.approx([4.0, 5.0])  # the chain: job 1 after job 0
    srpt = solvers.get("job_sched.uwfq").policy()
    res = simulate(inst, srpt)
    # at t=1 job 0 has 3 s of virtual runtime left: job 1 goes first (deadline 2), job 0's deadline grows by 1 s
    assert srpt.deadline == pytest.approx([5.0, 2.0])
    # EDF then runs job 1 on the first executor that frees (t=2), while the simulator's heap re-keys job 0
    assert res.job_finish[1] == pytest.approx(3.0)


def test_uwfq_earlier_behaviour_stays_available_and_shared_app_ignores_the_move_options():
    inst = generate(preset="multiuser", seed=0, num_jobs=20, setting="multi_app")
    now = solvers.get("job_sched.uwfq").solve(inst).decisions
    for option in (UWFQ_EARLIER, {"user_order": "arrival"}, {"user_share_moves": False}, {"below_share_margin": None}):
        assert solvers.get("job_sched.uwfq", **option).solve(inst).decisions != now, option
    # the move options only act where moves are charged: in shared_app only user_order changes anything
    shared = generate(preset="multiuser", seed=0, num_jobs=20, setting="shared_app")
    ordered = solvers.get("job_sched.uwfq", user_order="arrival").solve(shared).decisions
    assert solvers.get("job_sched.uwfq", **UWFQ_EARLIER).solve(shared).decisions == ordered


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
