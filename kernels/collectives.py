"""Alpha-beta cost of NCCL-style collectives on a `Cluster`, with NCCL's algorithm/protocol choice.

Sizes follow nccl-tests: `size_bytes` is the all-reduce buffer, the gathered output of all-gather,
the input of reduce-scatter, what one rank sends in all-to-all, and the message of send/recv.

Links. Inside a node every GPU reaches the others over NVLink/NVSwitch at `intra_node` bandwidth
times a fitted efficiency. Across nodes a node's bandwidth is one NIC's line rate (`inter_node`) x an
efficiency x the number of independent network paths it uses: min(the group's ranks on the node /
`pcie_share`, `nic_cap`, the NICs the node drives). Reduction kernels (all-reduce, reduce-scatter) read,
add and write, so they move bytes at a fitted fraction of a plain copy's rate.

Networks. The NVLink and NCCL-software terms are properties of the node type and are fitted once; the
network terms (`NETWORK_KEYS`) are properties of the network a cluster's nodes attach to, looked up by
the name of its `inter_node` link in the calibration's `networks` table (`network_params`). vidur's
"a100_dgx" profiles measured a network that gives a node at most ~9 GB/s across nodes (send/recv between
two nodes 7.8 GB/s, a 16-GPU all-reduce over two nodes ~17 GB/s bus bandwidth at 64 MiB), although
vidur's own config calls it 8 x 200 Gb/s: the fit describes that network (cluster preset
`vidur-a100-dgx`: `nic_cap` 1.2 paths at 31 % of line rate), not a DGX A100 whose eight HDR NICs carry
its traffic at line rate (Selene, Narayanan et al. SC'21 Sec. 5). A link without an entry in the
table gets `DEFAULT_NETWORK`: an RDMA network that NCCL drives near line rate on every NIC.

Algorithms (for a time t = latency + bytes / bandwidth):
* Ring: 2(N-1) steps (all-reduce) or N-1; every rank moves 2(N-1)/N S (all-reduce), and the same
  volume crosses each node boundary, so ring bus bandwidth = min(NVLink, node bandwidth).
* Tree (double binary tree, all-reduce across nodes only, as NCCL): 2((G-1) + log2 nodes) steps for
  G GPUs per node; each node sends and receives the whole buffer S once over the network (not
  2(N-1)/N S), so across nodes the tree beats the ring on bandwidth, by up to 2x; `tree_eff` (fitted)
  scales the tree's per-node network bandwidth against the ring's.
* Protocols LL / LL128 / Simple: LL and LL128 cut per-step and per-call latency at a fraction of the
  bandwidth (LL packs 4 B of data with a 4 B flag; LL128 120 of 128 B), fitted as fractions.
  LL128 is not used over the network (NCCL enables it on NVLink only on these systems).

Choice. NCCL does not pick the truly fastest variant: its tuner (src/graph/tuning.cc) predicts each
(algorithm, protocol) with its own model, where the tree's bus bandwidth is `tuner_tree` x the ring's,
its algorithm bandwidth half of that, derated by NCCL's size-dependent `treeCorrectionFactor` table;
the measured time is that of the variant the tuner picks. This is what makes a 4-GPU, 2-node
all-reduce switch from ring to tree and back at power-of-two sizes in vidur's A100 profiles.
The choice is a softmin over the tuner's log-times with temperature `TUNER_TAU` (0.02, i.e. sharp);
`tuner_tree` is fitted on a small grid. A consequence the profiles show too: across nodes the time can
drop where the tuner switches from ring to tree (e.g. 16 GPUs on 2 nodes between 12.6 and 13.6 MB).

Fit and accuracy (data/calibration_a100.json, vidur's DGX A100 network profiles, median time per row):
pooled MAPE 11.0 % over 8,946 rows; fitted on every other size of each group, 12.1 % on the rest.
The fit converges until no parameter moves by more than 1e-10 (relative), so a refit reproduces the
shipped numbers to ~1e-9 (a start perturbed by 1e-4 lands within 3e-7 of them).
"""
from __future__ import annotations

import math

import numpy as np

from .hardware import Cluster, get_cluster

KINDS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv")
REDUCING = ("all_reduce", "reduce_scatter")
PROTOCOLS = ("LL", "LL128", "Simple")

# Used when no calibration is loaded; `fit_collectives` replaces them (see data/calibration_a100.json).
DEFAULT_PARAMS = {
    "intra_eff": 0.8,  # nccl-tests send/recv ~ 240 of 300 GB/s NVLink on DGX A100 (NVIDIA NCCL docs)
    "reduce_eff": 0.6,  # reduction kernels vs plain copies, over NVLink
    "intra_latency_us": 2.0,  # per ring/tree step over NVLink (NCCL hwLat NVLink: 0.6-4 us)
    "coll_base_us": 40.0,  # per call: kernel launch, proxy and synchronisation (Simple protocol)
    "p2p_base_us": 10.0,  # per call for send/recv
    # Protocol fractions are fitted freely; NCCL's design values are ~0.5 (LL: 4 B data + 4 B flag)
    # and 120/128 (LL128); the shipped fit lands at 0.28 and 0.99 (LL's bandwidth is weakly identified:
    # LL carries only small messages, where latency dominates).
    "ll_bandwidth_frac": 0.3,
    "ll_latency_frac": 0.3,
    "ll128_bandwidth_frac": 0.8,
    "ll128_latency_frac": 0.6,
    "tuner_tree": 1.75,  # NCCL tuner's tree/ring bus-bandwidth ratio (a belief, not a speed)
}
# The network terms, per network (see the module doc). DEFAULT_NETWORK is an RDMA network (InfiniBand or
# RoCE with GPUDirect RDMA) that NCCL drives near line rate: one HDR NIC carries 24 of its 25 GB/s
# (NVIDIA/nccl#1048) and a 100 Gb/s NIC 12.2 of 12.5 GB/s, "as good as you can get" (NCCL maintainer,
# NVIDIA/nccl-tests#29), so inter_eff = 0.96; multi-node all-reduce reaches 86-96 of 100 GB/s bus bandwidth
# on four HDR NICs (NVIDIA/nccl-tests#119, NVIDIA/nccl#1048), about 0.94 of that copy rate, inter_reduce_eff;
# every GPU has its own NIC (pcie_share 1, DGX A100/H100 whitepapers) and no end-to-end cap (nic_cap inf).
# Its per-step network latency is the link's own `latency_us` (clusters.yaml).
NETWORK_KEYS = ("inter_eff", "inter_reduce_eff", "nic_cap", "pcie_share", "net_latency_extra_us", "tree_eff")
DEFAULT_NETWORK = {
    "inter_eff": 0.96,
    "inter_reduce_eff": 0.94,
    "nic_cap": math.inf,
    "pcie_share": 1.0,
    "tree_eff": 1.0,  # tree's per-node network bandwidth relative to the ring's
}
TUNER_TAU = 0.02

# NCCL treeCorrectionFactor (src/graph/tuning.cc, NCCL 2.1x), LL / LL128 / Simple, indexed by
# log2(bytes / 64): powers of two from 64 B to 256 MiB; 1.0 beyond.
TREE_CORRECTION = {
    "LL": (1.0, 1.0, 1.0, 1.0, .9, .8, .7, .7, .7, .7, .6, .5, .4, .4, .5, .6, .7, .8, .9, 1.0, 1.0, 1.0, 1.0),
    "LL128": (1.0, 1.0, 1.0, 1.0, 1.0, .9, .8, .8, .8, .7, .6, .6, .6, .6, .6, .6, .8, .9, .9, .9, .9, 1.0, 1.0),
    "Simple": (.9, .9, .9, .9, .9, .9, .9, .8, .7, .6, .6, .5, .5, .5, .5, .6, .7, .8, .7, .7, .8, .9, .9),
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


def tree_correction(protocol: str, size) -> np.ndarray:
    idx = np.floor(np.log2(np.maximum(np.asarray(size, dtype=float), 64.0) / 64.0)).astype(int)
    table = np.array(TREE_CORRECTION[protocol])
    return np.where(idx < table.size, table[np.minimum(idx, table.size - 1)], 1.0)


def network_params(params: dict, link) -> dict:
    """The network terms for a cluster's inter-node `link`: the calibration's `networks[link.name]` entry, else
    DEFAULT_NETWORK (with the link's own per-step latency). Network keys at the top level of `params` (the
    single-network calibrations written before the `networks` table) apply to every link without an entry."""
    out = {**DEFAULT_NETWORK, "net_latency_extra_us": float(link.latency_us)}
    out.update({k: params[k] for k in NETWORK_KEYS if k in params})
    out.update((params.get("networks") or {}).get(link.name, {}))
    return out


def link_terms(cluster: Cluster, num_workers: int, kind: str, params: dict) -> dict:
    """Bandwidths (bytes/s) and latencies (s) of the links a collective over num_workers uses."""
    reduce = kind in REDUCING
    nodes = cluster.nodes_spanned(num_workers)
    per_node = min(num_workers, cluster.gpus_per_node)
    intra = cluster.intra_node.bandwidth_gbps * 1e9 * params["intra_eff"]
    if reduce:
        intra *= params["reduce_eff"]
    step = params["intra_latency_us"] * 1e-6
    if nodes == 1:
        return {"nodes": 1, "per_node": per_node, "intra_bw": intra, "node_bw": math.inf,
                "intra_step": step, "step": step, "tree_eff": 1.0}
    net = network_params(params, cluster.inter_node)
    paths = min(math.ceil(per_node / net["pcie_share"]), net["nic_cap"], cluster.nics)
    node_bw = cluster.inter_node.bandwidth_gbps * 1e9 * net["inter_eff"] * paths
    if reduce:
        node_bw *= net["inter_reduce_eff"]
    return {"nodes": nodes, "per_node": per_node, "intra_bw": intra, "node_bw": node_bw,
            "intra_step": step, "step": step + net["net_latency_extra_us"] * 1e-6, "tree_eff": net["tree_eff"]}


def _variants(kind: str, size, n: int, links: dict, p: dict, algorithm: str):
    """{(algorithm, protocol): (actual seconds, NCCL tuner's seconds)} for the allowed variants."""
    multi = links["nodes"] > 1
    base = (p["p2p_base_us"] if kind == "send_recv" else p["coll_base_us"]) * 1e-6
    bw = min(links["intra_bw"], links["node_bw"])
    fracs = {"LL": (p["ll_bandwidth_frac"], p["ll_latency_frac"]),
             "LL128": (p["ll128_bandwidth_frac"], p["ll128_latency_frac"]), "Simple": (1.0, 1.0)}
    out = {}
    for proto in PROTOCOLS:
        bf, lf = fracs[proto]
        if multi and proto == "LL128":
            continue
        if kind == "send_recv":
            t = base * lf + links["step"] * lf + size / (bw * bf)
            out[("p2p", proto)] = (t, t)
        elif kind == "all_to_all":
            # Pairwise exchange: N-1 steps; each rank sends (N-1)/N S over NVLink and a node pushes
            # G (N-G)/N S through its network paths.
            g = links["per_node"]
            seconds = np.maximum((n - 1) / n * size / (links["intra_bw"] * bf),
                                 g * (n - g) / n * size / (links["node_bw"] * bf))
            t = base * lf + (n - 1) * links["step"] * lf + seconds
            out[("pairwise", proto)] = (t, t)
        else:
            phases = 2 if kind == "all_reduce" else 1
            if algorithm in ("auto", "ring") or kind != "all_reduce":  # NCCL has trees for all-reduce only
                t = base * lf + phases * (n - 1) * links["step"] * lf + phases * (n - 1) / n * size / (bw * bf)
                out[("ring", proto)] = (t, t)
            if kind == "all_reduce" and (algorithm == "tree" or (algorithm == "auto" and multi)):
                g, nodes = links["per_node"], links["nodes"]
                lat = base * lf + 2 * ((g - 1) * links["intra_step"] + math.ceil(math.log2(nodes)) * links["step"]) * lf
                tree_bw = min(links["intra_bw"], links["node_bw"] * links["tree_eff"]) * bf
                actual = lat + size / tree_bw
                tuner = lat + 2 * size / (p["tuner_tree"] * bw * bf * tree_correction(proto, size))
                out[("tree", proto)] = (actual, tuner)
    return out


def collective_seconds(kind: str, size_bytes, num_workers: int, cluster: Cluster | str, *,
                       params: dict | None = None, algorithm: str = "auto"):
    """Seconds for one collective; `size_bytes` may be a numpy array (then an array comes back).

    algorithm="auto" is NCCL's choice (see the module docstring); "ring" / "tree" force one (the
    protocol is still chosen by the tuner); "tree" applies to all-reduce only, other kinds run rings.
    """
    if algorithm not in ("auto", "ring", "tree"):
        raise ValueError("algorithm must be 'auto', 'ring' or 'tree'")
    cluster = get_cluster(cluster)
    p = {**DEFAULT_PARAMS, **(params or {})}
    size, n = _validate(kind, size_bytes, num_workers, cluster)
    if n == 1:
        return np.zeros_like(size) if size.ndim else 0.0
    variants = _variants(kind, size, n, link_terms(cluster, n, kind, p), p, algorithm)
    actual = np.stack([np.broadcast_to(a, size.shape) for a, _ in variants.values()])
    tuner = np.log(np.stack([np.broadcast_to(t, size.shape) for _, t in variants.values()]))
    weight = np.exp(-(tuner - tuner.min(axis=0)) / TUNER_TAU)
    t = (weight * actual).sum(axis=0) / weight.sum(axis=0)
    return t if np.ndim(t) else float(t)


def bus_bandwidth_gbps(kind: str, size_bytes, seconds, num_workers: int):
    """nccl-tests bus bandwidth (GB/s) of a measured or predicted collective."""
    return np.asarray(size_bytes) / np.asarray(seconds) * BUSBW_FACTOR[kind](num_workers) / 1e9
