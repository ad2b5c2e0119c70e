"""sysgym/SessionKv-v0: the env contract as registered, the return is the evaluator's, and every named policy
driven in the env gives the simulator's holdings and metrics exactly."""
import numpy as np
import pytest

import sysgym
from sysgym.envs.kv_sessions import SESSION_POLICIES, evaluate, simulate
from sysgym.envs.kv_sessions.env import PolicyAgent
from sysgym.errors import InvalidActionError, InvalidInstanceError
from sysgym.testing import check_env


def test_env_contract_as_registered():
    check_env("sysgym/SessionKv-v0")


def _episode(env, act, **reset):
    obs, info = env.reset(**reset)
    start, total, done = info["recompute_tokens"], 0.0, False
    while not done:
        obs, r, term, trunc, info = env.step(act(obs))
        total += r
        done = term or trunc
    return start, total, info


@pytest.mark.parametrize("name", SESSION_POLICIES)
@pytest.mark.parametrize("preset,seed", [("agent", 0), ("chat", 1), ("tiny", 2)])
def test_env_driven_and_simulator_driven_runs_are_identical(name, preset, seed):
    """The env's pool follows the policy's expiry and victims, the agent its admissions: same holdings."""
    w = sysgym.get_family("kv_sessions").generator(seed=seed, preset=preset)
    env = sysgym.make("SessionKv-v0", instance=w, pool=name)
    agent = PolicyAgent(name, env)
    _, _, info = _episode(env, agent.act, seed=0)
    sim = simulate(w, name)
    assert sorted(env.unwrapped.decisions()) == sorted(sim.items)
    assert evaluate(w, env.unwrapped.decisions()) == evaluate(w, sim.items)
    assert info["recompute_tokens"] == sim.recompute_tokens


def test_return_matches_the_evaluator_and_always_retaining_is_lru():
    env = sysgym.make("SessionKv-v0", num_sessions=10, capacity=6000)
    start, total, info = _episode(env, lambda obs: 1, seed=4)
    base = env.unwrapped
    m = evaluate(base.w, base.decisions(), serve=False)
    assert m["recompute_tokens"] == info["recompute_tokens"]
    assert info["recompute_tokens"] - start == pytest.approx(-total * 1000)
    assert m["recompute_tokens"] == simulate(base.w, "lru").recompute_tokens


def test_registered_default_is_the_old_env():
    """As registered: 8 agent sessions, a pool of 8000 tokens, LRU eviction (the old SessionKv-v0's defaults)."""
    env = sysgym.make("SessionKv-v0")
    env.reset(seed=0)
    w = env.unwrapped.w
    assert w.name.startswith("kv_sessions/small?") and w.num_sessions == 8 and w.capacity == 8000
    assert env.unwrapped.pool_policy.name == "lru"


def test_refused_actions_change_nothing():
    env = sysgym.make("SessionKv-v0", invalid_action="raise")
    env.reset(seed=0)
    before = env.unwrapped.snapshot()
    with pytest.raises(InvalidActionError, match="not 0"):
        env.step(2)
    for key, value in env.unwrapped.snapshot().items():
        np.testing.assert_array_equal(value, before[key])
    penalised = sysgym.make("SessionKv-v0")
    penalised.reset(seed=0)
    _, reward, term, trunc, info = penalised.step(7)
    assert reward == -1.0 and "invalid_action" in info and not term


def test_bad_arguments_are_named():
    with pytest.raises(sysgym.UnknownNameError, match="session policy"):
        sysgym.make("SessionKv-v0", pool="fifo")
    with pytest.raises(sysgym.UnknownNameError, match="preset"):
        sysgym.make("SessionKv-v0", preset="huge")
    env = sysgym.make("SessionKv-v0")
    one_turn = sysgym.get_family("kv_sessions").generator(seed=0, preset="tiny", mean_turns=1)
    with pytest.raises(InvalidInstanceError, match="no retention decision"):
        env.reset(seed=0, options={"instance": one_turn})
