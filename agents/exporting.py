"""`sysgym export RUN_DIR --format onnx|torchscript`: ship a trained policy as one self-describing file.

ONNX graph: inputs `obs` (float32, batch x obs_dim, the `gymnasium.spaces.flatten` layout) and, for
Discrete actions, `action_mask` (bool, batch x n) last; outputs `action` (int64, the masked greedy action)
first and `logits` (masked logits / Q-values). Box actions: `obs` -> `action` (in the env's bounds), `mean`.
The env id, env version, observation layout, algorithm and package versions ride along as JSON: in the
ONNX model's metadata (`sysgym` key) and in the TorchScript archive's extra file `sysgym.json`.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from sysgym.agents.common import AgentError, space_from_json
from sysgym.agents.policy import GreedyModule, load_sb3, resolve

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}


def export(run: str | Path, fmt: str = "onnx", output: str | Path | None = None, *, which: str = "final",
           opset: int = 17) -> Path:
    """Export a run directory's (or an SB3 zip's) policy; returns the written file."""
    if fmt not in FORMATS:
        raise AgentError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")
    torch.set_num_threads(1)
    src = resolve(run, which)
    model, meta = load_sb3(src)
    obs_space, act_space = space_from_json(meta["observation_space"]), space_from_json(meta["action_space"])
    module = GreedyModule(model, meta["algo"], obs_space, act_space).eval()
    discrete = isinstance(act_space, spaces.Discrete)
    meta = {**meta, "export_format": fmt, "exported_from": str(src),
            "inputs": ["obs", "action_mask"] if discrete else ["obs"],
            "outputs": ["action", "logits"] if discrete else ["action", "mean"]}
    out = Path(output) if output else src.parent / (src.stem + FORMATS[fmt])
    out.parent.mkdir(parents=True, exist_ok=True)
    example = _example(obs_space, act_space, batch=2)
    if fmt == "onnx":
        _export_onnx(module, example, meta, out, opset)
    else:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.9+ deprecates (but ships) TorchScript
            traced = torch.jit.trace(module, example, check_trace=False)
            torch.jit.save(traced, str(out), _extra_files={"sysgym.json": json.dumps(meta)})
    return out


def _example(obs_space: spaces.Space, act_space: spaces.Space, batch: int) -> tuple[torch.Tensor, ...]:
    obs_space.seed(0)
    flat = np.stack([spaces.flatten(obs_space, obs_space.sample()) for _ in range(batch)]).astype(np.float32)
    if isinstance(act_space, spaces.Discrete):
        return torch.from_numpy(flat), torch.ones((batch, int(act_space.n)), dtype=torch.bool)
    return (torch.from_numpy(flat),)


def _export_onnx(module: torch.nn.Module, example: tuple, meta: dict[str, Any], out: Path, opset: int) -> None:
    import onnx

    inputs, outputs = meta["inputs"], meta["outputs"]
    axes = {n: {0: "batch"} for n in inputs + outputs}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, str(out), input_names=inputs, output_names=outputs,
                          dynamic_axes=axes, opset_version=opset, dynamo=False)
    model = onnx.load(str(out))
    entry = model.metadata_props.add()
    entry.key, entry.value = "sysgym", json.dumps(meta)
    model.producer_name = "sysgym"
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
