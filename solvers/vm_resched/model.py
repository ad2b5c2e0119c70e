"""The exact model of VM rescheduling shared by the MILP and the CP-SAT solvers.

Variables: x[v, d] = 1 when VM v ends at place d (a NUMA node for a single-NUMA VM, a PM for a
double-NUMA VM). Per node n: free_n = cap_n - usage_n = 16 q_n + r_n with 0 <= r_n <= 15 and integer q_n.
Migrations never change the total free CPU, so minimising the fragment rate sum(r_n) / total_free is
minimising sum(r_n): a linear objective. At most MNL VMs leave their current place.

Large instances (VMR2L's medium has 2,089 VMs x 560 nodes = 1.2 M binaries) are restricted to
`max_vms` candidate VMs (those on the most fragmented nodes) and the nodes that can take them; the
model is then a heuristic and its bound is not a bound of the full problem (reported as such).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sysgym.envs.vm_resched.instance import VmInstance
from sysgym.envs.vm_resched.state import ClusterState


@dataclass
class ModelData:
    inst: VmInstance
    vms: np.ndarray  # candidate VMs (free variables); the others stay put
    places: list[list[tuple[int, int, tuple[int, ...]]]]  # per candidate: (pm, numa, nodes)
    current: list[int]  # per candidate: index of its current place in `places`
    base_cpu: np.ndarray  # per node: usage by fixed VMs
    base_mem: np.ndarray
    exact: bool  # True when nothing was restricted: the model's bound is the problem's bound


def build(inst: VmInstance, max_vms: int | None = 200, max_places: int | None = None,
          must_include: list[int] | tuple[int, ...] = ()) -> ModelData:
    state = ClusterState(inst)
    unit = inst.frag_unit
    v_all = np.arange(inst.num_vms)
    if max_vms is None or inst.num_vms <= max_vms:
        vms = v_all
    else:
        # Candidates: VMs on nodes with a non-zero remainder, small VMs first (they fix remainders).
        node_rem = state.free_cpu % unit
        score = np.array([max(node_rem[n] for n in state.nodes_of(v)) for v in v_all], float)
        key = np.lexsort((v_all, state.vm_cpu, -score))
        # VMs a warm start moves are always candidates, so the warm start is a solution of the model.
        must = np.unique(np.asarray(must_include, np.int64))
        rest = key[~np.isin(key, must)][: max(0, max_vms - len(must))]
        vms = np.sort(np.concatenate([must, rest]).astype(np.int64))
    exact = len(vms) == inst.num_vms and max_places is None
    fixed = np.setdiff1d(v_all, vms)
    base_cpu, base_mem = np.zeros(len(inst.node_cpu), np.int64), np.zeros(len(inst.node_cpu), np.int64)
    for v in fixed:
        c, m = state.per_node_demand(int(v))
        for n in state.nodes_of(int(v)):
            base_cpu[n] += c
            base_mem[n] += m
    places, current = [], []
    n_pm = inst.num_pms
    for v in vms:
        v = int(v)
        c, m = state.per_node_demand(v)
        opts = []
        if inst.vm_double[v]:
            ok = ((inst.node_cpu.reshape(-1, 2) - base_cpu.reshape(-1, 2)).min(axis=1) >= c) & \
                 ((inst.node_mem.reshape(-1, 2) - base_mem.reshape(-1, 2)).min(axis=1) >= m)
            for p in range(n_pm):
                if ok[p] or p == inst.vm_pm[v]:
                    opts.append((p, -1, (2 * p, 2 * p + 1)))
        else:
            ok = ((inst.node_cpu - base_cpu) >= c) & ((inst.node_mem - base_mem) >= m)
            for n in range(2 * n_pm):
                if ok[n] or n == 2 * inst.vm_pm[v] + inst.vm_numa[v]:
                    opts.append((n // 2, n % 2, (n,)))
        if max_places is not None and len(opts) > max_places:
            cur = [o for o in opts if state.is_current(v, o[0], o[1])]
            opts = cur + [o for o in opts if o not in cur][: max_places - 1]
        places.append(opts)
        current.append(next(i for i, o in enumerate(opts) if state.is_current(v, o[0], max(o[1], 0))))
    return ModelData(inst, vms, places, current, base_cpu, base_mem, exact)


def placement_from(data: ModelData, chosen: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Full final placement from the chosen place index of each candidate VM."""
    pm, numa = data.inst.vm_pm.copy(), data.inst.vm_numa.copy()
    for i, v in enumerate(data.vms):
        p, k, _ = data.places[i][chosen[i]]
        pm[v], numa[v] = p, k
    return pm, numa


def hint_indices(data: ModelData, final_pm: np.ndarray, final_numa: np.ndarray) -> list[int]:
    """Place indices matching a known placement (a warm start); current place when not a candidate."""
    out = []
    for i, v in enumerate(data.vms):
        target = (int(final_pm[v]), int(final_numa[v]) if not data.inst.vm_double[v] else -1)
        idx = next((j for j, o in enumerate(data.places[i]) if (o[0], o[1]) == target), data.current[i])
        out.append(idx)
    return out
