"""The power-capping instance: a row of LLM inference servers, the requests routed to them, and a row power budget.

After POLCA (Patel et al., "POLCA: Power Oversubscription in LLM Cloud Providers", ASPLOS'24): a row of GPU
servers is provisioned for less than its nameplate power (oversubscribed), and a controller caps the servers'
GPU clocks when row power nears the budget. Each server here is one serving replica (`tp` GPUs of `gpu` running
`model`); request j arrives at `arrival[j]` at server `server_of[j]` with `prompt[j]` prompt and `output[j]`
output tokens. Time is cut into `num_intervals` control intervals of `interval_s` seconds; in each the controller
picks every server's clock level, a fraction `levels[k]` of the maximum SM clock (`levels[0]` = 1.0: uncapped).

Row power counts the GPUs' board power (kernels' energy model); hosts' CPU, fan and NIC power are not modelled
(they are outside what GPU capping controls). `budget_w` is the row's power budget; `nameplate_w` (servers x tp x
TDP) what it would need without oversubscription.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sysgym import kernels
from sysgym.errors import InvalidInstanceError, SysgymError, TraceFormatError
from sysgym.instances import InstanceBase, read_json, require_fields

FORMAT = "sysgym.power_cap.instance/1"
_ARRAYS = ("arrival", "prompt", "output", "server_of")
_SCALARS = ("num_servers", "tp", "interval_s", "num_intervals", "budget_w", "slo_ttft_s", "slo_tpot_s",
            "overbudget_weight", "dvfs_exponent", "max_num_seqs", "max_batched_tokens", "kv_fraction")
_INTS = ("num_servers", "tp", "num_intervals", "max_num_seqs", "max_batched_tokens")


@dataclass(frozen=True, eq=False)
class PowerCapInstance(InstanceBase):
    """Immutable problem instance (read-only arrays); `name` is its replayable spec."""

    FORMAT = FORMAT

    model: str
    gpu: str
    num_servers: int
    tp: int
    arrival: np.ndarray  # (N,) seconds, non-decreasing, in [0, horizon)
    prompt: np.ndarray  # (N,) prompt tokens >= 1
    output: np.ndarray  # (N,) output tokens >= 1
    server_of: np.ndarray  # (N,) the server each request is routed to
    interval_s: float
    num_intervals: int
    budget_w: float
    levels: tuple[float, ...]  # clock fractions, levels[0] == 1.0, decreasing
    slo_ttft_s: float
    slo_tpot_s: float
    overbudget_weight: float  # cost of one over-budget interval share, in SLO-miss-rate units
    dvfs_exponent: float
    max_num_seqs: int
    max_batched_tokens: int
    kv_fraction: float  # share of GPU memory the engine may use (vLLM's gpu_memory_utilization)
    name: str = "power_cap/custom"
    source: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, dtype in (("arrival", np.float64), ("prompt", np.int64), ("output", np.int64),
                           ("server_of", np.int64)):
            try:
                arr = np.array(getattr(self, key), dtype=dtype).reshape(-1)
            except (TypeError, ValueError) as exc:
                raise InvalidInstanceError(f"{self.name}: {key} is not numeric ({exc})") from None
            arr.setflags(write=False)
            object.__setattr__(self, key, arr)
        try:
            for key in _SCALARS:
                value = getattr(self, key)
                object.__setattr__(self, key, int(value) if key in _INTS else float(value))
            object.__setattr__(self, "levels", tuple(float(x) for x in self.levels))
        except (TypeError, ValueError) as exc:
            raise InvalidInstanceError(f"{self.name}: a scalar field is not a number ({exc})") from None
        validate(self)

    # -- derived -------------------------------------------------------------------------------------------
    @property
    def horizon_s(self) -> float:
        return self.interval_s * self.num_intervals

    @property
    def num_requests(self) -> int:
        return len(self.arrival)

    @property
    def num_levels(self) -> int:
        return len(self.levels)

    @property
    def server_tdp_w(self) -> float:
        return kernels.get_gpu(self.gpu).tdp_w * self.tp

    @property
    def nameplate_w(self) -> float:
        return self.server_tdp_w * self.num_servers

    def kv_capacity_tokens(self) -> int:
        """KV-cache tokens one server holds: the engine's share of GPU memory less the weights (per GPU)."""
        gpu = kernels.get_gpu(self.gpu)
        dtype = kernels.load_calibration(None).dtype
        free = gpu.memory_gb * 1e9 * self.kv_fraction - kernels.weight_bytes(self.model, dtype, tp=self.tp)
        return int(free // kernels.kv_bytes_per_token(self.model, dtype, tp=self.tp))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"format": FORMAT, "name": self.name, "model": self.model, "gpu": self.gpu,
                                "levels": list(self.levels), "source": self.source}
        for key in _SCALARS:
            data[key] = getattr(self, key)
        for key in _ARRAYS:
            data[key] = getattr(self, key).tolist()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str | os.PathLike | None = None) -> PowerCapInstance:
        where = path if path is not None else "<dict>"
        require_fields(data, ("model", "gpu", "levels", *_SCALARS, *_ARRAYS), where)
        for key in (*_ARRAYS, "levels"):
            if not isinstance(data[key], list):
                raise TraceFormatError(f"{where}: field {key!r} must be a list, got {type(data[key]).__name__}")
        kwargs = {k: data[k] for k in ("model", "gpu", "levels", *_SCALARS, *_ARRAYS)}
        try:
            return cls(**kwargs, name=data.get("name", f"power_cap/file:{path}"), source=data.get("source", {}))
        except InvalidInstanceError:
            raise
        except (TypeError, ValueError, OverflowError) as exc:
            raise TraceFormatError(f"{where}: malformed instance field ({exc})") from None


def validate(inst: PowerCapInstance) -> None:
    """Reject an instance that cannot exist; the message names the offending field or request."""
    name = inst.name
    try:
        kernels.models.get(inst.model)
        kernels.get_gpu(inst.gpu)
    except SysgymError as exc:  # an unknown model or GPU: the catalogue names it; say whose instance it is
        raise InvalidInstanceError(f"{name}: {exc}") from None
    n = len(inst.arrival)
    for key in ("prompt", "output", "server_of"):
        if len(getattr(inst, key)) != n:
            raise InvalidInstanceError(f"{name}: {key} has {len(getattr(inst, key))} entries, arrival has {n}")
    for key in ("interval_s", "budget_w", "slo_ttft_s", "slo_tpot_s", "dvfs_exponent"):
        v = getattr(inst, key)
        if not (math.isfinite(v) and v > 0):
            raise InvalidInstanceError(f"{name}: {key} must be a finite positive number, got {v}")
    if not (math.isfinite(inst.overbudget_weight) and inst.overbudget_weight >= 0):
        raise InvalidInstanceError(f"{name}: overbudget_weight must be >= 0, got {inst.overbudget_weight}")
    if not 0 < inst.kv_fraction <= 1:
        raise InvalidInstanceError(f"{name}: kv_fraction must lie in (0, 1], got {inst.kv_fraction}")
    for key in _INTS:
        if getattr(inst, key) < 1:
            raise InvalidInstanceError(f"{name}: {key} must be >= 1, got {getattr(inst, key)}")
    lv = np.array(inst.levels)
    if len(lv) < 1 or lv[0] != 1.0 or (len(lv) > 1 and (np.diff(lv) >= 0).any()) or (lv <= 0).any():
        raise InvalidInstanceError(f"{name}: levels must start at 1.0 (uncapped) and decrease strictly inside (0, 1], "
                                   f"got {list(inst.levels)}")
    if n:
        if not np.isfinite(inst.arrival).all() or (np.diff(inst.arrival) < 0).any() or inst.arrival[0] < 0:
            raise InvalidInstanceError(f"{name}: arrivals must be finite, >= 0 and sorted")
        if inst.arrival[-1] >= inst.horizon_s:
            raise InvalidInstanceError(f"{name}: request {n - 1} arrives at {inst.arrival[-1]} s, not before the "
                                       f"horizon {inst.horizon_s} s")
        if (inst.prompt < 1).any() or (inst.output < 1).any():
            j = int(np.argmax((inst.prompt < 1) | (inst.output < 1)))
            raise InvalidInstanceError(f"{name}: request {j} needs >= 1 prompt and output token")
        bad = (inst.server_of < 0) | (inst.server_of >= inst.num_servers)
        if bad.any():
            j = int(np.argmax(bad))
            raise InvalidInstanceError(f"{name}: request {j} is routed to server {int(inst.server_of[j])}; the row "
                                       f"has {inst.num_servers}")
        cap = inst.kv_capacity_tokens()
        big = inst.prompt + inst.output > cap
        if big.any():
            j = int(np.argmax(big))
            raise InvalidInstanceError(f"{name}: request {j} needs {int(inst.prompt[j] + inst.output[j])} KV tokens, "
                                       f"more than a server holds ({cap})")


def load(path: str | os.PathLike) -> PowerCapInstance:
    """Load a saved instance (JSON); malformed files raise TraceFormatError naming the file."""
    data = read_json(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise TraceFormatError(f"{path}: not a {FORMAT} file")
    return PowerCapInstance.from_dict(data, path)
