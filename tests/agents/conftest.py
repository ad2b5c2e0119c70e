"""Shared fixtures: one short MaskablePPO run on VmResched-v0 (tiny preset), trained once per session."""
from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)

TINY = ["env.preset=tiny", "progress_bar=false", "tensorboard=false"]


def compose(overrides: list[str]):
    from hydra import compose as hcompose
    from hydra import initialize_config_module

    with initialize_config_module(config_module="sysgym.conf", version_base="1.3"):
        return hcompose(config_name="train", overrides=overrides)


@pytest.fixture(scope="session")
def vm_run(tmp_path_factory):
    """512 steps, 2 envs, evaluation and checkpoint every 256 steps."""
    from sysgym.agents.training import train

    run = tmp_path_factory.mktemp("vm_run")
    cfg = compose(TINY + ["agent.total_timesteps=512", "agent.n_envs=2", "eval.freq=256", "eval.instances=3",
                          "checkpoint_freq=256", "tensorboard=true"])
    res = train(cfg, run)
    return run, res


@pytest.fixture(scope="session")
def vm_onnx(vm_run, tmp_path_factory):
    from sysgym.agents import export

    return export(vm_run[0], "onnx", tmp_path_factory.mktemp("export") / "policy.onnx")


@pytest.fixture(scope="session")
def vm_obs(vm_run):
    """1,000 observations and masks from random masked rollouts of VmResched-v0 (tiny), with the
    observation options the run was trained on (the default agent's `observation="pairs"`)."""
    import numpy as np

    import sysgym
    from sysgym.agents.common import read_meta
    from sysgym.testing import masked_random_action

    kwargs = read_meta(vm_run[0] / "agent.json")["env_kwargs"]
    assert kwargs.get("observation") == "pairs", "the default VM agent should train on the pairs observation"
    env = sysgym.make("VmResched-v0", preset="tiny", **kwargs)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    out, masks = [], []
    while len(out) < 1000:
        mask = np.array(env.unwrapped.action_masks(), copy=True)
        out.append(obs)
        masks.append(mask)
        obs, _, term, trunc, _ = env.step(masked_random_action(env, rng))
        if term or trunc:
            obs, _ = env.reset(seed=int(rng.integers(2**31)))
    return env.observation_space, out, masks
