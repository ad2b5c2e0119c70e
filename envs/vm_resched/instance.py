"""The VM-rescheduling instance: PMs with two NUMA nodes, VMs placed on them, a migration limit.

Node `n` is NUMA node `n % 2` of PM `n // 2`. A single-NUMA VM sits on one node; a double-NUMA VM takes
half of its CPU and memory on both nodes of its PM (VMR2L's model, EuroSys'25, arXiv 2505.17359).
CPU is in cores, memory in MiB.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sysgym.errors import InvalidInstanceError, TraceFormatError
from sysgym.instances import InstanceBase, read_json, require_fields

FORMAT = "sysgym.vm_resched.instance/1"


@dataclass(frozen=True, eq=False)
class VmInstance(InstanceBase):
    """Immutable problem instance. Arrays are read-only; `name` is its replayable spec."""

    FORMAT = FORMAT

    node_cpu: np.ndarray  # (2P,) cores per NUMA node
    node_mem: np.ndarray  # (2P,) MiB per NUMA node
    vm_cpu: np.ndarray  # (V,) total cores of each VM
    vm_mem: np.ndarray  # (V,) total MiB of each VM
    vm_double: np.ndarray  # (V,) bool: spans both NUMA nodes of its PM
    vm_pm: np.ndarray  # (V,) PM index
    vm_numa: np.ndarray  # (V,) NUMA node 0/1 for single-NUMA VMs, -1 for double-NUMA VMs
    mnl: int = 50  # migration number limit
    frag_unit: int = 16  # reference VM size of the fragment rate (VMR2L: 16 cores)
    name: str = "vm_resched/custom"
    dynamics: dict[str, Any] = field(default_factory=dict)  # arrival/lifetime process for time-aware eval
    # Anti-affinity group of each VM (-1: none). VMs of one group must sit on different PMs (replicas of a
    # service spread for availability, as in VMR2L's constrained experiments).
    vm_group: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.vm_group is None or len(self.vm_group) == 0:
            object.__setattr__(self, "vm_group", np.full(len(self.vm_cpu), -1, np.int64))
        conv = {"vm_group": np.int64, "node_cpu": np.int64, "node_mem": np.int64, "vm_cpu": np.int64,
                "vm_mem": np.int64, "vm_double": bool, "vm_pm": np.int64, "vm_numa": np.int64}
        for key, dtype in conv.items():
            arr = np.array(getattr(self, key), dtype=dtype)
            arr.setflags(write=False)
            object.__setattr__(self, key, arr)
        validate(self)

    @property
    def num_pms(self) -> int:
        return len(self.node_cpu) // 2

    @property
    def num_vms(self) -> int:
        return len(self.vm_cpu)

    def vm_nodes(self, v: int) -> tuple[int, ...]:
        p = int(self.vm_pm[v])
        return (2 * p, 2 * p + 1) if self.vm_double[v] else (2 * p + int(self.vm_numa[v]),)

    def node_usage(self) -> tuple[np.ndarray, np.ndarray]:
        """Used (cpu, mem) per node from the placement."""
        return placement_usage(self, self.vm_pm, self.vm_numa)

    @property
    def has_anti_affinity(self) -> bool:
        return bool((self.vm_group >= 0).any())

    def to_dict(self) -> dict[str, Any]:
        data = {"format": FORMAT, "name": self.name, "mnl": self.mnl, "frag_unit": self.frag_unit,
                "dynamics": self.dynamics,
                **{k: getattr(self, k).tolist() for k in
                   ("node_cpu", "node_mem", "vm_cpu", "vm_mem", "vm_double", "vm_pm", "vm_numa")}}
        if self.has_anti_affinity:  # kept out otherwise, so digests of unconstrained instances stay stable
            data["vm_group"] = self.vm_group.tolist()
        return data


def placement_usage(inst: VmInstance, vm_pm: np.ndarray, vm_numa: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(inst.node_cpu)
    cpu, mem = np.zeros(n, np.int64), np.zeros(n, np.int64)
    single = ~inst.vm_double
    nodes = 2 * vm_pm[single] + vm_numa[single]
    np.add.at(cpu, nodes, inst.vm_cpu[single])
    np.add.at(mem, nodes, inst.vm_mem[single])
    dbl = inst.vm_double
    for k in (0, 1):
        np.add.at(cpu, 2 * vm_pm[dbl] + k, inst.vm_cpu[dbl] // 2)
        np.add.at(mem, 2 * vm_pm[dbl] + k, inst.vm_mem[dbl] // 2)
    return cpu, mem


def validate(inst: VmInstance) -> None:
    """Reject an instance that cannot exist: names the offending VM or PM."""
    n, v = len(inst.node_cpu), len(inst.vm_cpu)
    if n == 0 or n % 2:
        raise InvalidInstanceError(f"{inst.name}: need 2 NUMA nodes per PM, got {n} nodes")
    for key in ("vm_mem", "vm_double", "vm_pm", "vm_numa", "vm_group"):
        if len(getattr(inst, key)) != v:
            raise InvalidInstanceError(f"{inst.name}: {key} has {len(getattr(inst, key))} entries, vm_cpu has {v}")
    if len(inst.node_mem) != n:
        raise InvalidInstanceError(f"{inst.name}: node_mem has {len(inst.node_mem)} entries, node_cpu has {n}")
    if inst.mnl < 0:
        raise InvalidInstanceError(f"{inst.name}: migration number limit must be >= 0, got {inst.mnl}")
    if inst.frag_unit <= 0:
        raise InvalidInstanceError(f"{inst.name}: frag_unit must be positive, got {inst.frag_unit}")
    if (inst.node_cpu < 0).any() or (inst.node_mem < 0).any():
        bad = int(np.argmax((inst.node_cpu < 0) | (inst.node_mem < 0)))
        raise InvalidInstanceError(f"{inst.name}: negative capacity at PM {bad // 2} NUMA {bad % 2}")
    for v_i in range(v):
        cpu, mem = int(inst.vm_cpu[v_i]), int(inst.vm_mem[v_i])
        if cpu <= 0 or mem < 0:
            raise InvalidInstanceError(f"{inst.name}: VM {v_i} has non-positive size ({cpu} cores, {mem} MiB)")
        p = int(inst.vm_pm[v_i])
        if not 0 <= p < n // 2:
            raise InvalidInstanceError(f"{inst.name}: VM {v_i} is on PM {p}, which does not exist ({n // 2} PMs)")
        if inst.vm_double[v_i]:
            if cpu % 2 or mem % 2:
                raise InvalidInstanceError(
                    f"{inst.name}: double-NUMA VM {v_i} has an odd size ({cpu} cores, {mem} MiB)")
            need_cpu, need_mem = cpu // 2, mem // 2
            fits_cpu = need_cpu <= inst.node_cpu.reshape(-1, 2).min(axis=1)
            fits_mem = need_mem <= inst.node_mem.reshape(-1, 2).min(axis=1)
        else:
            if int(inst.vm_numa[v_i]) not in (0, 1):
                raise InvalidInstanceError(f"{inst.name}: single-NUMA VM {v_i} has NUMA node {int(inst.vm_numa[v_i])}")
            need_cpu, need_mem = cpu, mem
            fits_cpu, fits_mem = need_cpu <= inst.node_cpu, need_mem <= inst.node_mem
        if not (fits_cpu & fits_mem).any():
            raise InvalidInstanceError(
                f"{inst.name}: VM {v_i} ({cpu} cores, {mem} MiB, {'double' if inst.vm_double[v_i] else 'single'}-NUMA) "
                f"is larger than any NUMA node")
    grouped = np.flatnonzero(inst.vm_group >= 0)
    seen: dict[tuple[int, int], int] = {}
    for v_i in grouped:
        key = (int(inst.vm_group[v_i]), int(inst.vm_pm[v_i]))
        if key in seen:
            raise InvalidInstanceError(f"{inst.name}: VMs {seen[key]} and {v_i} of anti-affinity group {key[0]} "
                                       f"share PM {key[1]}")
        seen[key] = int(v_i)
    cpu, mem = inst.node_usage()
    over = np.flatnonzero((cpu > inst.node_cpu) | (mem > inst.node_mem))
    if len(over):
        node = int(over[0])
        what = "CPU" if cpu[node] > inst.node_cpu[node] else "memory"
        vms = [int(x) for x in range(v) if node in inst.vm_nodes(x)]
        raise InvalidInstanceError(
            f"{inst.name}: PM {node // 2} NUMA {node % 2} {what} over capacity "
            f"(CPU {cpu[node]}/{inst.node_cpu[node]}, memory {mem[node]}/{inst.node_mem[node]} MiB); VMs there: {vms}")


def save(inst: VmInstance, path: str | Path) -> Path:
    return inst.save(path)


def load(path: str | Path) -> VmInstance:
    """Load a saved sysgym instance, or a VMR2L dataset file (`cluster_list` format)."""
    data = read_json(path)
    if isinstance(data, dict) and data.get("format") == FORMAT:
        require_fields(data, ("node_cpu", "node_mem", "vm_cpu", "vm_mem", "vm_double", "vm_pm", "vm_numa", "mnl",
                              "frag_unit"), path)
        kwargs = {k: data[k] for k in ("node_cpu", "node_mem", "vm_cpu", "vm_mem", "vm_double", "vm_pm", "vm_numa",
                                       "mnl", "frag_unit")}
        try:
            return VmInstance(**kwargs, name=data.get("name", f"vm_resched/file:{path}"),
                              dynamics=data.get("dynamics", {}), vm_group=data.get("vm_group"))
        except (TypeError, ValueError, OverflowError) as exc:
            if isinstance(exc, InvalidInstanceError):
                raise
            raise TraceFormatError(f"{path}: malformed instance field ({exc})") from None
    if isinstance(data, dict) and "cluster_list" in data:
        from sysgym.envs.vm_resched.vmr2l_format import from_vmr2l

        return from_vmr2l(data, source=str(path))
    raise TraceFormatError(f"{path}: neither a sysgym instance (format {FORMAT!r}) nor a VMR2L dataset "
                           "file (top-level 'cluster_list')")
