"""The exact model of VM rescheduling shared by the MILP, CP-SAT and LNS solvers.

VMs of one shape (cores and memory per node, single/double NUMA, anti-affinity group) are interchangeable,
and the fragment rate depends only on how much CPU ends on each node, so the model needs neither VM
identities nor origin-destination pairs: for each shape s and place p (a NUMA node for single-NUMA shapes, a
PM for double-NUMA ones) it counts `out[s, p]`, the VMs of s that leave p, and `inc[s, p]`, those that arrive.

* Conservation: sum_p out[s, p] = sum_p inc[s, p] for every shape (VMs leave only to land elsewhere).
* Migration limit: sum out <= MNL.
* Per node n: final free CPU = free_n + sum (cores moved out - cores moved in) = 16 q_n + r_n, 0 <= r_n <= 15,
  q_n >= 0 (so CPU capacity holds); final free memory >= 0.
* Anti-affinity: at most one VM of a group per PM at the end.
* Objective: min sum_n r_n (migrations never change the total free CPU, so this is min FR).

Any (out, inc) satisfying these is a final placement (match each shape's leavers to its arrival slots in any
order), so the model is exact for final placements; a final placement that no sequence of single migrations
reaches (a swap between full nodes) is repaired by the caller (`exact.py`). On VMR2L-medium-sized instances it
has ~5,000 integer variables (the per-VM-group count model it replaces had ~800,000, so it was restricted to
200 candidate VMs and proved no bound at that scale).

`max_vms` may still restrict the model to candidate VMs (the others stay put); it is then a heuristic and its
bound is not the problem's (`ModelData.exact` is False).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sysgym.envs.vm_resched.instance import VmInstance
from sysgym.envs.vm_resched.state import ClusterState


@dataclass
class Shape:
    cpu: int  # per node
    mem: int  # per node
    double: bool
    aff: int  # anti-affinity group (-1: none)
    members: dict[int, list[int]]  # place -> its VMs of this shape, ascending
    movable: dict[int, int]  # place -> how many of them may leave (all of them, unless restricted)
    arrive_ub: dict[int, int]  # place -> most arrivals the place could take (places it fits at all)

    def nodes(self, place: int) -> tuple[int, ...]:
        return (2 * place, 2 * place + 1) if self.double else (place,)


@dataclass
class ModelData:
    inst: VmInstance
    shapes: list[Shape]
    free_cpu: np.ndarray  # initial free CPU per node
    free_mem: np.ndarray
    used_cpu: np.ndarray
    used_mem: np.ndarray
    exact: bool  # True when every VM may move: the model's bound is the problem's bound
    candidates: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def keys_at(self, node: int) -> list[tuple[str, int, int]]:
        """("out" | "in", shape, place) of every count whose place covers `node`."""
        index = getattr(self, "_keys_at", None)
        if index is None:
            index = {}
            for kind, keys in (("out", self.out_keys()), ("in", self.in_keys())):
                for s, p in keys:
                    for n in self.shapes[s].nodes(p):
                        index.setdefault(n, []).append((kind, s, p))
            self._keys_at = index
        return index.get(node, [])

    def out_keys(self) -> list[tuple[int, int]]:
        return [(s, p) for s, sh in enumerate(self.shapes) for p, k in sorted(sh.movable.items()) if k > 0]

    def in_keys(self) -> list[tuple[int, int]]:
        return [(s, p) for s, sh in enumerate(self.shapes) for p, k in sorted(sh.arrive_ub.items()) if k > 0]


def place_of(inst: VmInstance, v: int) -> int:
    return int(inst.vm_pm[v]) if inst.vm_double[v] else 2 * int(inst.vm_pm[v]) + int(inst.vm_numa[v])


def select_candidates(inst: VmInstance, max_vms: int | None, must_include=()) -> np.ndarray:
    """All VMs, or `max_vms` of them: those on the nodes with the largest remainders, small VMs first (they fix
    remainders), always including `must_include` (the VMs a warm start moves, so it stays a solution)."""
    v_all = np.arange(inst.num_vms)
    if max_vms is None or inst.num_vms <= max_vms:
        return v_all
    state = ClusterState(inst)
    node_rem = state.free_cpu % inst.frag_unit
    score = np.array([max(node_rem[n] for n in state.nodes_of(v)) for v in v_all], float)
    key = np.lexsort((v_all, state.vm_cpu, -score))
    must = np.unique(np.asarray(must_include, np.int64))
    rest = key[~np.isin(key, must)][: max(0, max_vms - len(must))]
    return np.sort(np.concatenate([must, rest]).astype(np.int64))


def build(inst: VmInstance, max_vms: int | None = None, must_include=(), candidates: np.ndarray | None = None
          ) -> ModelData:
    state = ClusterState(inst)
    cand = select_candidates(inst, max_vms, must_include) if candidates is None else np.asarray(candidates)
    is_cand = np.zeros(inst.num_vms, bool)
    is_cand[cand] = True
    total_by_key: dict[tuple, int] = {}
    by_key: dict[tuple, dict[int, list[int]]] = {}
    for v in range(inst.num_vms):
        c, m = state.per_node_demand(v)
        key = (c, m, bool(inst.vm_double[v]), int(inst.vm_group[v]))
        by_key.setdefault(key, {}).setdefault(place_of(inst, v), []).append(v)
        total_by_key[key] = total_by_key.get(key, 0) + int(is_cand[v])
    cap_c, cap_m = inst.node_cpu, inst.node_mem
    shapes = []
    for key in sorted(by_key):
        c, m, double, aff = key
        members = by_key[key]
        movable = {p: int(is_cand[vs].sum()) for p, vs in members.items()}
        n_move = total_by_key[key]
        arrive_ub: dict[int, int] = {}
        if n_move:
            if double:
                ok = (cap_c.reshape(-1, 2).min(1) >= c) & (cap_m.reshape(-1, 2).min(1) >= m)
                ub = np.minimum(cap_c.reshape(-1, 2).min(1) // max(c, 1), n_move)
            else:
                ok = (cap_c >= c) & (cap_m >= m)
                ub = np.minimum(cap_c // max(c, 1), n_move)
            ub = np.minimum(ub, inst.mnl)
            if aff >= 0:
                ub = np.minimum(ub, 1)
            for p in np.flatnonzero(ok & (ub > 0)):
                arrive_ub[int(p)] = int(ub[p])
        shapes.append(Shape(c, m, double, aff, members, movable, arrive_ub))
    used_c, used_m = inst.node_usage()
    return ModelData(inst, shapes, cap_c - used_c, cap_m - used_m, used_c, used_m,
                     exact=bool(is_cand.all()), candidates=np.flatnonzero(is_cand))


def add_to(data: ModelData, int_var, add, no_reliance: set[int] = frozenset(), lower: int | None = None):
    """Write the model into a MILP (pywraplp) or CP-SAT model through two callbacks, so every solver solves the
    very same model: `int_var(lo, hi, name)` makes an integer variable, `add(constraint)` posts one.

    `no_reliance`: nodes whose arrivals must fit without the space departures free (repair of plans no order
    of single migrations reaches). `lower`: a proven lower bound on the sum of remainders, posted as a cut.
    Returns (out vars, in vars, remainder vars), the first two keyed (shape, place).
    """
    outs = {(s, p): int_var(0, data.shapes[s].movable[p], f"out_{s}_{p}") for s, p in data.out_keys()}
    ins = {(s, p): int_var(0, data.shapes[s].arrive_ub[p], f"in_{s}_{p}") for s, p in data.in_keys()}
    r_vars = _post(data, add, int_var, outs, ins, range(len(data.inst.node_cpu)), {}, 0, no_reliance)
    if lower is not None and lower > 0:
        add(sum(r_vars) >= int(lower))
    return outs, ins, r_vars


def add_neighbourhood(data: ModelData, int_var, add, free_nodes: set[int], inc_out: dict, inc_in: dict):
    """The model restricted to the places on `free_nodes` (LNS): their counts are variables, every other
    count stays the incumbent's (`inc_out`, `inc_in`: (shape, place) -> count). A double-NUMA shape's PM is
    free when both its nodes are. Each shape's net exchange of the free places with the rest, and the
    migrations made elsewhere, stay what the incumbent makes them; only free nodes' constraints and
    remainders enter. Returns (out vars, in vars, remainder vars of the free nodes)."""
    outs, ins = {}, {}
    for n in sorted(free_nodes):
        for kind, s, p in data.keys_at(n):
            if not all(m in free_nodes for m in data.shapes[s].nodes(p)):
                continue
            if kind == "out" and (s, p) not in outs:
                outs[(s, p)] = int_var(0, data.shapes[s].movable[p], f"out_{s}_{p}")
            elif kind == "in" and (s, p) not in ins:
                ins[(s, p)] = int_var(0, data.shapes[s].arrive_ub[p], f"in_{s}_{p}")
    # What the free places exchange with the rest (per shape), and the migrations made elsewhere.
    net: dict[int, int] = {}
    for (s, p) in outs:
        net[s] = net.get(s, 0) + int(inc_out.get((s, p), 0))
    for (s, p) in ins:
        net[s] = net.get(s, 0) - int(inc_in.get((s, p), 0))
    moved_elsewhere = sum(inc_out.values()) - sum(int(inc_out.get(k, 0)) for k in outs)
    return outs, ins, _post(data, add, int_var, outs, ins, sorted(free_nodes), net, moved_elsewhere, set())


def _post(data: ModelData, add, int_var, outs: dict, ins: dict, nodes, net: dict, moved_elsewhere: int,
          no_reliance: set[int]) -> list:
    """Conservation per shape (the free places' net outflow equals `net[s]`), the migration limit, the node
    constraints of `nodes` and anti-affinity; returns the remainder variables of `nodes`."""
    inst = data.inst
    unit = inst.frag_unit
    by_shape: dict[int, list] = {}
    for (s, _p), v in outs.items():
        by_shape.setdefault(s, []).append(v)
    for (s, _p), v in ins.items():
        by_shape.setdefault(s, []).append(-v)
    for s, terms in sorted(by_shape.items()):
        add(sum(terms) == int(net.get(s, 0)))
    if outs:
        add(sum(outs.values()) <= inst.mnl - int(moved_elsewhere))
    nodes = list(nodes)
    cpu_terms: dict[int, list] = {n: [] for n in nodes}
    mem_terms: dict[int, list] = {n: [] for n in nodes}
    in_cpu: dict[int, list] = {n: [] for n in nodes}
    in_mem: dict[int, list] = {n: [] for n in nodes}
    for (s, p), v in outs.items():
        sh = data.shapes[s]
        for n in sh.nodes(p):
            cpu_terms[n].append(sh.cpu * v)
            mem_terms[n].append(sh.mem * v)
    for (s, p), v in ins.items():
        sh = data.shapes[s]
        for n in sh.nodes(p):
            cpu_terms[n].append(-sh.cpu * v)
            mem_terms[n].append(-sh.mem * v)
            in_cpu[n].append(sh.cpu * v)
            in_mem[n].append(sh.mem * v)
    r_vars = []
    for n in nodes:
        cap_c, cap_m = int(inst.node_cpu[n]), int(inst.node_mem[n])
        q = int_var(0, cap_c // unit, f"q_{n}")
        r = int_var(0, unit - 1, f"r_{n}")
        add(int(data.free_cpu[n]) + sum(cpu_terms[n]) == unit * q + r)  # q, r >= 0: CPU capacity holds
        if in_mem[n]:
            add(int(data.free_mem[n]) + sum(mem_terms[n]) >= 0)
        r_vars.append(r)
        if n in no_reliance and in_cpu[n]:
            add(int(data.used_cpu[n]) + sum(in_cpu[n]) <= cap_c)
            add(int(data.used_mem[n]) + sum(in_mem[n]) <= cap_m)
    for (g, pm), terms in _affinity_rows(data, outs, ins).items():
        add(sum(terms) <= 1 - _affinity_fixed(data, g, pm))
    return r_vars


def _affinity_rows(data: ModelData, outs: dict, ins: dict) -> dict[tuple[int, int], list]:
    """(anti-affinity group, PM) -> the terms giving how many of the group's VMs end on the PM, less the ones
    there that cannot leave (`_affinity_fixed`). Only rows where someone may arrive can bind. (In a
    neighbourhood model every count of a free PM is a variable, so the rows are complete there.)"""
    rows: dict[tuple[int, int], list] = {}
    for (s, p), v in ins.items():
        sh = data.shapes[s]
        if sh.aff < 0:
            continue
        pm = p if sh.double else p // 2
        rows.setdefault((sh.aff, pm), []).append(v)
    for s, sh in enumerate(data.shapes):
        if sh.aff < 0:
            continue
        for p, k in sh.movable.items():
            pm = p if sh.double else p // 2
            if (sh.aff, pm) in rows and k:
                rows[(sh.aff, pm)].append(k - outs[(s, p)])  # movable members that stay (a free count: see above)
    return rows


def _affinity_fixed(data: ModelData, group: int, pm: int) -> int:
    """Members of `group` on `pm` that may not leave."""
    count = 0
    for sh in data.shapes:
        if sh.aff != group:
            continue
        for p, members in sh.members.items():
            if (p if sh.double else p // 2) == pm:
                count += len(members) - sh.movable.get(p, 0)
    return count


def counts_from(data: ModelData, final_pm: np.ndarray, final_numa: np.ndarray) -> tuple[dict, dict]:
    """(out, inc) counts of a known final placement (a warm start, or LNS's incumbent)."""
    inst = data.inst
    outs: dict[tuple[int, int], int] = {}
    ins: dict[tuple[int, int], int] = {}
    index = {}
    for s, sh in enumerate(data.shapes):
        for members in sh.members.values():
            for v in members:
                index[v] = s
    final_count: dict[tuple[int, int], int] = {}
    for v in range(inst.num_vms):
        s = index[v]
        p = int(final_pm[v]) if inst.vm_double[v] else 2 * int(final_pm[v]) + int(final_numa[v])
        final_count[(s, p)] = final_count.get((s, p), 0) + 1
    for s, sh in enumerate(data.shapes):
        places = set(sh.members) | {p for (t, p) in final_count if t == s}
        for p in places:
            delta = len(sh.members.get(p, ())) - final_count.get((s, p), 0)
            if delta > 0:
                outs[(s, p)] = delta
            elif delta < 0:
                ins[(s, p)] = -delta
    return outs, ins


def placement_from(data: ModelData, out_vals: dict, in_vals: dict) -> tuple[np.ndarray, np.ndarray]:
    """A full final placement from the counts: per shape and place, only the net flow moves (the VMs that
    leave a place are its highest-numbered movable ones), leavers matched to arrival slots in place order."""
    inst = data.inst
    pm, numa = inst.vm_pm.copy(), inst.vm_numa.copy()
    for s, sh in enumerate(data.shapes):
        places = sorted(set(sh.members) | set(sh.arrive_ub))
        leavers: list[int] = []
        slots: list[int] = []
        for p in places:
            net = int(out_vals.get((s, p), 0)) - int(in_vals.get((s, p), 0))
            if net > 0:
                movable = [v for v in sh.members.get(p, ()) if v in _candidate_set(data)]
                leavers.extend(movable[len(movable) - net:])
            elif net < 0:
                slots.extend([p] * (-net))
        if len(leavers) != len(slots):
            raise ValueError(f"shape {s}: {len(leavers)} VMs leave but {len(slots)} arrive (conservation broken)")
        for v, p in zip(leavers, slots):
            if sh.double:
                pm[v], numa[v] = p, -1
            else:
                pm[v], numa[v] = p // 2, p % 2
    return pm, numa


def _candidate_set(data: ModelData) -> set[int]:
    cached = getattr(data, "_cand_set", None)
    if cached is None:
        cached = set(int(v) for v in data.candidates)
        data._cand_set = cached  # type: ignore[attr-defined]
    return cached
