"""Greedy policies over flattened observations: in torch, TorchScript and ONNX, with one `act` call.

`GreedyModule(model)` wraps a trained SB3 model as `forward(obs_flat, mask) -> (action, logits)`:
`obs_flat` is the observation as `gymnasium.spaces.flatten` lays it out (float32, batch first), `mask`
the boolean action mask (Discrete actions); the action is the argmax of the masked logits (Q-values for
DQN). Box actions (SAC/TD3/DDPG/PPO) return the deterministic action in the env's bounds and take no mask.
The same module is what `export()` writes, so the exported file and the torch policy agree.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from sysgym.agents.common import (
    META_FILE,
    AgentError,
    AgentFileError,
    check_env_version,
    read_meta,
    space_from_json,
)

MASK_FILL = -1e8  # what sb3-contrib's MaskableCategorical puts on masked logits


class GreedyModule(nn.Module):
    def __init__(self, model: Any, algo: str, observation_space: spaces.Space, action_space: spaces.Space):
        super().__init__()
        self.algo = algo
        self.discrete = isinstance(action_space, spaces.Discrete)
        if not self.discrete and not isinstance(action_space, spaces.Box):
            raise AgentError(f"export/greedy policies support Discrete and Box actions; got {action_space}")
        self.policy = model.policy
        self.policy.set_training_mode(False)
        self.is_dict = isinstance(observation_space, spaces.Dict)
        items = observation_space.spaces.items() if self.is_dict else [(None, observation_space)]
        self.parts: list[tuple[Any, int, int, tuple[int, ...], bool]] = []
        pos = 0
        normalize = bool(getattr(self.policy, "normalize_images", False))
        from stable_baselines3.common.preprocessing import is_image_space

        for key, sub in items:
            size = int(spaces.flatdim(sub))
            shape = tuple(sub.shape) if isinstance(sub, spaces.Box) else (size,)
            scale = isinstance(sub, spaces.Box) and normalize and is_image_space(sub, check_channels=False)
            self.parts.append((key, pos, pos + size, shape, scale))
            pos += size
        self.obs_dim = pos
        if not self.discrete:
            self.register_buffer("low", torch.as_tensor(action_space.low, dtype=torch.float32))
            self.register_buffer("high", torch.as_tensor(action_space.high, dtype=torch.float32))

    def _obs(self, x: torch.Tensor):
        out = {}
        for key, a, b, shape, scale in self.parts:
            t = x[:, a:b].reshape((-1, *shape))
            out[key] = t / 255.0 if scale else t
        return out if self.is_dict else out[None]

    def forward(self, obs: torch.Tensor, mask: torch.Tensor | None = None):
        o = self._obs(obs.float())
        p = self.policy
        if self.algo == "dqn":
            logits = p.q_net.q_net(p.q_net.features_extractor(o))
        elif self.algo == "sac":
            act = p.actor
            mean = act.mu(act.latent_pi(act.features_extractor(o)))
            return self._unscale(torch.tanh(mean)), mean
        elif self.algo in ("td3", "ddpg"):
            act = p.actor
            a = act.mu(act.features_extractor(o))
            return self._unscale(a), a
        else:  # actor-critic: ppo, a2c, maskable_ppo
            feats = (p.features_extractor if p.share_features_extractor else p.pi_features_extractor)(o)
            logits = p.action_net(p.mlp_extractor.forward_actor(feats))
            if not self.discrete:
                return torch.maximum(torch.minimum(logits, self.high), self.low), logits
        if mask is not None:
            logits = torch.where(mask, logits, torch.full_like(logits, MASK_FILL))
        return torch.argmax(logits, dim=1), logits

    def _unscale(self, a: torch.Tensor) -> torch.Tensor:
        out = self.low + 0.5 * (a + 1.0) * (self.high - self.low)
        return torch.maximum(torch.minimum(out, self.high), self.low)


class Policy:
    """A loaded policy: `act(observation, mask=None)` for one observation, `act_batch(flat, masks)` for many.

    `observation` is what the env returns (a dict for Dict spaces) or an already flattened row.
    `meta` holds the env id, version, observation layout and package versions it was made with.
    """

    def __init__(self, backend: Any, meta: dict[str, Any], kind: str, source: str | Path):
        self.backend, self.meta, self.kind, self.source = backend, meta, kind, str(source)
        self.observation_space = space_from_json(meta["observation_space"])
        self.action_space = space_from_json(meta["action_space"])
        self.discrete = isinstance(self.action_space, spaces.Discrete)
        self.obs_dim = int(meta["obs_dim"])

    @property
    def env_id(self) -> str:
        return self.meta["env_id"]

    def make_env(self, **kwargs: Any):
        """The env this policy was trained for (its id and observation-layout options), e.g.
        `policy.make_env(preset="tiny")` or `policy.make_env(instance=inst)`; `kwargs` win."""
        import gymnasium

        import sysgym  # noqa: F401  (registers sysgym envs)

        return gymnasium.make(self.env_id, **{**(self.meta.get("env_kwargs") or {}), **kwargs})

    def flatten(self, observation: Any) -> np.ndarray:
        if isinstance(observation, dict) or not isinstance(self.observation_space, spaces.Box):
            flat = spaces.flatten(self.observation_space, observation)
        else:
            flat = np.asarray(observation).reshape(-1)
        flat = np.asarray(flat, np.float32)
        if flat.shape != (self.obs_dim,):
            raise EnvShapeError(f"{self.source}: observation flattens to {flat.shape[0]} values; the policy "
                                f"was trained on {self.obs_dim} ({self.env_id})")
        return flat

    def act(self, observation: Any, mask: Any = None):
        flat = self.flatten(observation)[None]
        m = None
        if self.discrete:
            m = np.ones((1, self.action_space.n), bool) if mask is None else np.asarray(mask, bool).reshape(1, -1)
            if m.shape[1] != self.action_space.n:
                raise EnvShapeError(f"{self.source}: mask has {m.shape[1]} entries; the action space has "
                                    f"{self.action_space.n}")
            if not m.any():
                raise AgentError("the action mask allows no action")
        action, _ = self.act_batch(flat, m)
        return int(action[0]) if self.discrete else action[0]

    def act_batch(self, flat: np.ndarray, masks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        flat = np.ascontiguousarray(flat, np.float32)
        if self.discrete and masks is None:
            masks = np.ones((flat.shape[0], self.action_space.n), bool)
        return self.backend(flat, None if masks is None else np.ascontiguousarray(masks, bool))

    def __repr__(self) -> str:
        return f"Policy({self.kind}, {self.env_id}, algo={self.meta.get('algo')}, from {self.source})"


class EnvShapeError(AgentError):
    """An observation or mask whose size is not the one the policy was trained on."""


def _torch_backend(module: Any, discrete: bool):
    def run(flat: np.ndarray, masks: np.ndarray | None):
        with torch.no_grad():
            args = (torch.from_numpy(flat),) + ((torch.from_numpy(masks),) if discrete else ())
            a, logits = module(*args)
        return a.numpy(), logits.numpy()
    return run


def from_model(model: Any, meta: dict[str, Any], source: str | Path = "<in memory>") -> Policy:
    """A `Policy` over a live SB3 model (used during training for evaluation)."""
    module = GreedyModule(model, meta["algo"], space_from_json(meta["observation_space"]),
                          space_from_json(meta["action_space"]))
    disc = isinstance(space_from_json(meta["action_space"]), spaces.Discrete)
    return Policy(_torch_backend(module, disc), meta, "sb3", source)


def load_sb3(path: str | Path, meta: dict[str, Any] | None = None, device: str = "cpu"):
    """(model, meta) from an SB3 zip (a final model, best model or checkpoint of a run directory)."""
    from sysgym.agents.algos import get_algo

    path = Path(path)
    if not path.is_file():
        raise AgentFileError(f"checkpoint/model file {path} does not exist")
    if meta is None:
        for d in (path.parent, path.parent.parent):
            if (d / META_FILE).is_file():
                meta = read_meta(d / META_FILE)
                break
        else:
            raise AgentFileError(f"no {META_FILE} beside {path} (or in its parent): cannot tell its env and algorithm")
    cls = get_algo(meta["algo"]).load_class()
    try:
        model = cls.load(str(path), device=device)
    except (zipfile.BadZipFile, EOFError, KeyError, ValueError, RuntimeError, OSError) as exc:
        raise AgentFileError(f"{path} is not a readable {meta['algo']} model (corrupted or truncated?): "
                             f"{type(exc).__name__}: {exc}") from None
    return model, meta


def resolve(path: str | Path, which: str = "final") -> Path:
    """A run directory -> its model file (`final`: model.zip, `best`: best_model.zip); files pass through."""
    p = Path(path)
    if p.is_dir():
        name = {"final": "model.zip", "best": "best_model.zip"}.get(which)
        if name is None:
            raise AgentError(f"which must be 'final' or 'best', got {which!r}")
        f = p / name
        if not f.is_file():
            have = sorted(x.name for x in p.iterdir())
            raise AgentFileError(f"run directory {p} has no {name} (it holds: {', '.join(have) or 'nothing'})")
        return f
    if not p.exists():
        raise AgentFileError(f"policy file {p} does not exist")
    return p


def load(path: str | Path, *, which: str = "final", device: str = "cpu") -> Policy:
    """Load a trained or exported policy: a run directory, an SB3 `.zip`, an `.onnx` or a TorchScript `.pt`.

    Refuses (EnvVersionError) a file made for an env id/version that this installation does not have.
    """
    torch.set_num_threads(1)
    p = resolve(path, which)
    suffix = p.suffix.lower()
    if suffix == ".onnx":
        return _load_onnx(p)
    if suffix in (".pt", ".ts", ".torchscript"):
        return _load_torchscript(p)
    if suffix == ".zip":
        model, meta = load_sb3(p, device=device)
        check_env_version(meta, p)
        return from_model(model, meta, p)
    raise AgentError(f"{p}: unknown policy format {suffix!r}; expected a run directory, .zip, .onnx or .pt")


def _load_onnx(p: Path) -> Policy:
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - optional dependency
        raise AgentError("loading .onnx policies needs onnxruntime (pip install onnxruntime)") from exc
    try:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise AgentFileError(f"{p} is not a readable ONNX model (corrupted?): {exc}") from None
    raw = sess.get_modelmeta().custom_metadata_map.get("sysgym")
    if raw is None:
        raise AgentFileError(f"{p} carries no sysgym metadata (not exported by `sysgym export`)")
    meta = json.loads(raw)
    check_env_version(meta, p)
    names = [i.name for i in sess.get_inputs()]

    def run(flat: np.ndarray, masks: np.ndarray | None):
        feed = {names[0]: flat}
        if len(names) > 1:
            feed[names[-1]] = masks
        a, logits = sess.run(None, feed)
        return a, logits
    return Policy(run, meta, "onnx", p)


def _load_torchscript(p: Path) -> Policy:
    extra = {"sysgym.json": ""}
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.9+ deprecates (but ships) TorchScript
            module = torch.jit.load(str(p), _extra_files=extra, map_location="cpu")
    except Exception as exc:  # torch raises RuntimeError / zip errors
        raise AgentFileError(f"{p} is not a readable TorchScript model (corrupted?): {exc}") from None
    if not extra["sysgym.json"]:
        raise AgentFileError(f"{p} carries no sysgym metadata (not exported by `sysgym export`)")
    meta = json.loads(extra["sysgym.json"])
    check_env_version(meta, p)
    disc = isinstance(space_from_json(meta["action_space"]), spaces.Discrete)
    return Policy(_torch_backend(module, disc), meta, "torchscript", p)
