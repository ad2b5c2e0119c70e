"""Mutable cluster state shared by the evaluator, the env, the heuristics and the time-aware replay.

Keeping one implementation of "does this VM fit there" and "what is the fragment rate" is what makes
the evaluator the single scorer: the env and the heuristics cannot disagree with it.
"""
from __future__ import annotations

import numpy as np

from sysgym.envs.vm_resched.instance import VmInstance


def fragment_rate(free_cpu: np.ndarray, unit: int = 16) -> float:
    """VMR2L's fragment rate: sum over NUMA nodes of (free CPUs mod unit) / total free CPUs.

    Per NUMA node, never pooled per PM: NUMA free (10, 10) and (16, 33) give 21/69. With no free CPU at
    all nothing is fragmented, so the rate is 0 (never a division by zero).
    """
    free = np.asarray(free_cpu)
    total = int(free.sum())
    if total <= 0:
        return 0.0
    return float((free % unit).sum()) / total


class ClusterState:
    """Free CPU/memory per NUMA node and the placement of each (live) VM."""

    def __init__(self, inst: VmInstance):
        self.inst = inst
        self.unit = inst.frag_unit
        self.cap_cpu, self.cap_mem = inst.node_cpu, inst.node_mem
        self.vm_cpu = inst.vm_cpu.copy()
        self.vm_mem = inst.vm_mem.copy()
        self.vm_double = inst.vm_double.copy()
        self.vm_pm = inst.vm_pm.copy()
        self.vm_numa = inst.vm_numa.copy()
        self.vm_group = inst.vm_group.copy()
        self.alive = np.ones(inst.num_vms, bool)
        used_cpu, used_mem = inst.node_usage()
        self.free_cpu = self.cap_cpu - used_cpu
        self.free_mem = self.cap_mem - used_mem

    # -- queries -----------------------------------------------------------------------------------
    @property
    def num_vms(self) -> int:
        return len(self.vm_cpu)

    def fragment_rate(self) -> float:
        return fragment_rate(self.free_cpu, self.unit)

    def nodes_of(self, v: int, pm: int | None = None, numa: int | None = None) -> tuple[int, ...]:
        pm = int(self.vm_pm[v]) if pm is None else int(pm)
        if self.vm_double[v]:
            return (2 * pm, 2 * pm + 1)
        numa = int(self.vm_numa[v]) if numa is None else int(numa)
        return (2 * pm + numa,)

    def per_node_demand(self, v: int) -> tuple[int, int]:
        if self.vm_double[v]:
            return int(self.vm_cpu[v]) // 2, int(self.vm_mem[v]) // 2
        return int(self.vm_cpu[v]), int(self.vm_mem[v])

    def is_current(self, v: int, pm: int, numa: int) -> bool:
        if int(self.vm_pm[v]) != int(pm):
            return False
        return bool(self.vm_double[v]) or int(self.vm_numa[v]) == int(numa)

    def why_not(self, v: int, pm: int, numa: int) -> str | None:
        """None when VM `v` can move to (pm, numa) now; otherwise the violated constraint."""
        if not self.alive[v]:
            return f"VM {v} no longer exists"
        if not 0 <= pm < len(self.cap_cpu) // 2:
            return f"PM {pm} does not exist ({len(self.cap_cpu) // 2} PMs)"
        if not self.vm_double[v] and numa not in (0, 1):
            return f"NUMA node {numa} does not exist (0 or 1)"
        if self.is_current(v, pm, numa):
            return None
        g = int(self.vm_group[v])
        if g >= 0 and int(self.vm_pm[v]) != pm:
            clash = np.flatnonzero((self.vm_group == g) & (self.vm_pm == pm) & self.alive)
            if len(clash):
                return f"anti-affinity group {g}: VM {int(clash[0])} already runs on PM {pm}"
        cpu, mem = self.per_node_demand(v)
        src = set(self.nodes_of(v))
        for node in self.nodes_of(v, pm, numa):
            # A node the VM already occupies gets its share back before the VM lands (same-PM NUMA move
            # cannot hit this for single-NUMA VMs, but it keeps the rule exact for any future shape).
            back_cpu = cpu if node in src else 0
            back_mem = mem if node in src else 0
            if self.free_cpu[node] + back_cpu < cpu:
                return (f"CPU capacity of PM {node // 2} NUMA {node % 2}: VM {v} needs {cpu} cores, "
                        f"{self.free_cpu[node] + back_cpu} free")
            if self.free_mem[node] + back_mem < mem:
                return (f"memory capacity of PM {node // 2} NUMA {node % 2}: VM {v} needs {mem} MiB, "
                        f"{self.free_mem[node] + back_mem} free")
        return None

    # -- changes -----------------------------------------------------------------------------------
    def move(self, v: int, pm: int, numa: int) -> tuple[int, ...]:
        """Migrate VM v (caller has checked `why_not`); returns the nodes whose free capacity changed."""
        cpu, mem = self.per_node_demand(v)
        old = self.nodes_of(v)
        new = self.nodes_of(v, pm, numa)
        for node in old:
            self.free_cpu[node] += cpu
            self.free_mem[node] += mem
        for node in new:
            self.free_cpu[node] -= cpu
            self.free_mem[node] -= mem
        self.vm_pm[v] = pm
        self.vm_numa[v] = -1 if self.vm_double[v] else numa
        return tuple(sorted(set(old) | set(new)))

    def remove(self, v: int) -> None:
        cpu, mem = self.per_node_demand(v)
        for node in self.nodes_of(v):
            self.free_cpu[node] += cpu
            self.free_mem[node] += mem
        self.alive[v] = False

    def add(self, cpu: int, mem: int, double: bool, pm: int, numa: int) -> int:
        self.vm_cpu = np.append(self.vm_cpu, cpu)
        self.vm_mem = np.append(self.vm_mem, mem)
        self.vm_double = np.append(self.vm_double, double)
        self.vm_pm = np.append(self.vm_pm, pm)
        self.vm_numa = np.append(self.vm_numa, -1 if double else numa)
        self.vm_group = np.append(self.vm_group, -1)
        self.alive = np.append(self.alive, True)
        v = len(self.vm_cpu) - 1
        c, m = self.per_node_demand(v)
        for node in self.nodes_of(v):
            self.free_cpu[node] -= c
            self.free_mem[node] -= m
        return v

    def group_blocked_pms(self, v: int) -> np.ndarray:
        """PMs VM v may not move to because another VM of its anti-affinity group runs there."""
        g = int(self.vm_group[v])
        if g < 0:
            return np.zeros(0, np.int64)
        others = (self.vm_group == g) & self.alive
        others[v] = False
        return np.unique(self.vm_pm[others])

    def feasible_nodes(self, cpu: int, mem: int, double: bool) -> np.ndarray:
        """Destinations where a new VM of this shape fits: node ids (single) or PM ids (double)."""
        if double:
            fc = self.free_cpu.reshape(-1, 2).min(axis=1)
            fm = self.free_mem.reshape(-1, 2).min(axis=1)
            return np.flatnonzero((fc >= cpu // 2) & (fm >= mem // 2))
        return np.flatnonzero((self.free_cpu >= cpu) & (self.free_mem >= mem))
