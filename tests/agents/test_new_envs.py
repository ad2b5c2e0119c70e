"""Every registered env (but the two below): the default agent for its action space trains a few steps, exports
to ONNX, and the exported file acts like the model. (Each family's `.agent` solver is checked against its
evaluator in tests/test_conformance.py.)"""
from __future__ import annotations

import numpy as np
import pytest

import sysgym
from sysgym.agents import export, load
from sysgym.agents.algos import default_algo
from sysgym.agents.policy import load_sb3
from sysgym.agents.training import train
from sysgym.testing import masked_random_action
from tests.agents.conftest import compose

SKIP = {"sysgym/VmResched-v0": "covered by the other tests",
        "sysgym/PgKnobs-v0": "measures a real PostgreSQL server per step (too slow for a smoke test)"}
ENVS = [e for e in sysgym.list_envs() if e not in SKIP]


@pytest.mark.parametrize("env_id", ENVS)
def test_default_agent_trains_and_exports(env_id, tmp_path):
    env = sysgym.make(env_id)
    env.reset(seed=0)
    algo = default_algo(env)
    steps = ["agent.params.n_steps=32", "agent.params.batch_size=32", "agent.params.n_epochs=1"] \
        if algo != "sac" else ["agent.params.learning_starts=16", "agent.params.batch_size=16"]
    res = train(compose([f"env_id={env_id}", f"agent={algo}", "agent.total_timesteps=32", "agent.n_envs=1",
                         "agent.extractor=mlp", "agent.action_head=null", "eval.instances=0", "checkpoint_freq=0",
                         "progress_bar=false", "tensorboard=false", *steps]), tmp_path)
    assert res.timesteps >= 32
    pol = load(export(tmp_path, "onnx"))
    model, _ = load_sb3(tmp_path / "model.zip")
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=1)
    masked = hasattr(env.unwrapped, "action_masks")
    for _ in range(20):
        mask = np.array(env.unwrapped.action_masks(), bool) if masked else None
        a = pol.act(obs, mask)
        ref = model.predict(obs, deterministic=True, **({"action_masks": mask} if masked else {}))[0]
        if masked:
            assert a == int(ref) and mask[a]
        else:
            np.testing.assert_allclose(a, ref, atol=1e-5)
        obs, _, term, trunc, _ = env.step(masked_random_action(env, rng))
        if term or trunc:
            obs, _ = env.reset()
