"""The generic paths on plain Gymnasium envs: PPO on CartPole-v1 (Discrete), SAC on Pendulum-v1 (Box)."""
from __future__ import annotations

import gymnasium
import numpy as np
import onnx
import pytest
import torch

from sysgym.agents import export, load
from sysgym.agents.policy import load_sb3
from sysgym.agents.training import train
from tests.agents.conftest import compose

COMMON = ["progress_bar=false", "tensorboard=false", "checkpoint_freq=0", "vec_env=dummy"]


def _observations(env_id, n=1000):
    env = gymnasium.make(env_id)
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    out = []
    while len(out) < n:
        out.append(obs)
        obs, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            obs, _ = env.reset()
    return np.array(out, np.float32)


def test_ppo_cartpole_trains_exports_and_matches(tmp_path):
    res = train(compose(COMMON + ["agent=ppo", "env_id=CartPole-v1", "agent.total_timesteps=512",
                                  "eval.freq=256", "eval.instances=2"]), tmp_path)
    assert res.metric == "episode_return" and len(res.history) == 3
    onnx_path = export(tmp_path, "onnx")
    assert [i.name for i in onnx.load(str(onnx_path)).graph.input] == ["obs", "action_mask"]
    model, _ = load_sb3(tmp_path / "model.zip")
    obs = _observations("CartPole-v1")
    torch.set_num_threads(1)
    ref = model.predict(obs, deterministic=True)[0]
    pol = load(onnx_path)
    np.testing.assert_array_equal(pol.act_batch(obs)[0], ref)
    # a mask is honoured even though CartPole has none of its own
    assert pol.act(obs[0], np.array([False, True])) == 1


def test_sac_pendulum_trains_exports_and_matches(tmp_path):
    res = train(compose(COMMON + ["agent=sac", "env_id=Pendulum-v1", "agent.total_timesteps=300",
                                  "agent.params.learning_starts=100", "eval.freq=0", "eval.instances=1"]), tmp_path)
    assert res.timesteps == 300
    onnx_path = export(tmp_path, "onnx")
    assert [i.name for i in onnx.load(str(onnx_path)).graph.input] == ["obs"]
    model, _ = load_sb3(tmp_path / "model.zip")
    obs = _observations("Pendulum-v1")
    ref = model.predict(obs, deterministic=True)[0]
    for pol in (load(onnx_path), load(export(tmp_path, "torchscript"))):
        act = pol.act_batch(obs)[0]
        np.testing.assert_allclose(act, ref, atol=1e-5)
        assert (np.abs(act) <= 2.0).all()
        assert pol.act(obs[0]).shape == (1,)


def test_dqn_is_refused_on_a_continuous_env(tmp_path):
    from sysgym.agents.common import AgentError

    with pytest.raises(AgentError, match="dqn cannot act in Pendulum-v1"):
        train(compose(COMMON + ["agent=dqn", "env_id=Pendulum-v1"]), tmp_path)
