"""`sysgym/JobSched-v0`: the shared env checks, the reward identity, masks and observations."""
import numpy as np
import pytest

import sysgym
from sysgym.envs.job_sched import evaluate, generate, make_policy, simulate
from sysgym.envs.job_sched.env import PolicyAgent
from sysgym.errors import InvalidActionError
from sysgym.testing import check_env


def test_check_env_graph_and_flat():
    check_env("sysgym/JobSched-v0", checker_kwargs={"invalid_action": "penalise"}, rollout_steps=300)
    check_env("sysgym/JobSched-v0", checker_kwargs={"invalid_action": "penalise"}, rollout_steps=100,
              observation="flat", reward="user_fair")


def _random_episode(env, seed):
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    ret, done, steps = 0.0, False, 0
    while not done:
        mask = env.unwrapped.action_masks()
        _, r, done, trunc, _ = env.step(int(rng.choice(np.flatnonzero(mask))))
        assert not trunc
        ret += r
        steps += 1
    return ret, steps


@pytest.mark.parametrize("seed", [0, 7])
def test_minus_return_over_jobs_is_the_mean_jct(seed):
    env = sysgym.make("sysgym/JobSched-v0")
    ret, steps = _random_episode(env, seed)
    base = env.unwrapped
    m = evaluate(base.instance, base.sim.schedule())  # the evaluator re-checks the executed schedule
    assert steps > base.instance.num_jobs
    assert -ret / base.instance.num_jobs == pytest.approx(m["mean_response_s"], rel=1e-9)


def test_user_fair_reward_is_the_mean_of_user_means():
    env = sysgym.make("sysgym/JobSched-v0", reward="user_fair")
    ret, _ = _random_episode(env, 3)
    m = evaluate(env.unwrapped.instance, env.unwrapped.sim.schedule())
    assert -ret == pytest.approx(m["user_mean_response_of_means_s"], rel=1e-9)
    assert m["user_mean_response_of_means_s"] != pytest.approx(m["mean_response_s"], rel=1e-3)


def test_policy_agent_in_the_env_matches_the_simulator():
    env = sysgym.make("sysgym/JobSched-v0")
    for name in ("fifo", "uwfq", "srpt"):
        obs, _ = env.reset(seed=11)
        agent = PolicyAgent(make_policy(name), env)
        done, ret = False, 0.0
        while not done:
            obs, r, done, _, _ = env.step(agent.act(obs))
            ret += r
        inst = env.unwrapped.instance
        assert -ret / inst.num_jobs == pytest.approx(simulate(inst, name).metrics["mean_response_s"], rel=1e-9)


def test_out_of_mask_action_raises_and_leaves_state():
    env = sysgym.make("sysgym/JobSched-v0")
    obs, _ = env.reset(seed=0)
    base = env.unwrapped
    mask = base.action_masks().copy()
    bad = int(np.flatnonzero(~mask)[0])
    with pytest.raises(InvalidActionError, match="not runnable|empty|only"):
        env.step(bad)
    np.testing.assert_array_equal(mask, base.action_masks())
    assert mask.any()


def test_graph_observation_shapes_and_edges():
    env = sysgym.make("sysgym/JobSched-v0", max_jobs=8)
    obs, _ = env.reset(seed=2)
    N = 8 * 20
    assert obs["node_features"].shape == (N, 12) and obs["node_mask"].shape == (N,)
    valid = obs["node_mask"] > 0
    assert valid.any()
    e = obs["edges"][obs["edge_mask"] > 0]
    assert valid[e[:, 0]].all() and valid[e[:, 1]].all()  # edges join real nodes
    assert (obs["node_job"][e[:, 0]] == obs["node_job"][e[:, 1]]).all()  # within one job
    ready = obs["node_features"][:, 4] > 0
    mask = env.unwrapped.action_masks().reshape(N, -1)
    np.testing.assert_array_equal(mask.any(1), ready)


def test_fixed_instance_and_size_checks():
    inst = generate(preset="tiny", seed=0)
    env = sysgym.make("sysgym/JobSched-v0", instance=inst)
    env.reset(seed=0)
    assert env.unwrapped.instance is inst
    with pytest.raises(ValueError, match="executors"):
        env.reset(options={"instance": generate(preset="small", seed=0)})


def test_sb3_maskable_ppo_consumes_the_graph_observation():
    torch = pytest.importorskip("torch")
    sb3c = pytest.importorskip("sb3_contrib")
    torch.set_num_threads(1)
    env = sysgym.make("sysgym/JobSched-v0", max_jobs=4, num_jobs=6)
    model = sb3c.MaskablePPO("MultiInputPolicy", env, n_steps=32, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(32)
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, action_masks=env.unwrapped.action_masks(), deterministic=True)
    assert env.unwrapped.action_masks()[int(action)]
