"""sysgym/ServerlessKeepAlive-v0: the kit's checks, masks and refusals, and the return equals minus the cost."""
import numpy as np
import pytest

import sysgym
from sysgym.envs.serverless import evaluate, generate
from sysgym.envs.serverless.env import N_KEEP, N_PLANS, ServerlessKeepAliveEnv
from sysgym.envs.serverless.simulator import KEEP_ALIVE_S, PREWARM_S
from sysgym.errors import InvalidActionError, InvalidArgumentError
from sysgym.testing import check_env, masked_random_action
from tests.serverless.conftest import hand_instance


def test_env_contract_on_small():
    check_env("sysgym/ServerlessKeepAlive-v0", preset="small", rollout_steps=300, refusals=30)


def test_random_rollout_return_is_minus_the_evaluators_cost():
    inst = generate(preset="small", seed=4, capacity_fraction=0.2)  # a tight pool: evictions happen
    env = sysgym.make("ServerlessKeepAlive-v0", instance=inst, max_functions=32)
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=0)
    assert obs["functions"].shape == (32, 7) and obs["functions"][inst.num_functions:].sum() == 0
    total, done, evictions = 0.0, False, 0
    while not done:
        mask = env.unwrapped.action_masks()
        if env.unwrapped.request.kind == "evict":
            evictions += 1
            assert not mask[:N_PLANS].any() and mask[N_PLANS:].sum() == len(env.unwrapped.request.candidates)
        else:
            assert mask[:N_PLANS].sum() == N_PLANS - (len(PREWARM_S) - 1) and not mask[N_PLANS:].any()
        obs, r, done, _, info = env.step(masked_random_action(env, rng))
        assert env.observation_space.contains(obs)
        total += r
    m = evaluate(inst, env.unwrapped.decisions())
    assert -total == pytest.approx(m["cost"], rel=1e-9)
    assert info["cold_starts"] == m["cold_starts"] and evictions > 0


def test_actions_decode_and_encode():
    env = ServerlessKeepAliveEnv(instance=hand_instance())
    for a in (0, 7, N_KEEP + 3, N_PLANS - 1):
        assert env.encode_plan(*env.decode(a)) == a
    assert env.decode(N_PLANS + 1) == 1 and env.encode_eviction(1) == N_PLANS + 1
    assert env.decode(N_KEEP * 2 + len(KEEP_ALIVE_S) - 1) == (PREWARM_S[2], float("inf"))
    with pytest.raises(InvalidArgumentError, match="grid"):
        env.encode_plan(61.0, 0.0)


def test_refusals_raise_or_penalise_without_changing_state():
    env = sysgym.make("ServerlessKeepAlive-v0", instance=hand_instance(), invalid_action="raise")
    env.reset(seed=0)
    before = env.unwrapped.snapshot()
    bad = N_KEEP * 1 + 0  # a pre-warm with a zero keep-alive
    with pytest.raises(InvalidActionError, match="pre-warm needs a keep-alive"):
        env.step(bad)
    with pytest.raises(InvalidActionError, match="needs a plan"):
        env.step(N_PLANS)
    after = env.unwrapped.snapshot()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    pen = sysgym.make("ServerlessKeepAlive-v0", instance=hand_instance())
    pen.reset(seed=0)
    _, r, done, _, info = pen.step(bad)
    assert r == -1.0 and not done and "invalid_action" in info


def test_env_refuses_an_instance_larger_than_its_layout():
    env = sysgym.make("ServerlessKeepAlive-v0", preset="tiny")
    with pytest.raises(InvalidArgumentError, match="max_functions"):
        env.reset(seed=0, options={"instance": generate(preset="small", seed=0)})
