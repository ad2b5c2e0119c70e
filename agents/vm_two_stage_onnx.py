"""ONNX export of the two-stage VM policy: one graph per stage, dynamic in the numbers of VMs and PMs.

`export_onnx(policy, folder)` writes `vm_stage.onnx` (inputs vm (B, V, 17), pm (B, P, 8), progress (B, 1),
vm_mask (B, V) -> masked log-probs over VMs) and `dest_stage.onnx` (the same plus dest (B, 2P, 6),
chosen (B, 1), dest_mask (B, 2P) -> log-probs over destination nodes). `OnnxTwoStage(folder)` rolls them
out like `vm_two_stage.rollout` (onnxruntime), so the shipped policy runs without torch's training stack.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sysgym.agents.vm_two_stage import FORMAT

OPSET = 17


class _Stage(nn.Module):
    def __init__(self, policy, stage: int):
        super().__init__()
        self.policy, self.stage = policy, stage

    def forward(self, vm, pm, progress, dest, chosen, mask):
        obs = {"vm": vm, "pm": pm, "progress": progress, "dest": dest, "chosen": chosen}
        return self.policy.log_probs(obs, mask, self.stage)


def export_onnx(policy, folder: Path | str, meta: dict | None = None) -> list[Path]:
    import onnx

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    policy.eval()
    v, p = 7, 3
    ex = (torch.rand(1, v, 17), torch.rand(1, p, 8), torch.rand(1, 1), torch.rand(1, 2 * p, 6),
          torch.zeros(1, 1), None)
    names = ["vm", "pm", "progress", "dest", "chosen", "mask"]
    axes = {"vm": {0: "batch", 1: "vms"}, "pm": {0: "batch", 1: "pms"}, "progress": {0: "batch"},
            "dest": {0: "batch", 1: "nodes"}, "chosen": {0: "batch"}, "log_probs": {0: "batch", 1: "actions"}}
    out = []
    for stage, fname, n in ((0, "vm_stage.onnx", v), (1, "dest_stage.onnx", 2 * p)):
        path = folder / fname
        args = (*ex[:5], torch.ones(1, n, dtype=torch.bool))
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(_Stage(policy, stage), args, str(path), input_names=names, output_names=["log_probs"],
                              dynamic_axes={**axes, "mask": {0: "batch", 1: "actions"}}, opset_version=OPSET,
                              dynamo=False)
        model = onnx.load(str(path))
        entry = model.metadata_props.add()
        entry.key, entry.value = "sysgym", json.dumps({"format": FORMAT, "stage": stage, **(meta or {})}, default=str)
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
        out.append(path)
    return out


class OnnxTwoStage:
    """The exported graphs, rolled out with onnxruntime (same plans as the torch policy)."""

    def __init__(self, folder: Path | str):
        import onnxruntime as ort

        folder = Path(folder)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.sessions = [ort.InferenceSession(str(folder / f), opts, providers=["CPUExecutionProvider"])
                         for f in ("vm_stage.onnx", "dest_stage.onnx")]

    def rollout(self, inst) -> list[tuple[int, int, int]]:
        from sysgym.envs.vm_resched.env import VmReschedEnv

        env = VmReschedEnv(instance=inst, action_mode="two_stage")
        obs, _ = env.reset(seed=0)
        done = False
        while not done:
            stage = int(obs["stage"][0])
            sess = self.sessions[stage]
            feed = {k: obs[k][None].astype(np.float32) for k in ("vm", "pm", "progress", "dest", "chosen")}
            n = obs["vm"].shape[0] if stage == 0 else obs["dest"].shape[0]
            feed["mask"] = env.action_masks()[None, :n]
            wanted = {i.name for i in sess.get_inputs()}
            lp = sess.run(None, {k: v for k, v in feed.items() if k in wanted})[0][0]
            obs, _r, done, _t, _ = env.step(int(np.argmax(lp)))
        return env.decisions()
