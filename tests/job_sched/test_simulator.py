"""Simulator, policies and evaluator: every policy's schedule is re-checked; bad schedules are named."""
import copy

import numpy as np
import pytest

from sysgym.envs.job_sched import build, evaluate, generate, policy_names, simulate
from sysgym.errors import InfeasibleSolutionError, UnknownNameError


@pytest.fixture(scope="module")
def small():
    return generate(preset="small", seed=0)


@pytest.mark.parametrize("policy", policy_names())
def test_every_policy_schedule_is_feasible_and_scored_the_same(small, policy):
    res = simulate(small, policy, seed=1)
    m = evaluate(small, res.schedule)
    assert m["feasible"]
    for key in ("mean_response_s", "p95_response_s", "small_job_mean_response_s", "makespan_s"):
        assert m[key] == pytest.approx(res.metrics[key], rel=1e-12)
    assert set(m["per_user_mean_response_s"]) == {"0", "1", "2"}
    assert 0 < m["utilisation"] <= 1
    assert m["mean_slowdown"] >= 1.0
    assert res.metrics["p95_response_s"] >= res.metrics["mean_response_s"] * 0.5


def test_hand_computed_schedule():
    # 1 executor, no delays; job 0 (t=0): stage0 2 s -> stage1 1 s; job 1 (t=1): one 1 s task.
    inst = build(1, [{"arrival": 0, "stages": [[2.0], [1.0]], "edges": [(0, 1)]},
                     {"arrival": 1, "stages": [[1.0]], "user": 1, "small": True}], moving_delay_s=0.0)
    fifo = simulate(inst, "fifo").metrics
    assert fifo["per_user_mean_response_s"] == {"0": 3.0, "1": 3.0}  # job 1 waits until t=3, ends t=4
    # job 1's bounded fair share: 2 users at its arrival -> 0.5 executor -> 2 s; it took 3 s: a violation
    assert fifo["fair_share_violation_ratio"] == pytest.approx(0.5)
    assert fifo["makespan_s"] == pytest.approx(4.0) and fifo["utilisation"] == pytest.approx(1.0)
    srpt = simulate(inst, "srpt").metrics  # at t=2 the 1 s job beats job 0's remaining 1 s (tie -> lower job)
    assert srpt["mean_response_s"] == pytest.approx(3.0)
    # with Decima's 2 s moving delay, the executor moving to job 1 waits 2 s
    inst2 = build(1, [{"arrival": 0, "stages": [[2.0]]}, {"arrival": 0, "stages": [[1.0]], "user": 1}],
                  moving_delay_s=2.0)
    m = simulate(inst2, "fifo").metrics
    assert m["per_user_mean_response_s"] == {"0": 4.0, "1": 7.0}


def test_seeded_determinism(small):
    a = simulate(small, "random", seed=3).schedule
    b = simulate(small, "random", seed=3).schedule
    c = simulate(small, "random", seed=4).schedule
    assert a == b and a != c


def test_decima_cap_respects_the_cap():
    inst = generate(preset="small", seed=1, moving_delay_s=0.0)
    res = simulate(inst, "decima_cap")
    assert evaluate(inst, res.schedule)["feasible"]


def test_uwfq_beats_fifo_for_small_jobs_under_contention():
    inst = generate(preset="small", seed=0)
    fifo = simulate(inst, "fifo").metrics["small_job_mean_response_s"]
    uwfq = simulate(inst, "uwfq").metrics["small_job_mean_response_s"]
    assert uwfq < fifo


def test_noisy_estimates_change_decisions_but_stay_feasible():
    inst = generate(preset="small", seed=0)
    a = simulate(inst, "uwfq", estimate_error=0.0)
    b = simulate(inst, "uwfq", estimate_error=1.0, seed=2)
    assert evaluate(inst, b.schedule)["feasible"]
    assert a.schedule != b.schedule


def test_runtime_partitioning_schedule_is_checked_against_the_transform(small):
    res = simulate(small, "uwfq", runtime_partition_s=0.5)
    m = evaluate(small, res.schedule)
    assert m["mean_response_s"] == pytest.approx(res.metrics["mean_response_s"])
    bad = copy.deepcopy(res.schedule)
    bad.pop("runtime_partition_s")
    with pytest.raises(InfeasibleSolutionError, match="format"):
        evaluate(small, bad)


def test_evaluator_names_violations():
    inst = build(2, [{"arrival": 1.0, "stages": [[2.0], [1.0]], "edges": [(0, 1)]}], moving_delay_s=0.0)
    good = {"task_executor": [0, 1], "task_start": [1.0, 3.0], "task_end": [3.0, 4.0]}
    assert evaluate(inst, good)["mean_response_s"] == pytest.approx(3.0)
    cases = [
        ({"task_start": [0.5, 3.0], "task_end": [2.5, 4.0]}, "arrival"),
        ({"task_start": [1.0, 2.5], "task_end": [3.0, 3.5]}, "precedence: job 0 .*stage 1 task 0"),
        ({"task_end": [3.0, 4.5]}, "duration"),
        ({"task_executor": [0, 5]}, "executor index"),
        ({"task_executor": [0]}, "format"),
    ]
    for change, match in cases:
        with pytest.raises(InfeasibleSolutionError, match=match):
            evaluate(inst, {**good, **change})
    two = build(1, [{"arrival": 0, "stages": [[2.0]]}, {"arrival": 0, "stages": [[2.0]]}], moving_delay_s=2.0)
    overlap = {"task_executor": [0, 0], "task_start": [2.0, 3.0], "task_end": [4.0, 5.0]}
    with pytest.raises(InfeasibleSolutionError, match="moving delay"):
        evaluate(two, overlap)
    m = evaluate(two, overlap, raise_on_infeasible=False)
    assert m["feasible"] is False and "moving delay" in m["violation"]


def test_unknown_policy_lists_known():
    with pytest.raises(UnknownNameError, match="uwfq"):
        simulate(generate(preset="tiny", seed=0), "nope")


def test_metrics_small_jobs_and_fairness(small):
    m = simulate(small, "fifo").metrics
    resp = np.array([m["per_user_mean_response_s"][u] for u in ("0", "1", "2")])
    assert m["user_mean_response_of_means_s"] == pytest.approx(resp.mean())
    assert m["user_slowdown_ratio"] >= 1.0
    assert m["num_small_jobs"] == int(small.job_small.sum()) > 0
