"""The exact model of VM rescheduling shared by the MILP and the CP-SAT solvers.

VMs of one shape (cores, memory, single/double NUMA) on one place are interchangeable, so the model counts
them instead of naming them (a per-VM binary model is full of symmetric optima and was 3-10x slower on
the `small` preset). For each group g = (shape, source place) with n_g VMs, an integer y[g, d] counts the
VMs that end at place d (a NUMA node for single-NUMA VMs, a PM for double-NUMA ones); sum_d y[g, d] = n_g.
Per node: free = cap - usage = 16 q + r with 0 <= r <= 15, integer q >= 0. Migrations never change the
total free CPU, so minimising the fragment rate sum(r) / total_free is minimising sum(r): linear. At most
MNL VMs leave their place: sum_g (n_g - y[g, source]) <= MNL. Anti-affinity: at most one VM of a group per PM.

Large instances (VMR2L's medium: 2,089 VMs x 560 nodes) are restricted to `max_vms` candidate VMs (those
on the most fragmented nodes, plus any a warm start moves); the others stay put. The model is then a
heuristic and its bound is not a bound of the full problem (reported as such).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sysgym.envs.vm_resched.instance import VmInstance
from sysgym.envs.vm_resched.state import ClusterState


@dataclass
class Group:
    cpu: int  # per node
    mem: int  # per node
    double: bool
    vms: list[int]  # the interchangeable candidate VMs
    places: list[tuple[int, int, tuple[int, ...]]]  # destinations (pm, numa, nodes); numa -1 for double
    current: int  # index of the source place in `places`
    aff: int = -1  # anti-affinity group of its VMs (-1: none)


@dataclass
class ModelData:
    inst: VmInstance
    vms: np.ndarray  # candidate VMs
    groups: list[Group]
    base_cpu: np.ndarray  # per node: usage by fixed (non-candidate) VMs
    base_mem: np.ndarray
    exact: bool  # True when nothing was restricted: the model's bound is the problem's bound
    aff_fixed: dict[tuple[int, int], int] | None = None  # (anti-affinity group, PM) -> fixed VMs there

    def affinity_rows(self) -> list[list[tuple[int, int]]]:
        """Per (anti-affinity group, PM) with a candidate that could land there: the count variables that
        put a group member on that PM; their sum (plus fixed members there) must stay <= 1."""
        rows: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for g, grp in enumerate(self.groups):
            if grp.aff < 0:
                continue
            for j, (pm, _k, _nodes) in enumerate(grp.places):
                rows.setdefault((grp.aff, pm), []).append((g, j))
        fixed = self.aff_fixed or {}
        return [terms for key, terms in rows.items() if len(terms) > 1 or fixed.get(key, 0)]

    def affinity_fixed(self, terms: list[tuple[int, int]]) -> int:
        g, j = terms[0]
        return (self.aff_fixed or {}).get((self.groups[g].aff, self.groups[g].places[j][0]), 0)

    def node_rows(self) -> dict[int, list[tuple[int, int, int, int]]]:
        """node -> [(group, place, cpu, mem)]: what each count variable puts on each node."""
        rows: dict[int, list[tuple[int, int, int, int]]] = {}
        for g, grp in enumerate(self.groups):
            for j, (_p, _k, nodes) in enumerate(grp.places):
                for n in nodes:
                    rows.setdefault(n, []).append((g, j, grp.cpu, grp.mem))
        return rows


def build(inst: VmInstance, max_vms: int | None = 200, must_include: list[int] | tuple[int, ...] = ()) -> ModelData:
    state = ClusterState(inst)
    unit = inst.frag_unit
    v_all = np.arange(inst.num_vms)
    if max_vms is None or inst.num_vms <= max_vms:
        vms = v_all
    else:
        # Candidates: VMs on nodes with a large remainder, small VMs first (they fix remainders).
        node_rem = state.free_cpu % unit
        score = np.array([max(node_rem[n] for n in state.nodes_of(v)) for v in v_all], float)
        key = np.lexsort((v_all, state.vm_cpu, -score))
        # VMs a warm start moves are always candidates, so the warm start is a solution of the model.
        must = np.unique(np.asarray(must_include, np.int64))
        rest = key[~np.isin(key, must)][: max(0, max_vms - len(must))]
        vms = np.sort(np.concatenate([must, rest]).astype(np.int64))
    exact = len(vms) == inst.num_vms
    fixed = np.setdiff1d(v_all, vms)
    aff_fixed: dict[tuple[int, int], int] = {}
    for v in fixed:
        if inst.vm_group[v] >= 0:
            key = (int(inst.vm_group[v]), int(inst.vm_pm[v]))
            aff_fixed[key] = aff_fixed.get(key, 0) + 1
    base_cpu, base_mem = np.zeros(len(inst.node_cpu), np.int64), np.zeros(len(inst.node_cpu), np.int64)
    for v in fixed:
        c, m = state.per_node_demand(int(v))
        for n in state.nodes_of(int(v)):
            base_cpu[n] += c
            base_mem[n] += m
    free_c, free_m = inst.node_cpu - base_cpu, inst.node_mem - base_mem
    by_key: dict[tuple, list[int]] = {}
    for v in vms:
        v = int(v)
        c, m = state.per_node_demand(v)
        src = int(inst.vm_pm[v]) if inst.vm_double[v] else 2 * int(inst.vm_pm[v]) + int(inst.vm_numa[v])
        by_key.setdefault((c, m, bool(inst.vm_double[v]), src, int(inst.vm_group[v])), []).append(v)
    groups = []
    for (c, m, double, src, aff), members in sorted(by_key.items()):
        if double:
            ok = (free_c.reshape(-1, 2).min(axis=1) >= c) & (free_m.reshape(-1, 2).min(axis=1) >= m)
            ok[src] = True
            places = [(int(p), -1, (2 * int(p), 2 * int(p) + 1)) for p in np.flatnonzero(ok)]
            current = next(j for j, pl in enumerate(places) if pl[0] == src)
        else:
            ok = (free_c >= c) & (free_m >= m)
            ok[src] = True
            places = [(int(n) // 2, int(n) % 2, (int(n),)) for n in np.flatnonzero(ok)]
            current = next(j for j, pl in enumerate(places) if pl[2][0] == src)
        groups.append(Group(c, m, double, members, places, current, aff))
    return ModelData(inst, vms, groups, base_cpu, base_mem, exact, aff_fixed)


def placement_from(data: ModelData, counts: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """A full final placement from the count of each group's VMs at each place (VMs stay first)."""
    pm, numa = data.inst.vm_pm.copy(), data.inst.vm_numa.copy()
    for grp, row in zip(data.groups, counts):
        members = list(grp.vms)
        stay = int(row[grp.current])
        movers = members[stay:]  # deterministic: the lowest-numbered VMs stay
        k = 0
        for j, cnt in enumerate(row):
            if j == grp.current:
                continue
            for _ in range(int(cnt)):
                p, nm, _ = grp.places[j]
                pm[movers[k]], numa[movers[k]] = p, nm
                k += 1
    return pm, numa


def hint_counts(data: ModelData, final_pm: np.ndarray, final_numa: np.ndarray) -> list[list[int]]:
    """Counts matching a known placement (a warm start)."""
    out = []
    for grp in data.groups:
        row = [0] * len(grp.places)
        index = {(p, k): j for j, (p, k, _) in enumerate(grp.places)}
        for v in grp.vms:
            target = (int(final_pm[v]), -1 if grp.double else int(final_numa[v]))
            row[index.get(target, grp.current)] += 1
        out.append(row)
    return out


def add_to(data: ModelData, int_var, add, no_reliance: set[int]) -> tuple[list[list], list]:
    """Write the model into a MILP (pywraplp) or CP-SAT model through two callbacks, so both solvers solve
    the very same model: `int_var(lo, hi, name)` makes an integer variable, `add(constraint)` posts one.
    Returns the count variables y[group][place] and the remainder variables whose sum is minimised."""
    inst = data.inst
    y = [[int_var(0, len(g.vms), f"y_{i}_{j}") for j in range(len(g.places))] for i, g in enumerate(data.groups)]
    for g, row in zip(data.groups, y):
        add(sum(row) == len(g.vms))
    add(sum(len(g.vms) - y[i][g.current] for i, g in enumerate(data.groups)) <= inst.mnl)
    rows = data.node_rows()
    used_cpu, used_mem = inst.node_usage()
    unit = inst.frag_unit
    r_vars = []
    for n in range(len(inst.node_cpu)):
        terms = rows.get(n, [])
        cpu = sum(c * y[i][j] for i, j, c, _ in terms) + int(data.base_cpu[n])
        mem = sum(m * y[i][j] for i, j, _, m in terms) + int(data.base_mem[n])
        cap_c, cap_m = int(inst.node_cpu[n]), int(inst.node_mem[n])
        add(mem <= cap_m)
        q = int_var(0, cap_c // unit, f"q_{n}")
        r = int_var(0, unit - 1, f"r_{n}")
        add(cap_c - cpu == unit * q + r)  # also enforces cpu <= cap since q, r >= 0
        r_vars.append(r)
        if n in no_reliance:
            # Repair of unorderable plans: arrivals must fit without the space departures free.
            incoming = [(i, j, c, m) for i, j, c, m in terms if j != data.groups[i].current]
            if incoming:
                add(int(used_cpu[n]) + sum(c * y[i][j] for i, j, c, _ in incoming) <= cap_c)
                add(int(used_mem[n]) + sum(m * y[i][j] for i, j, _, m in incoming) <= cap_m)
    for terms in data.affinity_rows():
        add(sum(y[i][j] for i, j in terms) + data.affinity_fixed(terms) <= 1)
    return y, r_vars
