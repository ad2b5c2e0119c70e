"""Both envs keep the env contract; the registered schedulers' policies drive them to valid records."""
import numpy as np
import pytest

import sysgym
from sysgym.envs.llm_serving import generate
from sysgym.envs.llm_serving.evaluate import evaluate
from sysgym.errors import InvalidActionError
from sysgym.solvers.llm_serving import policy
from sysgym.testing import check_env


def test_serving_env_contract():
    check_env("sysgym/LlmServing-v0", checker_kwargs={"invalid_action": "penalise"}, preset="small")


def test_routing_env_contract():
    check_env("sysgym/LlmRouting-v0", num_requests=150)


@pytest.mark.parametrize("name", ["vllm", "sjf", "vtc"])
def test_policy_episode_scores_like_the_evaluator(name):
    inst = generate(preset="small", seed=1, num_requests=120)
    env = sysgym.make("LlmServing-v0", instance=inst)
    obs, _ = env.reset(seed=0)
    pol = policy(name)
    total, done = 0.0, False
    while not done:
        obs, reward, done, _, _ = env.step(pol.act(obs))
        total += reward
    metrics = evaluate(inst, env.unwrapped.records())
    assert total == pytest.approx(-metrics["e2e_mean"], rel=1e-6)  # return = minus mean latency


def test_masked_actions_raise_and_leave_state_alone():
    env = sysgym.make("LlmServing-v0", preset="small")
    env.reset(seed=0)
    mask = env.unwrapped.action_masks()
    bad = int(np.flatnonzero(~mask)[0])
    before = env.unwrapped.render()
    with pytest.raises(InvalidActionError, match="masked"):
        env.step(bad)
    assert env.unwrapped.render() == before


def test_routing_return_is_minus_mean_latency():
    env = sysgym.make("LlmRouting-v0", num_requests=100, num_replicas=2)
    env.reset(seed=0)
    total, done, k = 0.0, False, 0
    while not done:
        _, r, done, _, info = env.step(k % 2)
        total += r
        k += 1
    assert total == pytest.approx(-info["mean_latency"], rel=1e-9)
