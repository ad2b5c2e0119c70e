"""Serving-engine knobs on the LLM-serving simulator: evaluator, crashes, methods, `sysgym/ServingKnobs-v0`."""
import numpy as np
import pytest

import sysgym
from sysgym import solvers
from sysgym.envs.serving_knobs import ServingKnobInstance, evaluate, generate, load, serving_space
from sysgym.errors import InfeasibleSolutionError, InvalidActionError, TraceFormatError, UnknownNameError
from sysgym.testing import check_solver

METHODS = ["tpe", "random", "cmaes", "gp", "llamatune", "default"]


@pytest.fixture(scope="module")
def inst():
    return generate(seed=0, preset="tiny")


def test_preset_gives_a_serving_instance(inst, tmp_path):
    assert isinstance(inst, ServingKnobInstance) and inst.name == "serving_knobs/tiny?seed=0"
    assert len(inst.serving_instance().trace) == 120
    assert sysgym.instance(inst.name).digest() == inst.digest()
    assert load(inst.save(tmp_path / "i.json")).digest() == inst.digest()
    with pytest.raises(UnknownNameError, match="serving-tiny"):
        generate(preset="serving-huge")
    with pytest.raises(TypeError, match="num_requests"):
        generate(preset="tiny", num_requests=3)
    (tmp_path / "pg.json").write_text('{"format": "sysgym.knob_tuning.instance/1", "serving_preset": "x"}')
    with pytest.raises(TraceFormatError, match="not a serving_knobs instance"):
        load(tmp_path / "pg.json")


def test_presets_from_before_the_split_keep_their_names_and_digests():
    """`knob_tuning/serving-tiny?seed=0` was written into records before the split: it still names the same
    instance (same name, same digest), which `small`/`tiny` make under the new family's names."""
    old = generate(seed=0, preset="serving-tiny")
    assert old.name == "knob_tuning/serving-tiny?seed=0" and old.digest() == "5491fc4f9d9c17a2"
    assert sysgym.instance("knob_tuning/serving?seed=1").digest() == "59401d6f8e373a1c"
    new = generate(seed=0, preset="tiny")
    assert {**old.to_dict(), "name": None} == {**new.to_dict(), "name": None}


def test_evaluator_is_deterministic_and_scores_goodput(inst):
    a = evaluate(inst, {})
    b = evaluate(inst, {})
    assert a["slo_goodput_rps"] == b["slo_goodput_rps"] > 0
    assert not a["crashed"] and a["deterministic"] and "objective" not in a


def test_out_of_memory_and_refused_configurations_are_crashes(inst):
    oom = evaluate(inst, {"gpu_memory_utilization": 0.12})
    assert oom["crashed"] and oom["slo_goodput_rps"] == 0.0 and "out of memory" in oom["error"]
    refused = evaluate(inst, {"max_num_batched_tokens": 512, "scheduler": "vllm"})
    assert refused["crashed"] and "max_num_batched_tokens 512 < max_model_len 4096" in refused["error"]
    chunked = evaluate(inst, {"max_num_batched_tokens": 512, "scheduler": "sarathi", "chunk_size": 512})
    assert not chunked["crashed"]  # chunked prefill runs with a small token budget


def test_bad_configurations_are_infeasible(inst):
    with pytest.raises(InfeasibleSolutionError, match=r"max_num_seqs.*allowed 4\.\.512"):
        evaluate(inst, {"max_num_seqs": 4096})
    with pytest.raises(InfeasibleSolutionError, match="allowed: vllm, orca, sarathi, sjf, past_future"):
        evaluate(inst, {"scheduler": "fifo"})
    with pytest.raises(InfeasibleSolutionError, match="knob space: unknown knob 'max_seqs'; known knobs: .*max_num_"):
        evaluate(inst, {"max_seqs": 4})
    m = evaluate(inst, {"max_seqs": 4}, raise_on_infeasible=False)
    assert m["feasible"] is False and "max_seqs" in m["violation"]
    with pytest.raises(sysgym.FamilyMismatchError, match="serving_knobs"):
        evaluate(sysgym.get_family("pg_knobs").generator(seed=0, preset="tiny"), {})


@pytest.mark.parametrize("method", METHODS)
def test_methods_claim_exactly_what_the_evaluator_scores(inst, method):
    opts = {"dim": 3} if method == "llamatune" else {}
    sol, metrics = check_solver(f"serving_knobs.{method}", inst, **opts)  # deterministic: exact agreement
    assert metrics["slo_goodput_rps"] == sol.objective
    if method != "default":
        assert sol.stats["trials_run"] == inst.trials
        assert sol.objective >= sol.stats["default_objective"]  # trial 0 is the defaults
        assert sol.stats["gain_ci95"] == [sol.stats["gain"], sol.stats["gain"]]


def test_same_seed_same_search(inst):
    a = solvers.get("serving_knobs.tpe").solve(inst, seed=3)
    b = solvers.get("serving_knobs.tpe").solve(inst, seed=3)
    assert a.decisions == b.decisions and a.objective == b.objective


def test_progress_bar_shows_goodput(inst, capsys):
    solvers.get("serving_knobs.random", trials=2, progress=True).solve(inst, seed=0)
    assert "req/s" in capsys.readouterr().out


def test_serving_env_crash_refusals_and_decisions():
    env = sysgym.make("ServingKnobs-v0", preset="tiny", episode_length=3)
    obs, info = env.reset(seed=0)
    assert info["goodput"] > 0 and env.observation_space.contains(obs)
    base = env.unwrapped
    space = serving_space()
    u = space.to_unit({**space.defaults(), "gpu_memory_utilization": 0.1})
    obs, r, _, _, info = env.step((2 * u - 1).astype(np.float32))
    assert info["crashed"] and "out of memory" in info["error"]
    assert r == pytest.approx(0.0)  # worst seen so far = the defaults' goodput
    assert obs[-1] == 1.0
    assert base.decisions() == space.defaults()  # a crash never becomes the best configuration
    before = base.snapshot()
    _, reward, _, _, info = env.step(np.full(6, 1.5, np.float32))
    assert reward == -1.0 and "outside" in info["invalid_action"]
    for key in before:
        np.testing.assert_array_equal(before[key], base.snapshot()[key])
    m = evaluate(base.instance, base.decisions())
    assert m["slo_goodput_rps"] == info["slo_goodput_rps"]  # info reports what decisions() scores


def test_serving_env_raise_and_clip():
    env = sysgym.make("ServingKnobs-v0", invalid_action="raise")
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match="outside"):
        env.step(np.full(6, 1.5, np.float32))
    env = sysgym.make("ServingKnobs-v0", invalid_action="clip")
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.full(6, 1.5, np.float32))
    assert info["clipped_action"] == [1.0] * 6 and "invalid_action" not in info
    _, reward, _, _, info = env.step(np.array([np.nan] * 6, np.float32))
    assert reward == -1.0 and "non-finite" in info["invalid_action"]


def test_env_decisions_after_an_episode_score_as_claimed():
    """A greedy rollout's decisions are the best configuration it simulated; the evaluator agrees exactly."""
    env = sysgym.make("ServingKnobs-v0", preset="tiny", episode_length=6)
    env.reset(seed=2)
    env.action_space.seed(2)
    done, info = False, {}
    while not done:
        _, _, term, trunc, info = env.step(env.action_space.sample())
        done = term or trunc
    m = evaluate(env.unwrapped.instance, env.unwrapped.decisions())
    assert m["slo_goodput_rps"] == info["slo_goodput_rps"] >= 0
