"""What every part of `sysgym.agents` shares: its errors, the observation layout and the export metadata.

The *observation layout* is how `gymnasium.spaces.flatten` lays an observation out as one float32 row
(Dict keys in the space's (sorted) order, each sub-space raveled, Discrete/MultiDiscrete one-hot). Exported
policies take that row, so the layout is recorded beside every trained model and every exported file.
"""
from __future__ import annotations

import datetime as _dt
import json
import re
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from sysgym.errors import SysgymError

META_FORMAT = 1  # version of the metadata layout below
META_FILE = "agent.json"  # beside model.zip in a run directory


class AgentError(SysgymError, ValueError):
    """A bad agent request: agent/action-space mismatch, unknown algorithm, run directory in use..."""


class AgentFileError(SysgymError, FileNotFoundError):
    """A missing, unreadable or corrupted policy/checkpoint file; the message names the file."""


class EnvVersionError(AgentError):
    """A policy exported for another env id/version (or another observation layout) than the one here."""


# -- spaces <-> JSON ---------------------------------------------------------------------------------
def _arr(x: np.ndarray) -> Any:
    x = np.asarray(x)
    if x.size and np.all(x == x.flat[0]):
        return float(x.flat[0]) if np.isfinite(x.flat[0]) else str(x.flat[0])
    return [float(v) if np.isfinite(v) else str(v) for v in x.ravel()]


def _unarr(v: Any, shape: tuple[int, ...]) -> np.ndarray:
    if isinstance(v, list):
        return np.array([float(x) for x in v], np.float64).reshape(shape)
    return np.full(shape, float(v))


def space_to_json(space: spaces.Space) -> dict[str, Any]:
    if isinstance(space, spaces.Box):
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype),
                "low": _arr(space.low), "high": _arr(space.high)}
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": np.asarray(space.nvec).tolist()}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": [[k, space_to_json(s)] for k, s in space.spaces.items()]}
    if isinstance(space, spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_json(s) for s in space.spaces]}
    raise AgentError(f"observation/action space {space} is not supported by sysgym.agents "
                     "(Box, Discrete, MultiDiscrete, MultiBinary, Dict and Tuple of those are)")


def space_from_json(d: dict[str, Any]) -> spaces.Space:
    t = d["type"]
    if t == "Box":
        shape, dtype = tuple(d["shape"]), np.dtype(d["dtype"])
        return spaces.Box(_unarr(d["low"], shape).astype(dtype), _unarr(d["high"], shape).astype(dtype), shape, dtype)
    if t == "Discrete":
        return spaces.Discrete(d["n"], start=d.get("start", 0))
    if t == "MultiDiscrete":
        return spaces.MultiDiscrete(d["nvec"])
    if t == "MultiBinary":
        return spaces.MultiBinary(d["n"])
    if t == "Dict":
        return spaces.Dict({k: space_from_json(s) for k, s in d["spaces"]})
    if t == "Tuple":
        return spaces.Tuple([space_from_json(s) for s in d["spaces"]])
    raise AgentError(f"unknown space type {t!r} in policy metadata")


def obs_layout(space: spaces.Space) -> list[dict[str, Any]]:
    """[(key, kind, shape, start, end)] of `gymnasium.spaces.flatten(space, obs)`, in order."""
    out: list[dict[str, Any]] = []
    pos = 0
    items = space.spaces.items() if isinstance(space, spaces.Dict) else [(None, space)]
    for key, sub in items:
        if isinstance(sub, (spaces.Dict, spaces.Tuple)):
            raise AgentError(f"nested observation space under {key!r} is not supported; flatten it in the env")
        size = int(spaces.flatdim(sub))
        kind = type(sub).__name__
        shape = list(sub.shape) if isinstance(sub, spaces.Box) else [size]
        out.append({"key": key, "kind": kind, "shape": shape, "start": pos, "end": pos + size})
        pos += size
    return out


# -- env ids and versions ----------------------------------------------------------------------------
_ID = re.compile(r"^(?:(?P<ns>[^/]+)/)?(?P<name>.+?)(?:-v(?P<ver>\d+))?$")


def split_env_id(env_id: str) -> tuple[str | None, str, int | None]:
    m = _ID.match(env_id)
    return m["ns"], m["name"], (int(m["ver"]) if m["ver"] is not None else None)


def check_env_version(meta: dict[str, Any], source: str | Path) -> None:
    """Refuse a policy made for an env id/version that this installation does not register."""
    import sysgym  # noqa: F401  (registers sysgym's envs)

    env_id = meta.get("env_id")
    if not env_id:
        raise EnvVersionError(f"{source}: the policy metadata names no env id")
    if env_id in gymnasium.registry:
        return
    ns, name, ver = split_env_id(env_id)
    here = sorted(i for i in gymnasium.registry if split_env_id(i)[:2] == (ns, name))
    import sysgym as _s

    if here:
        raise EnvVersionError(
            f"{source} was exported for {env_id} (env version {ver}, sysgym {meta.get('sysgym_version')}); "
            f"this installation (sysgym {_s.__version__}) has {', '.join(here)}: the observation/action "
            f"layout may differ, so retrain or re-export the policy for {here[-1]}")
    raise EnvVersionError(f"{source} was exported for {env_id}, which is not registered here; "
                          f"sysgym envs: {', '.join(_s.list_envs())}")


def check_layout(meta: dict[str, Any], space: spaces.Space, source: str | Path) -> None:
    """Refuse to run a policy on an env whose observation layout is not the one it was trained on."""
    want = meta.get("obs_layout")
    have = obs_layout(space)
    if want != have:
        raise EnvVersionError(
            f"{source}: observation layout mismatch for {meta.get('env_id')}: the policy expects "
            f"{_fmt_layout(want)}, the env gives {_fmt_layout(have)} (different instance size or env version)")


def _fmt_layout(layout: list[dict[str, Any]] | None) -> str:
    if not layout:
        return "(nothing recorded)"
    return ", ".join(f"{d['key'] or 'obs'}{tuple(d['shape'])}" for d in layout)


def make_meta(*, env_id: str, family: str | None, env_kwargs: dict[str, Any], algo: str,
              observation_space: spaces.Space, action_space: spaces.Space, masked: bool,
              extra: dict[str, Any] | None = None) -> dict[str, Any]:
    import sysgym

    _, _, ver = split_env_id(env_id)
    versions: dict[str, str] = {}
    from importlib import metadata

    for pkg in ("stable-baselines3", "sb3-contrib", "torch", "gymnasium"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    return {
        "format": META_FORMAT, "env_id": env_id, "env_version": ver, "family": family,
        "env_kwargs": env_kwargs, "algo": algo, "masked": bool(masked),
        "observation_space": space_to_json(observation_space), "action_space": space_to_json(action_space),
        "obs_layout": obs_layout(observation_space), "obs_dim": int(spaces.flatdim(observation_space)),
        "sysgym_version": sysgym.__version__, "versions": versions,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **(extra or {}),
    }


def read_meta(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise AgentFileError(f"policy metadata file {path} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AgentFileError(f"policy metadata file {path} is corrupted: {exc}") from None


def write_json(path: Path, data: Any) -> None:
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
