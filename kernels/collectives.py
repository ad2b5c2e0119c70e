"""Alpha-beta cost of NCCL-style collectives on a `Cluster`.

Sizes follow nccl-tests: `size_bytes` is the all-reduce buffer, the gathered output of all-gather,
the input of reduce-scatter, what one rank sends in all-to-all, and the message of send/recv.

* Ring: 2(N-1) (all-reduce) or N-1 steps, each paying a per-step latency alpha, moving (N-1)/N of the
  data per phase through the ring's slowest link. Across nodes NCCL opens one ring per NIC, so a node's
  inter-node bandwidth grows with the GPUs it uses, up to what the node's fabric sustains.
* Tree (double binary tree): log2(N) steps per phase, but each rank moves the whole buffer.
* Protocols: NCCL's LL protocol halves latency-bound steps at a fraction of the bandwidth; the model
  takes the faster of Simple and LL, which bends the curve between the latency and bandwidth regimes.
* Reductions (all-reduce, reduce-scatter) run slower per byte than plain copies (send/recv,
  all-gather): the reduction kernel reads, adds and writes.
"""
from __future__ import annotations

import math

import numpy as np

from .hardware import Cluster, get_cluster

KINDS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv")
REDUCING = ("all_reduce", "reduce_scatter")

# Used when no calibration is loaded; `fit_collectives` replaces them (see data/calibration_a100.json).
DEFAULT_PARAMS = {
    "intra_eff": 0.8,  # nccl-tests send/recv ~ 240 of 300 GB/s NVLink on DGX A100 (NVIDIA NCCL docs)
    "inter_eff": 0.9,  # ib_write_bw reaches ~ 90 % of InfiniBand line rate
    "inter_cap_nics": 8.0,  # NICs' worth of inter-node bandwidth a node sustains (DGX: 8 NICs)
    "intra_reduce_eff": 0.7,
    "inter_reduce_eff": 0.8,
    "intra_latency_us": 5.0,
    "inter_latency_us": 10.0,
    "base_latency_us": 10.0,  # kernel launch and proxy set-up, once per call
    "ll_bandwidth_frac": 0.5,  # LL packs 4 B of data with a 4 B flag (NCCL docs)
    "ll_latency_frac": 0.2,
    # NCCL's tuner scales tree bandwidth below ring's (treeCorrectionFactor, src/graph/tuning.cc).
    "tree_bandwidth_frac": 0.8,
}

# nccl-tests bus-bandwidth factors (nccl-tests doc/PERFORMANCE.md).
BUSBW_FACTOR = {
    "all_reduce": lambda n: 2 * (n - 1) / n,
    "all_gather": lambda n: (n - 1) / n,
    "reduce_scatter": lambda n: (n - 1) / n,
    "all_to_all": lambda n: (n - 1) / n,
    "send_recv": lambda n: 1.0,
}


def _validate(kind, size_bytes, num_workers, cluster: Cluster):
    if kind not in KINDS:
        raise ValueError(f"unknown collective {kind!r}; known: {', '.join(KINDS)}")
    size = np.asarray(size_bytes, dtype=float)
    if np.any(~np.isfinite(size)) or np.any(size < 0):
        raise ValueError("collective size_bytes must be finite and >= 0")
    if int(num_workers) != num_workers or num_workers < 1:
        raise ValueError(f"num_workers must be a positive integer, got {num_workers!r}")
    n = int(num_workers)
    if n > cluster.num_gpus:
        raise ValueError(f"{n} workers do not fit cluster {cluster.name or ''} of {cluster.num_gpus} GPUs")
    if kind == "send_recv" and n != 2:
        raise ValueError("send_recv is between 2 workers")
    return size, n


def link_terms(cluster: Cluster, num_workers: int, kind: str, params: dict) -> tuple[float, float]:
    """(bottleneck bandwidth in bytes/s, per-step latency in s) for a collective over num_workers."""
    reduce = kind in REDUCING
    intra_bw = cluster.intra_node.bandwidth_gbps * 1e9 * params["intra_eff"]
    if reduce:
        intra_bw *= params["intra_reduce_eff"]
    if cluster.nodes_spanned(num_workers) == 1:
        return intra_bw, params["intra_latency_us"] * 1e-6
    per_node = min(num_workers, cluster.gpus_per_node)
    nic = cluster.inter_node.bandwidth_gbps * 1e9 * params["inter_eff"]
    inter_bw = nic * min(per_node, params["inter_cap_nics"])
    if reduce:
        inter_bw *= params["inter_reduce_eff"]
    return min(intra_bw, inter_bw), params["inter_latency_us"] * 1e-6


def collective_seconds(kind: str, size_bytes, num_workers: int, cluster: Cluster | str, *,
                       params: dict | None = None, algorithm: str = "auto"):
    """Seconds for one collective; `size_bytes` may be a numpy array (then an array comes back)."""
    if algorithm not in ("auto", "ring", "tree"):
        raise ValueError("algorithm must be 'auto', 'ring' or 'tree'")
    cluster = get_cluster(cluster)
    p = {**DEFAULT_PARAMS, **(params or {})}
    size, n = _validate(kind, size_bytes, num_workers, cluster)
    if n == 1:
        return np.zeros_like(size) if size.ndim else 0.0
    bw, alpha = link_terms(cluster, n, kind, p)
    base = p["base_latency_us"] * 1e-6

    def cost(steps, volume, frac=1.0):
        simple = steps * alpha + volume / (bw * frac)
        low_latency = steps * alpha * p["ll_latency_frac"] + volume / (bw * frac * p["ll_bandwidth_frac"])
        return base + np.minimum(simple, low_latency)

    if kind == "send_recv":
        t = cost(1, size)
    elif kind == "all_to_all":
        # Pairwise exchange on a switched fabric: N-1 steps, (N-1)/N of the data leaves each rank.
        t = cost(n - 1, (n - 1) / n * size)
    else:
        phases = 2 if kind == "all_reduce" else 1
        ring = cost(phases * (n - 1), phases * (n - 1) / n * size)
        tree = cost(phases * math.ceil(math.log2(n)), phases * size, p["tree_bandwidth_frac"])
        t = {"ring": ring, "tree": tree, "auto": np.minimum(ring, tree)}[algorithm]
    return t if np.ndim(t) else float(t)


def bus_bandwidth_gbps(kind: str, size_bytes, seconds, num_workers: int):
    """nccl-tests bus bandwidth (GB/s) of a measured or predicted collective."""
    return np.asarray(size_bytes) / np.asarray(seconds) * BUSBW_FACTOR[kind](num_workers) / 1e9
