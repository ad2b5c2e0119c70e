"""ONNX / TorchScript export: inputs and outputs, parity with the torch policy on 1,000 observations,
metadata, and refusal of a file exported for another env version."""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from gymnasium import spaces

import sysgym
from sysgym.agents import export, load
from sysgym.agents.common import EnvVersionError
from sysgym.agents.policy import load_sb3


def _flat(space, obs):
    return np.stack([spaces.flatten(space, o) for o in obs]).astype(np.float32)


def test_onnx_graph_inputs_outputs_and_metadata(vm_onnx):
    model = onnx.load(str(vm_onnx))
    assert [i.name for i in model.graph.input] == ["obs", "action_mask"]
    assert [o.name for o in model.graph.output][0] == "action"
    meta = json.loads({p.key: p.value for p in model.metadata_props}["sysgym"])
    assert meta["env_id"] == "sysgym/VmResched-v0" and meta["env_version"] == 0
    space = sysgym.make("VmResched-v0", preset="tiny", observation="pairs").observation_space
    assert meta["sysgym_version"] == sysgym.__version__ and meta["obs_dim"] == spaces.flatdim(space)
    pair, pm = space["pair"].shape, space["pm"].shape  # gymnasium orders Dict keys: pair, pm, progress, vm
    n_pair = pair[0] * pair[1] * pair[2]
    assert meta["obs_layout"][0] == {"key": "pair", "kind": "Box", "shape": list(pair), "start": 0, "end": n_pair}
    assert meta["obs_layout"][1] == {"key": "pm", "kind": "Box", "shape": list(pm), "start": n_pair,
                                     "end": n_pair + pm[0] * pm[1]}


def test_onnx_parity_with_the_torch_policy_on_1000_observations(vm_run, vm_onnx, vm_obs):
    space, obs, masks = vm_obs
    model, _ = load_sb3(vm_run[0] / "model.zip")
    torch.set_num_threads(1)
    ref = np.array([int(model.predict(o, action_masks=m, deterministic=True)[0]) for o, m in zip(obs, masks)])
    sess = ort.InferenceSession(str(vm_onnx), providers=["CPUExecutionProvider"])
    act, logits = sess.run(None, {"obs": _flat(space, obs), "action_mask": np.stack(masks)})
    assert act.shape == (1000,) and logits.shape == (1000, len(masks[0]))
    np.testing.assert_array_equal(act, ref)
    assert np.stack(masks)[np.arange(1000), act].all(), "a greedy action outside the mask"
    assert len(np.unique(ref)) > 5  # the observations are varied enough to mean something


def test_torchscript_and_loaded_policies_agree(vm_run, vm_onnx, vm_obs, tmp_path):
    space, obs, masks = vm_obs
    pt = export(vm_run[0], "torchscript", tmp_path / "p.pt")
    pols = [load(vm_run[0]), load(vm_onnx), load(pt)]
    assert [p.kind for p in pols] == ["sb3", "onnx", "torchscript"]
    flat, m = _flat(space, obs[:300]), np.stack(masks[:300])
    acts = [p.act_batch(flat, m)[0] for p in pols]
    np.testing.assert_array_equal(acts[0], acts[1])
    np.testing.assert_array_equal(acts[0], acts[2])
    assert pols[1].act(obs[0], masks[0]) == acts[0][0]  # one dict observation, as the env returns it


def test_a_file_for_another_env_version_is_refused(vm_onnx, tmp_path):
    model = onnx.load(str(vm_onnx))
    for p in model.metadata_props:
        if p.key == "sysgym":
            meta = json.loads(p.value)
            meta.update(env_id="sysgym/VmResched-v1", env_version=1)
            p.value = json.dumps(meta)
    other = tmp_path / "v1.onnx"
    onnx.save(model, str(other))
    with pytest.raises(EnvVersionError, match=r"VmResched-v1.*VmResched-v0"):
        load(other)


def test_corrupted_export_names_the_file(vm_onnx, tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(vm_onnx.read_bytes()[:500])
    with pytest.raises(sysgym.agents.common.AgentFileError, match="broken.onnx"):
        load(bad)


def test_policy_builds_the_env_it_was_trained_for(vm_onnx):
    pol = load(vm_onnx)
    env = pol.make_env(preset="tiny")
    obs, _ = env.reset(seed=3)
    assert "pair" in obs and pol.flatten(obs).shape == (pol.obs_dim,)
    assert env.unwrapped.action_masks()[pol.act(obs, env.unwrapped.action_masks())]
