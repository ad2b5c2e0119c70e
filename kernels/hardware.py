"""GPU catalogue, interconnect links and clusters (specs from data/gpus.yaml and data/clusters.yaml)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ._data import load_yaml, unknown_name_error

# Per-direction PCIe x16 bandwidth in GB/s by generation (PCI-SIG base specs 3.0/4.0/5.0, 128b/130b).
PCIE_X16_GBPS = {3: 15.75, 4: 31.5, 5: 63.0}

_DTYPE_FIELD = {
    "fp32": "fp32_tflops", "float32": "fp32_tflops",
    "tf32": "tf32_tflops",
    "bf16": "bf16_tflops", "bfloat16": "bf16_tflops",
    "fp16": "fp16_tflops", "float16": "fp16_tflops", "half": "fp16_tflops",
    "fp8": "fp8_tflops", "float8": "fp8_tflops",
}


@dataclass(frozen=True)
class GPU:
    """One accelerator's published specs (units as in gpus.yaml: TFLOP/s, GB, GB/s, MB, W)."""

    name: str
    fp32_tflops: float
    bf16_tflops: float | None
    fp16_tflops: float | None
    memory_gb: float
    memory_bw_gbps: float
    sm_count: int
    tdp_w: float
    tf32_tflops: float | None = None
    fp8_tflops: float | None = None
    l2_mb: float = 0.0
    link_gbps_per_dir: float | None = None
    pcie_gen: int = 4
    vendor: str = "nvidia"
    form_factor: str = ""

    def peak_flops(self, dtype: str = "bf16") -> float:
        """Dense peak in FLOP/s for a dtype; ValueError when the GPU has no such path."""
        field = _DTYPE_FIELD.get(str(dtype).lower())
        if field is None:
            raise ValueError(f"unknown dtype {dtype!r}; known: {', '.join(sorted(_DTYPE_FIELD))}")
        value = getattr(self, field)
        if value is None and field == "bf16_tflops" and self.fp16_tflops is not None:
            value = self.fp16_tflops  # V100: bf16 work runs as fp16 on its tensor cores
        if value is None:
            raise ValueError(f"{self.name} has no {dtype} tensor-core path")
        return float(value) * 1e12

    @property
    def memory_bw(self) -> float:
        """HBM/GDDR bandwidth in bytes/s."""
        return self.memory_bw_gbps * 1e9

    @property
    def memory_bytes(self) -> float:
        return self.memory_gb * 1e9

    @property
    def scale_up_gbps(self) -> float:
        """Per-direction GPU-to-GPU bandwidth inside a node: NVLink/xGMI, else PCIe."""
        if self.link_gbps_per_dir:
            return float(self.link_gbps_per_dir)
        return PCIE_X16_GBPS.get(self.pcie_gen, PCIE_X16_GBPS[4])

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, name: str, spec: dict) -> GPU:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{"name": name, **{k: v for k, v in spec.items() if k in fields and k != "name"}})


def list_gpus() -> list[str]:
    return sorted(load_yaml("gpus.yaml")["gpus"])


def get_gpu(name: str | GPU) -> GPU:
    """A catalogue GPU by name (case-insensitive); a GPU object passes through."""
    if isinstance(name, GPU):
        return name
    table = load_yaml("gpus.yaml")["gpus"]
    key = str(name).lower()
    if key not in table:
        raise unknown_name_error("GPU", name, list(table))
    return GPU.from_dict(key, table[key])


@dataclass(frozen=True)
class Link:
    """An interconnect as seen by one GPU: per-direction bandwidth (GB/s) and per-step latency (µs)."""

    bandwidth_gbps: float
    latency_us: float = 5.0
    name: str = ""

    def __post_init__(self):
        if self.bandwidth_gbps <= 0 or self.latency_us < 0:
            raise ValueError(f"link needs bandwidth > 0 and latency >= 0, got {self}")


def _as_link(value, default_latency_us: float) -> Link:
    if isinstance(value, Link):
        return value
    if isinstance(value, dict):
        return Link(**value)
    return Link(float(value), default_latency_us)


@dataclass(frozen=True)
class Cluster:
    """`num_nodes` nodes of `gpus_per_node` GPUs; links given as Link, dict or GB/s per direction."""

    gpu: GPU | str
    num_nodes: int = 1
    gpus_per_node: int = 8
    intra_node: Link | float | dict | None = None
    inter_node: Link | float | dict | None = None
    name: str = ""

    def __post_init__(self):
        gpu = get_gpu(self.gpu)
        object.__setattr__(self, "gpu", gpu)
        if self.num_nodes < 1 or self.gpus_per_node < 1:
            raise ValueError("a cluster needs num_nodes >= 1 and gpus_per_node >= 1")
        # Defaults: the GPU's own scale-up link; 200 Gb/s InfiniBand HDR per GPU (DGX A100 whitepaper).
        intra = self.intra_node if self.intra_node is not None else gpu.scale_up_gbps
        inter = self.inter_node if self.inter_node is not None else 25.0
        object.__setattr__(self, "intra_node", _as_link(intra, 5.0))
        object.__setattr__(self, "inter_node", _as_link(inter, 10.0))

    @property
    def num_gpus(self) -> int:
        return self.num_nodes * self.gpus_per_node

    def nodes_spanned(self, num_workers: int) -> int:
        """Workers are packed node by node, as launchers place ranks."""
        return max(1, math.ceil(num_workers / self.gpus_per_node))


def list_clusters() -> list[str]:
    return sorted(load_yaml("clusters.yaml"))


def get_cluster(name: str | Cluster, **overrides) -> Cluster:
    """A preset cluster; keyword overrides (e.g. num_nodes=16) replace preset fields."""
    if isinstance(name, Cluster):
        return dataclasses.replace(name, **overrides) if overrides else name
    table = load_yaml("clusters.yaml")
    key = str(name).lower()
    if key not in table:
        raise unknown_name_error("cluster", name, list(table))
    return Cluster(name=key, **{**table[key], **overrides})
