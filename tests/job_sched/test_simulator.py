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
    inst = generate(preset="small", seed=0, setting="shared_app")
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


def test_uwfq_paper_user_measures_hand_computed():
    """2 executors, no delays. User 0: job A (t=0, two 2 s tasks) and job C (t=0, one 1 s task); user 1: job B
    (t=0, two 2 s tasks). FIFO runs A on both executors [0, 2), then B [2, 4) and C [2, 3) need 3 executors:
    B's tasks start at 2, C's at 4 (job order A, B, C)."""
    inst = build(2, [{"arrival": 0, "stages": [[2.0, 2.0]], "user": 0},
                     {"arrival": 0, "stages": [[2.0, 2.0]], "user": 1},
                     {"arrival": 0, "stages": [[1.0]], "user": 0}], moving_delay_s=0.0)
    res = simulate(inst, "fifo")
    assert res.schedule["task_start"] == [0.0, 0.0, 2.0, 2.0, 4.0]
    m = evaluate(inst, res.schedule)
    assert m["per_user_mean_response_s"] == {"0": pytest.approx((2 + 5) / 2), "1": pytest.approx(4.0)}
    # user 0 submits 2 jobs (more than the mean 1.5): heavy; user 1 light
    assert m["heavy_light_response_ratio"] == pytest.approx(3.5 / 4.0)
    # demand: user 0 has 3 runnable-or-running tasks on [0, 2), 1 on [2, 5); user 1 2 on [0, 4).
    # max-min fair split of 2 executors: [0, 2) 1 / 1, [2, 4) 1 / 1, [4, 5) 1 / 0; received: user 0 2, 0, 1;
    # user 1 0, 2, 0. Fair executor-seconds: user 0 2 + 2 + 1 = 5, user 1 2 + 2 = 4; received: 4 + 1 = 5, 4.
    assert m["per_user_share_ratio"] == {"0": pytest.approx(5 / 5), "1": pytest.approx(4 / 4)}
    # shortfalls: user 1 on [0, 2) (fair 1, got 0) = 2, user 0 on [2, 4) (fair 1, got 0) = 2; of 9 fair
    assert m["user_share_deficit"] == pytest.approx(4 / 9) and m["min_user_share_ratio"] == pytest.approx(1.0)
    assert m["setting"] == "shared_app" and res.metrics["user_share_deficit"] == pytest.approx(4 / 9)
    from sysgym.envs.job_sched.metrics import user_share_timeline

    tl = user_share_timeline(inst, res.schedule["task_start"], res.schedule["task_end"])
    np.testing.assert_allclose(tl["times"], [0, 2, 4, 5])
    np.testing.assert_allclose(tl["fair"], [[1, 1], [1, 1], [1, 0]])
    np.testing.assert_allclose(tl["received"], [[2, 0], [0, 2], [1, 0]])


def test_the_setting_is_in_every_metrics_dict(small):
    assert simulate(small, "fifo").metrics["setting"] == "multi_app"
    shared = generate(preset="multiuser", seed=0, num_jobs=10)
    assert evaluate(shared, simulate(shared, "uwfq").schedule)["setting"] == "shared_app"


def test_sysgym_jobs_prints_the_user_measures_and_plots_over_time(tmp_path, capsys):
    import argparse

    from experiments.commands import jobs

    parser = argparse.ArgumentParser()
    jobs.register(parser.add_subparsers())
    out = tmp_path / "per_user.png"
    args = parser.parse_args(["jobs", "--preset", "small", "--setting", "shared_app", "--seeds", "1", "--policies",
                              "fifo,fair,uwfq,uwfq+unaware", "--plot", str(out), "--box-plot",
                              str(tmp_path / "box.png")])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "setting shared_app" in text and "heavy/light" in text and out.stat().st_size > 10_000
    assert (tmp_path / "box.png").is_file()
    bad = parser.parse_args(["jobs", "--policies", "fifo+unaware"])
    with pytest.raises(UnknownNameError, match=r"option of policy fifo"):
        bad.func(bad)
