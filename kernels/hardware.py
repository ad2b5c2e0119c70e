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
class NodeGroup:
    """Nodes of one kind inside a heterogeneous cluster: how many, and the network their NICs attach to.

    `inter_node` is one NIC's link (GB/s per direction, as `Cluster.inter_node`); `nics_per_node` how many such
    NICs a node drives for compute traffic (None: one per GPU, the rail-optimised DGX layout).
    """

    num_nodes: int
    inter_node: Link | float | dict
    nics_per_node: int | None = None
    name: str = ""

    def __post_init__(self):
        if isinstance(self.num_nodes, bool) or int(self.num_nodes) != self.num_nodes or self.num_nodes < 1:
            raise ValueError(f"a node group needs num_nodes >= 1, got {self.num_nodes!r}")
        object.__setattr__(self, "num_nodes", int(self.num_nodes))
        object.__setattr__(self, "inter_node", _as_link(self.inter_node, 10.0))
        _check_nics(self.nics_per_node)

    def to_dict(self) -> dict:
        return {"num_nodes": self.num_nodes, "inter_node": dataclasses.asdict(self.inter_node),
                "nics_per_node": self.nics_per_node, "name": self.name}


def _check_nics(nics) -> None:
    if nics is not None and (isinstance(nics, bool) or int(nics) != nics or nics < 1):
        raise ValueError(f"nics_per_node must be a positive integer or None, got {nics!r}")


def _as_group(value) -> NodeGroup:
    if isinstance(value, NodeGroup):
        return value
    if isinstance(value, dict):
        return NodeGroup(**value)
    raise ValueError(f"a node group is a NodeGroup or a dict, got {value!r}")


@dataclass(frozen=True)
class Cluster:
    """`num_nodes` nodes of `gpus_per_node` GPUs; links given as Link, dict or GB/s per direction.

    `inter_node` is one NIC's link (per GPU on a rail-optimised node) and `nics_per_node` how many NICs a node
    drives for compute traffic (None: one per GPU; DGX A100/H100 have 8, one per GPU behind its PCIe switch).
    A heterogeneous cluster lists `node_groups` (their node counts sum to `num_nodes`), each with its own NICs,
    in the order the nodes are numbered (ranks are placed node by node in that order); `cross_group` is the
    link between groups (per GPU: e.g. a slower inter-rack tier, or the Ethernet path between InfiniBand and
    RoCE nodes, which cannot talk RDMA to each other -- the setting of Holmes, Yang et al. ICPP'24). Without
    `cross_group`, traffic between groups runs at the slower group's NIC.
    """

    gpu: GPU | str
    num_nodes: int = 1
    gpus_per_node: int = 8
    intra_node: Link | float | dict | None = None
    inter_node: Link | float | dict | None = None
    name: str = ""
    nics_per_node: int | None = None
    node_groups: tuple[NodeGroup, ...] = ()
    cross_group: Link | float | dict | None = None

    def __post_init__(self):
        gpu = get_gpu(self.gpu)
        object.__setattr__(self, "gpu", gpu)
        if self.num_nodes < 1 or self.gpus_per_node < 1:
            raise ValueError("a cluster needs num_nodes >= 1 and gpus_per_node >= 1")
        _check_nics(self.nics_per_node)
        if self.nics_per_node is None:  # canonical: one NIC per GPU, spelled out (equal clusters compare equal)
            object.__setattr__(self, "nics_per_node", int(self.gpus_per_node))
        groups = tuple(_as_group(g) for g in (self.node_groups or ()))
        object.__setattr__(self, "node_groups", groups)
        if groups:
            total = sum(g.num_nodes for g in groups)
            if self.num_nodes not in (1, total):
                raise ValueError(f"node_groups hold {total} nodes, but num_nodes={self.num_nodes}")
            object.__setattr__(self, "num_nodes", total)
        # Defaults: the GPU's own scale-up link; 200 Gb/s InfiniBand HDR per GPU (DGX A100 whitepaper).
        intra = self.intra_node if self.intra_node is not None else gpu.scale_up_gbps
        inter = self.inter_node if self.inter_node is not None else (groups[0].inter_node if groups else 25.0)
        object.__setattr__(self, "intra_node", _as_link(intra, 5.0))
        object.__setattr__(self, "inter_node", _as_link(inter, 10.0))
        if self.cross_group is not None:
            object.__setattr__(self, "cross_group", _as_link(self.cross_group, 10.0))

    @property
    def num_gpus(self) -> int:
        return self.num_nodes * self.gpus_per_node

    @property
    def nics(self) -> int:
        """NICs a node drives for compute traffic (homogeneous clusters; groups carry their own)."""
        return int(self.nics_per_node or self.gpus_per_node)

    @property
    def heterogeneous(self) -> bool:
        return len(self.node_groups) > 1

    @property
    def groups(self) -> tuple[NodeGroup, ...]:
        """The node groups in node order (one implicit group for a homogeneous cluster)."""
        if self.node_groups:
            return self.node_groups
        return (NodeGroup(self.num_nodes, self.inter_node, self.nics_per_node, self.inter_node.name),)

    def group_of_nodes(self) -> tuple[int, ...]:
        """The group index of every node, in node order."""
        return tuple(k for k, g in enumerate(self.groups) for _ in range(g.num_nodes))

    def nodes_spanned(self, num_workers: int) -> int:
        """Workers are packed node by node, as launchers place ranks."""
        return max(1, math.ceil(num_workers / self.gpus_per_node))

    def links_view(self, num_nodes: int, gpus_per_node: int, groups=(0,)) -> Cluster:
        """The homogeneous cluster a communication group sees: `num_nodes` nodes holding `gpus_per_node` of its
        ranks each, on the nodes of `groups`. Across several groups every ring or tree crosses the slowest
        link among the groups' NICs and `cross_group` (Pipette, Yim et al. SC'23: a collective runs at its
        slowest link), so that link stands for the network."""
        groups = tuple(sorted(set(int(g) for g in groups)))
        members = [self.groups[g] for g in groups]
        # Each candidate: (per-node bandwidth, link, NICs); the view keeps the slowest.
        cands = [(g.inter_node.bandwidth_gbps * (g.nics_per_node or self.gpus_per_node), g.inter_node,
                  g.nics_per_node or self.gpus_per_node) for g in members]
        if len(members) > 1 and self.cross_group is not None:
            cands.append((self.cross_group.bandwidth_gbps * self.gpus_per_node, self.cross_group,
                          self.gpus_per_node))
        _, link, nics = min(cands, key=lambda c: c[0])
        per_node = max(1, int(gpus_per_node))
        # The group's ranks on a node use their share of its NICs (rail-optimised: one NIC per rank); a share
        # below one NIC (fewer NICs than GPUs, every GPU busy) slows the link instead.
        share = int(nics) * per_node / self.gpus_per_node
        if share < 1:
            link = dataclasses.replace(link, bandwidth_gbps=link.bandwidth_gbps * share)
        return Cluster(gpu=self.gpu, num_nodes=max(1, int(num_nodes)), gpus_per_node=per_node,
                       intra_node=self.intra_node, inter_node=link, name=f"{self.name}-view",
                       nics_per_node=max(1, int(share)))


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
