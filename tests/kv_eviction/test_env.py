"""sysgym/KvEviction-v0 keeps the env contract, its return is the evaluator's loss increase, and every named
policy driven in the env (PolicyAgent) gives the simulator's schedule and metrics exactly."""
import numpy as np
import pytest

import sysgym
from sysgym.envs.kv_eviction import KvInstance, PolicyAgent
from sysgym.envs.kv_eviction.env import KvEvictionEnv
from sysgym.envs.kv_eviction.evaluate import evaluate
from sysgym.envs.kv_eviction.simulator import make_policy, run_policy
from sysgym.errors import InvalidActionError, InvalidArgumentError
from sysgym.testing import check_env

POLICIES = ["random", "streaming_llm", "h2o", "tova", "snapkv"]  # every named policy that evicts


def test_env_contract_as_registered():
    check_env("sysgym/KvEviction-v0")


def _run_episodes(env, instance, agent_for):
    parts, total = [], 0.0
    for options in KvEvictionEnv.episodes(instance):
        obs, info = env.reset(seed=0, options=options)
        agent = agent_for(env)
        done = False
        while not done:
            mask = env.unwrapped.action_masks()
            obs, reward, term, trunc, info = env.step(agent.act(obs, mask))
            assert "invalid_action" not in info
            total += reward
            done = term or trunc
        parts.append(env.unwrapped.decisions())
    return KvEvictionEnv.combine(parts), total


@pytest.mark.parametrize("name", POLICIES)
def test_env_driven_and_simulator_driven_runs_are_identical(name, tiny_instance):
    """One implementation per policy: the env's episodes give run_policy's schedule, hence the same metrics."""
    env = sysgym.make("KvEviction-v0", instance=tiny_instance)
    agent = None

    def agent_for(e):
        nonlocal agent
        agent = agent or PolicyAgent(make_policy(name, granularity="sequence"), e, seed=3)
        return agent

    decisions, total = _run_episodes(env, tiny_instance, agent_for)
    sim = run_policy(tiny_instance, make_policy(name, granularity="sequence"), seed=3, chunk=1)
    # The simulator also evicts before the last token (T-1), whose prediction nothing scores; an episode ends when
    # every scored position (P .. T-2) is decoded. Up to that step the schedules are the same.
    last = tiny_instance.seq_len - 1
    np.testing.assert_array_equal(np.minimum(decisions["evict_step"], last), np.minimum(sim.evict_step, last))
    m_env, m_sim = evaluate(tiny_instance, decisions), evaluate(tiny_instance, sim.decisions())
    assert m_env == m_sim
    # each episode's return is minus its sequence's loss increase; the evaluator's is their mean
    assert total == pytest.approx(-m_env["loss_increase"] * tiny_instance.num_sequences, abs=1e-5)
    if name != "random":  # deterministic policies do not depend on how the simulator batches sequences
        batched = run_policy(tiny_instance, make_policy(name, granularity="sequence"), seed=3)
        np.testing.assert_array_equal(batched.evict_step, sim.evict_step)


@pytest.mark.parametrize("policy", ["streaming_llm", "h2o", "tova"])
def test_episode_return_is_minus_the_evaluators_loss_increase(policy):
    env = sysgym.make("KvEviction-v0", seq_len=64, budget=12)
    agent = PolicyAgent(make_policy(policy, granularity="sequence"), env)
    obs, info = env.reset(seed=5)
    total, done = 0.0, False
    while not done:
        obs, reward, term, trunc, info = env.step(agent.act(obs))
        total += reward
        done = term or trunc
    base = env.unwrapped
    inst = KvInstance(tokens=base.tokens.numpy(), budget=base.budget, prompt_len=base.prompt_len, model="tiny")
    m = evaluate(inst, base.decisions())
    assert total == pytest.approx(-m["loss_increase"], abs=1e-5)
    assert info["loss_increase"] == pytest.approx(m["loss_increase"], abs=1e-5)


def test_streaming_llm_evicts_the_oldest_non_sink():
    env = sysgym.make("KvEviction-v0", seq_len=64, budget=12)
    obs, _ = env.reset(seed=0)
    agent = PolicyAgent("streaming_llm", env)
    first = [agent.act(obs)]
    while True:  # the prompt of 32 overflows a budget of 12: the first decision evicts 21 tokens at one step
        obs, *_ = env.step(first[-1])
        if env.unwrapped.t != 32:
            break
        first.append(agent.act(obs))
    assert first == list(range(4, 25))


def test_out_of_mask_action_is_refused_and_leaves_the_state():
    env = sysgym.make("KvEviction-v0", seq_len=64, budget=12, invalid_action="raise")
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
    penalised = sysgym.make("KvEviction-v0", seq_len=64, budget=12)
    penalised.reset(seed=0)
    _, reward, term, trunc, info = penalised.step(40)
    assert reward == -1.0 and "not in the cache" in info["invalid_action"] and not (term or trunc)


def test_bad_arguments_are_named_before_any_work(tiny_instance):
    with pytest.raises(InvalidArgumentError, match="nothing to evict"):
        sysgym.make("KvEviction-v0", seq_len=64, budget=63)
    with pytest.raises(InvalidArgumentError, match="context"):
        sysgym.make("KvEviction-v0", seq_len=1000)
    with pytest.raises(sysgym.UnknownNameError, match="preset"):
        sysgym.make("KvEviction-v0", preset="huge")
    env = sysgym.make("KvEviction-v0", seq_len=32)
    with pytest.raises(InvalidArgumentError, match="sized for 32"):
        env.reset(seed=0, options={"instance": tiny_instance})
    with pytest.raises(InvalidArgumentError, match="granularity"):
        PolicyAgent("h2o", env)  # per-head by default: the env's cache is one per sequence
    with pytest.raises(InvalidArgumentError, match="sequence 7"):
        sysgym.make("KvEviction-v0").reset(seed=0, options={"instance": tiny_instance, "sequence": 7})
