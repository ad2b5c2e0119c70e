"""VMR2L's two-stage decision for `VmResched-v0(action_mode="two_stage")`: features and masks per stage.

Stage 0 picks a VM, stage 1 its destination node (`2 * pm + numa`; even nodes only for a double-NUMA VM).
Nothing here builds a VMs x destinations table: the VM stage groups VMs by shape (CPU, memory, double-NUMA;
a few distinct shapes: `generator.VM_CORES` x 2 GiB per core), so "where could this VM go and how much would
the best such move lower the fragment numerator" costs shapes x nodes, plus an exact per-VM scan only for
VMs of an anti-affinity group; the destination stage scans the nodes for the one chosen VM.

Deltas are in free-CPU remainders (free CPU mod `unit`) summed over the nodes involved: the numerator of
the fragment rate (`state.fragment_rate`), whose denominator (total free CPU) no migration changes.
"""
from __future__ import annotations

import numpy as np

from sysgym.envs.vm_resched.state import ClusterState

VM_EXTRA_FEATURES = 3  # source remainder change, best move's remainder change, has-a-move flag (all / unit)
DEST_FEATURES = 6  # after-remainder, destination change, source change, total change (/ unit), no-op, feasible
BIG = 1 << 30


def per_node_demand(st: ClusterState) -> tuple[np.ndarray, np.ndarray]:
    c = np.where(st.vm_double, st.vm_cpu // 2, st.vm_cpu).astype(np.int64)
    m = np.where(st.vm_double, st.vm_mem // 2, st.vm_mem).astype(np.int64)
    return c, m


def source_change(st: ClusterState, c: np.ndarray) -> np.ndarray:
    """Per VM: change of the remainder sum on its current node(s) when it leaves (can be negative)."""
    u, f = st.unit, st.free_cpu.astype(np.int64)
    node0 = 2 * st.vm_pm + np.maximum(st.vm_numa, 0)
    out = (f[node0] + c) % u - f[node0] % u
    dbl = st.vm_double
    if dbl.any():
        other = 2 * st.vm_pm[dbl] + 1
        out[dbl] += (f[other] + c[dbl]) % u - f[other] % u
    return out


def _two_best(score: np.ndarray) -> tuple[int, int, float, float]:
    """Indices and values of the smallest and second-smallest entries (BIG where absent)."""
    if len(score) == 0:
        return -1, -1, BIG, BIG
    i1 = int(np.argmin(score))
    v1 = float(score[i1])
    s2 = score.copy()
    s2[i1] = BIG
    i2 = int(np.argmin(s2))
    return i1, i2, v1, float(s2[i2])


def vm_stage(st: ClusterState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(has_move, best destination change, source change) per VM, exact, without a VMs x nodes table."""
    u = st.unit
    f, fm = st.free_cpu.astype(np.int64), st.free_mem.astype(np.int64)
    c, m = per_node_demand(st)
    src = source_change(st, c)
    n = st.num_vms
    has = np.zeros(n, bool)
    best = np.zeros(n, np.int64)
    own = np.where(st.vm_double, st.vm_pm, 2 * st.vm_pm + np.maximum(st.vm_numa, 0))
    grouped = (st.vm_group >= 0) & st.alive
    f2, fm2 = f.reshape(-1, 2), fm.reshape(-1, 2)
    for dbl in (False, True):
        sel = (st.vm_double == dbl) & st.alive & ~grouped
        if not sel.any():
            continue
        shapes = np.unique(np.stack([c[sel], m[sel]], 1), axis=0)
        for cc, mm in shapes:
            if dbl:  # per PM: both nodes must fit; change summed over both
                fits = (f2.min(1) >= cc) & (fm2.min(1) >= mm)
                change = ((f2 - cc) % u - f2 % u).sum(1)
            else:
                fits = (f >= cc) & (fm >= mm)
                change = (f - cc) % u - f % u
            score = np.where(fits, change, BIG)
            i1, _i2, v1, v2 = _two_best(score)
            count = int(fits.sum())
            rows = np.flatnonzero(sel & (c == cc) & (m == mm))
            own_fits = fits[own[rows]]  # the VM's own place counts in `fits` when another copy would fit
            has[rows] = count - own_fits > 0
            best[rows] = np.where(own[rows] == i1, v2, v1)
    for v in np.flatnonzero(grouped):
        feas, total, *_ = dest_table(st, int(v))
        feas[own_node(st, int(v))] = False
        has[v] = feas.any()
        best[v] = (total[feas].min() - src[v]) if has[v] else 0
    best = np.where(has, best + src, 0)
    return has, best, src


def own_node(st: ClusterState, v: int) -> int:
    return int(2 * st.vm_pm[v] + (0 if st.vm_double[v] else st.vm_numa[v]))


def dest_table(st: ClusterState, v: int):
    """For VM v over all destination nodes: feasible (own place included: the no-op), total remainder
    change, remainder after, destination change, source change (scalar)."""
    u = st.unit
    f, fm = st.free_cpu.astype(np.int64), st.free_mem.astype(np.int64)
    nd = len(f)
    c, m = st.per_node_demand(v)
    own = own_node(st, v)
    if st.vm_double[v]:
        f2, fm2 = f.reshape(-1, 2), fm.reshape(-1, 2)
        fits_pm = (f2.min(1) >= c) & (fm2.min(1) >= m)
        feas = np.zeros(nd, bool)
        feas[0::2] = fits_pm
        d_dst = np.zeros(nd, np.int64)
        d_dst[0::2] = ((f2 - c) % u - f2 % u).sum(1)
        after = np.zeros(nd, np.float64)
        after[0::2] = ((f2 - c) % u).mean(1)
        s = f2[st.vm_pm[v]]
        d_src = int(((s + c) % u - s % u).sum())
    else:
        feas = (f >= c) & (fm >= m)
        d_dst = (f - c) % u - f % u
        after = ((f - c) % u).astype(np.float64)
        d_src = int((f[own] + c) % u - f[own] % u)
    for pm in st.group_blocked_pms(v):
        feas[2 * pm:2 * pm + 2] = False
    feas[own] = True
    total = d_dst + d_src
    total[own] = 0
    d_dst = d_dst.copy()
    d_dst[own] = 0
    after[own] = f[own] % u
    return feas, total, after, d_dst, d_src


def dest_features(st: ClusterState, v: int) -> tuple[np.ndarray, np.ndarray]:
    """(n_dest, DEST_FEATURES) float32 features of VM v's destinations and their feasibility mask."""
    u = st.unit
    feas, total, after, d_dst, d_src = dest_table(st, v)
    nd = len(feas)
    out = np.zeros((nd, DEST_FEATURES), np.float32)
    own = own_node(st, v)
    out[:, 0] = after / u
    out[:, 1] = d_dst / u
    out[:, 2] = d_src / u
    out[own, 2] = 0.0
    out[:, 3] = total / u
    out[own, 4] = 1.0
    out[:, 5] = feas
    out[~feas, :4] = 0.0
    return out, feas
