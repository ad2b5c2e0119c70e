"""sysgym/KvEviction-v0 keeps the env contract and its return is the evaluator's loss increase."""
import numpy as np
import pytest

import sysgym
from sysgym.envs.kv_eviction import KvInstance, make_policy
from sysgym.envs.kv_eviction.evaluate import evaluate
from sysgym.errors import InvalidActionError
from sysgym.testing import check_env


def test_env_contract():
    check_env("sysgym/KvEviction-v0", checker_kwargs={"invalid_action": "penalise"}, rollout_steps=100)


@pytest.mark.parametrize("policy", ["streaming_llm", "h2o", "tova"])
def test_episode_return_is_minus_the_evaluators_loss_increase(policy):
    env = sysgym.make("KvEviction-v0", seq_len=64, budget=12)
    pol = make_policy(policy)
    obs, info = env.reset(seed=5)
    total, done = 0.0, False
    while not done:
        obs, reward, term, trunc, info = env.step(pol.act(obs))
        total += reward
        done = term or trunc
    base = env.unwrapped
    inst = KvInstance(tokens=base.tokens.numpy(), budget=base.budget, prompt_len=base.prompt_len, model="tiny")
    m = evaluate(inst, base.schedule())
    assert total == pytest.approx(-m["loss_increase"], abs=1e-5)
    assert info["loss_increase"] == pytest.approx(m["loss_increase"], abs=1e-5)


def test_streaming_llm_act_evicts_the_oldest_non_sink():
    env = sysgym.make("KvEviction-v0", seq_len=64, budget=12)
    obs, _ = env.reset(seed=0)
    assert make_policy("streaming_llm").act(obs) == 4


def test_out_of_mask_action_raises_and_leaves_state():
    env = sysgym.make("KvEviction-v0", seq_len=64, budget=12)
    env.reset(seed=0)
    base = env.unwrapped
    mask = base.action_masks()
    assert mask[:32].all() and not mask[32:].any()
    before = base.state.present.copy()
    with pytest.raises(InvalidActionError, match="not in the cache"):
        env.step(40)
    np.testing.assert_array_equal(before, base.state.present)
    env.step(10)
    with pytest.raises(InvalidActionError, match="token 10"):
        env.step(10)
