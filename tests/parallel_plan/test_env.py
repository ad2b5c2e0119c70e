"""The env on the kit (masks, refusals, instance selection, decisions the evaluator scores) and its layout."""
import numpy as np
import pytest

import sysgym
from sysgym.envs.parallel_plan import evaluate, generate
from sysgym.envs.parallel_plan.env import DECISIONS, ParallelPlanEnv
from sysgym.errors import InvalidActionError, InvalidArgumentError, UnknownNameError
from sysgym.solution import Solution
from sysgym.testing import check_refusals, masked_random_action


def _finish(env, rng):
    done, reward, info = False, 0.0, {}
    while not done:
        _, reward, done, _, info = env.step(masked_random_action(env, rng))
    return reward, info


def test_masked_episodes_end_feasible_and_reward_is_scored():
    env = ParallelPlanEnv(preset="tiny")
    rng = np.random.default_rng(0)
    inst = env.instance
    for _ in range(20):
        env.reset(seed=1)
        reward, info = _finish(env, rng)
        est = inst.estimate(env.current_plan())
        assert est.feasible and info["iteration_time_s"] == est.iteration_time_s
        assert 0 < reward <= 1.0 + 1e-12 and reward == pytest.approx(env.best_time / est.iteration_time_s)


def test_decisions_are_what_the_evaluator_scores():
    env = ParallelPlanEnv(preset="tiny")
    env.reset(seed=0)
    assert env.decisions() is None  # no plan before the last decision
    _, info = _finish(env, np.random.default_rng(3))
    metrics = evaluate(env.instance, Solution(env.decisions(), float("nan"), "feasible", 0.0))
    assert env.decisions() == env.current_plan().to_dict() == info["plan"]
    assert metrics["iteration_time_s"] == info["iteration_time_s"]


def test_following_the_optimum_gives_reward_one():
    env = ParallelPlanEnv(preset="tiny")
    env.reset(seed=0)
    times = [env.instance.estimate(env.space.plan(k)).iteration_time_s for k in range(len(env.space))]
    reward = None
    for a in env.actions_for(int(np.argmin(times))):
        assert env.action_masks()[a]
        _, reward, _, _, _ = env.step(a)
    assert reward == pytest.approx(1.0)


def _to_masked_choice(env, seed=0):
    """Walk random valid choices until a candidate value of the current decision is masked; return it."""
    rng = np.random.default_rng(seed)
    for _ in range(100):
        env.reset(seed=0)
        while env.decision < len(DECISIONS):
            mask = env.action_masks()
            masked = np.flatnonzero(~mask[:len(env._table.cands[DECISIONS[env.decision]])])
            if len(masked):
                return int(masked[0])
            env.step(masked_random_action(env, rng))
    raise AssertionError("no masked candidate value reached")


def test_penalise_is_the_default_and_changes_nothing():
    env = ParallelPlanEnv(preset="tiny")
    bad = _to_masked_choice(env)
    alive, chosen = env.state.alive.copy(), env.state.chosen.copy()
    _, reward, term, trunc, info = env.step(bad)
    assert reward == -1.0 and not term and "has no legal plan that fits" in info["invalid_action"]
    assert np.array_equal(alive, env.state.alive) and np.array_equal(chosen, env.state.chosen)
    _, _, _, trunc, info = env.step(env.K)  # outside the space
    assert "outside Discrete" in info["invalid_action"]
    for _ in range(3 * len(DECISIONS)):  # refusals alone end the episode by truncation
        if trunc:
            break
        _, _, _, trunc, _ = env.step(bad)
    assert trunc


def test_raise_mode_names_the_decision_and_leaves_state():
    env = ParallelPlanEnv(preset="tiny", invalid_action="raise")
    bad = _to_masked_choice(env)
    before = env.state.alive.copy()
    with pytest.raises(InvalidActionError, match="ParallelPlanEnv: .* has no legal plan"):
        env.step(bad)
    assert np.array_equal(before, env.state.alive)
    assert check_refusals(env, count=50) >= 50  # the kit's checker: named errors, state unchanged


def test_invalid_action_vocabulary():
    with pytest.raises(UnknownNameError, match="invalid_action mode"):
        ParallelPlanEnv(preset="tiny", invalid_action="ignore")
    with pytest.raises(InvalidArgumentError, match="Box"):
        ParallelPlanEnv(preset="tiny", invalid_action="clip")


def test_registered_env_builds_from_preset_and_generator_params():
    env = sysgym.make("ParallelPlan-v0", preset="small", generator_params={"global_batch": 64})
    inst = env.unwrapped.instance
    assert inst.name == "parallel_plan/small?seed=0&global_batch=64" and inst.global_batch == 64
    env.reset(seed=0)
    assert env.unwrapped.instance is inst  # the instance is fixed when the env is built
    with pytest.raises(UnknownNameError, match="parallel_plan preset"):
        sysgym.make("ParallelPlan-v0", preset="huge")


def test_reset_plays_another_instance_that_fits_the_layout():
    small = ParallelPlanEnv(preset="small")
    tiny = ParallelPlanEnv(preset="tiny")
    big_k = max(small.K, tiny.K)
    env = ParallelPlanEnv(preset="tiny", max_candidates=big_k)
    assert env.layout_kwargs() == {"max_candidates": big_k} and env.action_space.n == big_k
    env.reset(seed=0, options={"instance": small.instance})
    assert env.instance is small.instance and env.best_time == small.best_time
    _finish(env, np.random.default_rng(0))
    assert evaluate(small.instance, env.decisions())["feasible"]
    env.reset(seed=0)
    assert env.instance is tiny.instance or env.instance.digest() == tiny.instance.digest()
    narrow = ParallelPlanEnv(preset="tiny")
    if small.K > narrow.K:
        with pytest.raises(InvalidArgumentError, match="max_candidates"):
            narrow.reset(options={"instance": small.instance})
        assert narrow.instance.digest() == tiny.instance.digest()  # it keeps the instance it had
    with pytest.raises(InvalidArgumentError, match="max_candidates"):
        ParallelPlanEnv(preset="tiny", max_candidates=1)


def test_an_instance_without_a_feasible_plan_is_refused_by_name():
    inst = generate(model="gpt-1t", cluster="dgx-a100", nodes=1, seq_len=2048, global_batch=8)
    with pytest.raises(sysgym.InvalidInstanceError, match="no feasible plan"):
        ParallelPlanEnv(instance=inst)
