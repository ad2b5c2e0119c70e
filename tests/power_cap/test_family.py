"""power_cap: generator, instance IO and errors, evaluator, env (return = minus the cost) and the policies."""
import numpy as np
import pytest

import sysgym
from sysgym.envs.power_cap import PowerCapInstance, evaluate, generate, load
from sysgym.errors import InfeasibleSolutionError, InvalidInstanceError, TraceFormatError, UnknownNameError
from sysgym.solution import Solution


@pytest.fixture(scope="module")
def tiny():
    return generate(seed=0, preset="tiny")


def test_generator_reads_the_packaged_trace_at_the_asked_rate(tiny):
    assert tiny.num_servers == 4 and tiny.num_intervals == 20 and tiny.source["trace"] == "azure-conv-2023"
    window = tiny.horizon_s * 0.9
    rate = tiny.num_requests / window / tiny.num_servers
    assert 3.0 < rate < 5.0  # 4 requests/s per server, up to the window's burstiness
    assert tiny.budget_w == pytest.approx(4 * 400.0 / 1.3)
    assert np.bincount(tiny.server_of).max() - np.bincount(tiny.server_of).min() <= 1  # round robin
    code = generate(seed=0, preset="code")
    assert code.source["trace"] == "azure-code-2023"
    assert np.median(code.prompt) > np.median(generate(seed=0, preset="small").prompt)  # code prompts are longer
    with pytest.raises(UnknownNameError):
        generate(seed=0, preset="tiny", trace="no-such-trace")


def test_instance_round_trip_and_named_errors(tiny, tmp_path):
    path = tiny.save(tmp_path / "i.json")
    assert load(path).digest() == tiny.digest()
    assert sysgym.instance(tiny.name).digest() == tiny.digest()
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(TraceFormatError):
        load(tmp_path / "bad.json")
    d = tiny.to_dict()
    for change, match in (({"levels": [0.9, 0.8]}, "levels"), ({"budget_w": -1}, "budget_w"),
                          ({"model": "no-such-model"}, "no-such-model"), ({"num_servers": 2}, "routed")):
        with pytest.raises(InvalidInstanceError, match=match):
            PowerCapInstance.from_dict({**d, **change})


def test_evaluator_checks_the_schedule(tiny):
    ok = np.zeros((tiny.num_intervals, tiny.num_servers), int)
    for bad, match in ((ok[:-1], "shape"), (np.full_like(ok, 5), "level"), (ok + 0.5, "level"), ("x", "format")):
        with pytest.raises(InfeasibleSolutionError, match=match):
            evaluate(tiny, bad)
    assert evaluate(tiny, ok[:-1], raise_on_infeasible=False)["feasible"] is False
    with pytest.raises(sysgym.FamilyMismatchError):
        evaluate(sysgym.get_family("serverless").generator(seed=0, preset="tiny"), ok)


def test_evaluator_metrics_and_cost(tiny):
    full = evaluate(tiny, np.zeros((20, 4), int))
    low = evaluate(tiny, np.full((20, 4), 4))
    assert full == evaluate(tiny, Solution(np.zeros((20, 4), int).tolist(), 0.0, "feasible", 0.0))  # deterministic
    assert full["cost"] == pytest.approx(1 - full["slo_attainment"] + full["overbudget_rate"])
    assert full["overbudget_rate"] > 0.2 and low["overbudget_rate"] == 0.0  # uncapped, the row goes over
    assert low["energy_j"] < 0.8 * full["energy_j"] and low["mean_clock"] == pytest.approx(0.6)
    assert low["ttft_p99_s"] > full["ttft_p99_s"]
    assert len(full["row_power_w"]) == 20 and max(full["row_power_w"]) == pytest.approx(full["peak_row_power_w"])


def test_env_return_is_minus_the_cost_and_padding_is_zero(tiny):
    env = sysgym.make("sysgym/PowerCap-v0", instance=tiny, max_servers=6)
    obs, _ = env.reset(seed=0)
    assert obs["servers"].shape == (6, 9) and obs["servers"][4:].sum() == 0
    rng = np.random.default_rng(3)
    total, done = 0.0, False
    while not done:
        server = env.unwrapped.server
        obs, r, done, _, info = env.step(int(rng.integers(0, 5)))
        assert env.observation_space.contains(obs)
        assert r == 0.0 or server == tiny.num_servers - 1  # the interval runs on the last server's decision
        total += r
    m = evaluate(tiny, env.unwrapped.decisions())
    assert -total == pytest.approx(m["cost"], rel=1e-9, abs=1e-12)
    assert info["row_power_w"] == pytest.approx(m["row_power_w"][-1], rel=1e-6)


def test_env_refuses_bad_actions_without_changing_state(tiny):
    env = sysgym.make("sysgym/PowerCap-v0", instance=tiny)
    env.reset(seed=0)
    env.step(2)  # mid-interval: one server decided
    before = env.unwrapped.snapshot()
    for bad in (5, -1, 0.5, "x"):
        _, r, _, _, info = env.step(bad)
        assert r == -1.0 and "invalid_action" in info
    for k, v in env.unwrapped.snapshot().items():
        np.testing.assert_array_equal(v, before[k])
    strict = sysgym.make("sysgym/PowerCap-v0", instance=tiny, invalid_action="raise")
    strict.reset(seed=0)
    with pytest.raises(sysgym.InvalidActionError):
        strict.step(9)


def test_policies_on_the_oversubscribed_row(tiny):
    got = {n: sysgym.solvers.get(f"power_cap.{n}").solve(tiny) for n in ("none", "polca", "static", "lookahead")}
    m = {n: evaluate(tiny, s) for n, s in got.items()}
    assert m["none"]["overbudget_rate"] > m["polca"]["overbudget_rate"]
    assert m["lookahead"]["overbudget_rate"] == 0.0 and m["lookahead"]["mean_clock"] > m["static"]["mean_clock"]
    assert m["polca"]["cost"] < m["none"]["cost"]
    # Under a generous budget POLCA never reaches its threshold and is the uncapped row.
    roomy = generate(seed=0, preset="tiny", budget_fraction=1.2)
    assert evaluate(roomy, sysgym.solvers.get("power_cap.polca").solve(roomy))["capped_share"] == 0.0
    with pytest.raises(sysgym.SysgymError):
        sysgym.solvers.get("power_cap.polca", cap_threshold=0.5, uncap_threshold=0.8)
    with pytest.raises(sysgym.SysgymError):
        sysgym.solvers.get("power_cap.static", level=9).solve(tiny)


def test_a_policy_played_through_the_env_scores_as_its_solver(tiny):
    sol = sysgym.solvers.get("power_cap.polca").solve(tiny)
    env = sysgym.make("sysgym/PowerCap-v0", instance=tiny)
    env.reset(seed=0)
    total = 0.0
    for levels in sol.decisions:
        for lv in levels:
            total += env.step(lv)[1]
    assert env.unwrapped.decisions() == sol.decisions
    assert -total == pytest.approx(sol.objective, rel=1e-9, abs=1e-12)
