"""Reads operator profiles in vidur's CSV format (numpy + csv; pandas is not a dependency).

compute/<model>.csv: shape columns (n_head, n_kv_head, n_embd, n_expanded_embd, vocab_size,
use_gated_mlp, num_tokens, num_tensor_parallel_workers) and time_stats.<op>.{min,max,mean,median,std}
in milliseconds.
network/<collective>.csv: size, num_workers, devices_per_node, time_stats.<collective>.median (ms).
`size` is in BYTES: vidur's CollectiveWrapper.profile() records `"size": self._size * 2  # bytes` for
fp16 buffers of `self._size` elements (microsoft/vidur, vidur/profiling/collectives/
collectives_wrapper.py). The data agree: read as elements, 8-GPU NVLink all-reduce would exceed the
300 GB/s per-direction NVLink limit.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .models import ModelSpec

SHAPE_COLUMNS = ("n_head", "n_kv_head", "n_embd", "n_expanded_embd", "vocab_size", "use_gated_mlp",
                 "num_tokens", "num_tensor_parallel_workers")
NETWORK_COLUMNS = ("size", "num_workers", "devices_per_node")


def read_csv_columns(path: str | Path) -> dict[str, list[str]]:
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None:
            raise ValueError(f"{path}: empty CSV")
        columns: dict[str, list[str]] = {name: [] for name in reader.fieldnames}
        for row in reader:
            for name in reader.fieldnames:
                columns[name].append(row[name])
    return columns


def _require(columns: dict, needed, path) -> None:
    missing = [c for c in needed if c not in columns]
    if missing:
        raise ValueError(f"{path}: profile CSV is missing column(s) {', '.join(missing)}")


def _floats(values) -> np.ndarray:
    return np.array([float(v) if v not in ("", None) else np.nan for v in values])


def _bool(value: str) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes")


def read_compute_profile(path: str | Path, stat: str = "median") -> dict:
    """{'model': ModelSpec, 'num_tokens', 'tp': arrays, 'times_ms': {op: array}} for one CSV."""
    columns = read_csv_columns(path)
    _require(columns, SHAPE_COLUMNS, path)
    ops = sorted({c.split(".")[1] for c in columns if c.startswith("time_stats.") and c.endswith(f".{stat}")})
    if not ops:
        raise ValueError(f"{path}: profile CSV has no time_stats.<op>.{stat} column")
    first = {c: columns[c][0] for c in SHAPE_COLUMNS}
    heads, hidden = int(float(first["n_head"])), int(float(first["n_embd"]))
    model = ModelSpec(hidden_size=hidden, ffn_hidden_size=int(float(first["n_expanded_embd"])),
                      num_layers=1, num_heads=heads, num_kv_heads=int(float(first["n_kv_head"])),
                      vocab_size=int(float(first["vocab_size"])), gated_mlp=_bool(first["use_gated_mlp"]),
                      name=Path(path).stem)
    return {
        "model": model,
        "num_tokens": _floats(columns["num_tokens"]),
        "tp": _floats(columns["num_tensor_parallel_workers"]).astype(int),
        "times_ms": {op: _floats(columns[f"time_stats.{op}.{stat}"]) for op in ops},
    }


def read_network_profile(path: str | Path, stat: str = "median") -> dict:
    """{'kind', 'size_bytes', 'num_workers', 'devices_per_node', 'times_ms'} for one collective CSV."""
    columns = read_csv_columns(path)
    _require(columns, NETWORK_COLUMNS, path)
    kind = Path(path).stem
    time_col = f"time_stats.{kind}.{stat}"
    _require(columns, (time_col,), path)
    return {
        "kind": kind,
        "size_bytes": _floats(columns["size"]),
        "num_workers": _floats(columns["num_workers"]).astype(int),
        "devices_per_node": _floats(columns["devices_per_node"]).astype(int),
        "times_ms": _floats(columns[time_col]),
    }


def compute_profile_files(profile_dir: str | Path) -> list[Path]:
    folder = Path(profile_dir) / "compute"
    return sorted(folder.glob("*.csv")) if folder.is_dir() else []


def network_profile_files(profile_dir: str | Path) -> list[Path]:
    folder = Path(profile_dir) / "network"
    return sorted(folder.glob("*.csv")) if folder.is_dir() else []
