"""Calibration files: fitted efficiency parameters per operator class, with provenance.

`load_calibration(None)` gives the shipped A100 fit (data/calibration_a100.json); a path loads a file
written by `fit_calibration` / `sysgym calibrate`. The `collective` class holds the NVLink / NCCL terms and a
`networks` table: the network terms per inter-node link name (see collectives.network_params).

The shipped file is regenerated, from the repository root, by the command its provenance records:

    sysgym calibrate --profiles ../shared/data/operator_profiles/a100 --gpu a100-80gb \
        --kinds compute network attention --out kernels/data/calibration_a100.json \
        --source 'microsoft/vidur data/profiling compute/a100, network/a100_dgx and attention.csv (MIT), median times'

(`--kinds` names what the file fits. Attention is fitted on half the measured shapes and scored on the other
half (attention_profiles.HOLDOUT_RULE; the file's `attention_fit` records both errors).
tests/kernels/test_kernels_a100_calibration.py refits the same kinds and compares every parameter at 1e-6.)
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from sysgym.errors import UnknownNameError

from .hardware import GPU, get_gpu

FORMAT = "sysgym.kernels.calibration/1"
SHIPPED = "calibration_a100.json"

# Parameters for classes a profile folder does not cover (the shipped A100 file fits both attention classes on
# measured profiles; these apply to a calibration made without attention/*.csv). From the literature:
# FlashAttention-2 forward reaches 50-73 % of A100 peak (Dao 2023, Fig. 5), so eta_compute 0.6 with an ideal
# causal block (causal_factor 1); decode kernels stream the KV cache at 70-90 % of HBM bandwidth (FlashInfer,
# Ye et al. MLSys 2025). fill_waves 1 and sm_share 2 are neutral guesses (one wave of work half-fills the
# GPU; a lone CTA pulls twice its fair share). The `profile` command measures both and `calibrate` refits them.
DEFAULT_CLASS_PARAMS = {
    "attn_prefill": {"eta_compute": 0.6, "causal_factor": 1.0, "diag_tiles": 1.0, "fill_waves": 1.0, "eta_memory": 0.8,
                     "overhead_us": 5.0},
    "attn_decode": {"eta_memory": 0.75, "sm_share": 2.0, "overhead_us": 5.0},
    # A training step's dense FlashAttention-2 forward (predict_attention_time(kernel="training"), used by
    # parallel_plan): the serving fit above is a paged inference kernel whose causal block runs ~4x below
    # FA2's published causal forward (Dao 2023, Fig. 5: 50-73 % of A100 peak), so training keeps FA2's figures.
    "attn_train": {"eta_compute": 0.6, "causal_factor": 1.0, "diag_tiles": 1.0, "fill_waves": 1.0,
                   "eta_memory": 0.8, "overhead_us": 5.0},
}


@dataclass
class Calibration:
    device: GPU
    dtype: str
    params: dict[str, dict[str, float]]
    provenance: dict = field(default_factory=dict)
    mape: dict = field(default_factory=dict)

    def class_params(self, name: str) -> dict[str, float]:
        if name in self.params:
            return self.params[name]
        if name in DEFAULT_CLASS_PARAMS:
            return DEFAULT_CLASS_PARAMS[name]
        raise UnknownNameError("operator class", name, [*self.params, *DEFAULT_CLASS_PARAMS])

    def to_dict(self) -> dict:
        return {"format": FORMAT, "gpu": self.device.name, "device": self.device.to_dict(),
                "dtype": self.dtype, "params": self.params, "mape_percent": self.mape,
                "provenance": self.provenance}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file (format={data.get('format')!r})")
        spec = data.get("device")
        device = GPU.from_dict(data["gpu"], spec) if spec else get_gpu(data["gpu"])
        return cls(device=device, dtype=data["dtype"], params=data["params"],
                   provenance=data.get("provenance", {}), mape=data.get("mape_percent", {}))


@lru_cache(maxsize=16)
def _load_text(text: str) -> Calibration:
    return Calibration.from_dict(json.loads(text))


def load_calibration(calibration: str | Path | Calibration | None = None) -> Calibration:
    if isinstance(calibration, Calibration):
        return calibration
    if calibration is None:
        text = resources.files(__package__).joinpath("data", SHIPPED).read_text(encoding="utf-8")
    else:
        path = Path(calibration)
        if not path.is_file():
            raise FileNotFoundError(f"calibration file not found: {path}")
        text = path.read_text(encoding="utf-8")
    return _load_text(text)
