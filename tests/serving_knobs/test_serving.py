"""Serving-engine knobs on the LLM-serving simulator: evaluator, crashes, methods, `sysgym/ServingKnobs-v0`."""
import numpy as np
import pytest

from sysgym import solvers
from sysgym.envs.knob_tuning import evaluate, generate
from sysgym.envs.knob_tuning.serving import ServingKnobInstance, serving_space
from sysgym.errors import InfeasibleSolutionError, InvalidActionError, UnknownNameError
from sysgym.testing import check_env, check_solver

pytest.importorskip("sysgym.envs.llm_serving")


@pytest.fixture(scope="module")
def inst():
    return generate(seed=0, preset="serving-tiny")


def test_preset_gives_a_serving_instance(inst):
    assert isinstance(inst, ServingKnobInstance) and inst.name == "knob_tuning/serving-tiny?seed=0"
    assert len(inst.serving_instance().trace) == 120
    with pytest.raises(UnknownNameError, match="serving-tiny"):
        generate(preset="serving-huge")


def test_evaluator_is_deterministic_and_scores_goodput(inst):
    a = evaluate(inst, {})
    b = evaluate(inst, {})
    assert a["objective"] == b["objective"] == a["slo_goodput_rps"] > 0
    assert not a["crashed"] and a["deterministic"]


def test_out_of_memory_and_refused_configurations_are_crashes(inst):
    oom = evaluate(inst, {"gpu_memory_utilization": 0.12})
    assert oom["crashed"] and oom["objective"] == 0.0 and "out of memory" in oom["error"]
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


@pytest.mark.parametrize("name", ["knob_tuning.tpe", "knob_tuning.random", "knob_tuning.cmaes", "knob_tuning.gp",
                                  "knob_tuning.llamatune", "knob_tuning.default"])
def test_methods_claim_exactly_what_the_evaluator_scores(inst, name):
    opts = {"dim": 3} if name == "knob_tuning.llamatune" else {}
    sol, metrics = check_solver(name, inst, **opts)  # deterministic: exact agreement
    assert metrics["objective"] == sol.objective
    if name != "knob_tuning.default":
        assert sol.stats["trials_run"] == inst.trials
        assert sol.objective >= sol.stats["default_objective"]  # trial 0 is the defaults
        assert sol.stats["gain_ci95"] == [sol.stats["gain"], sol.stats["gain"]]


def test_same_seed_same_search(inst):
    a = solvers.get("knob_tuning.tpe").solve(inst, seed=3)
    b = solvers.get("knob_tuning.tpe").solve(inst, seed=3)
    assert a.decisions == b.decisions and a.objective == b.objective


def test_serving_env_contract():
    check_env("sysgym/ServingKnobs-v0", rollout_steps=12)


def test_serving_env_crash_and_invalid_action():
    import sysgym

    env = sysgym.make("ServingKnobs-v0", preset="serving-tiny", episode_length=3)
    obs, info = env.reset(seed=0)
    assert info["goodput"] > 0 and env.observation_space.contains(obs)
    space = serving_space()
    u = space.to_unit({**space.defaults(), "gpu_memory_utilization": 0.1})
    obs, r, _, _, info = env.step((2 * u - 1).astype(np.float32))
    assert info["crashed"] and "out of memory" in info["error"]
    assert r == pytest.approx(0.0)  # worst seen so far = the defaults' goodput
    assert obs[-1] == 1.0
    with pytest.raises(InvalidActionError):
        env.step(np.full(6, 1.5, np.float32))
