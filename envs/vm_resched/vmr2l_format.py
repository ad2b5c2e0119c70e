"""Reader for the dataset files of VMR2L (github.com/zhykoties/VMR2L_eurosys, `reset_vm_pm*.json`).

Format (from VMR2L's own `translate_pm`/`translate_vm`): `cluster_list[].host_info[]` gives each PM's
`node_id` and per-NUMA `total_cpu`/`memory_huge_total_mb`; `cluster_list[].vm_instance[]` gives each VM's
`host_id` and per-NUMA `{node, cpu, mem_mb}` (two entries for a double-NUMA VM). The files' `free_*`
fields are derived data (and VMR2L writes NUMA 0's free memory for both nodes), so usage is recomputed
from the VMs instead.
"""
from __future__ import annotations

from typing import Any

from sysgym.errors import TraceFormatError


def from_vmr2l(data: dict[str, Any], *, source: str, mnl: int = 50, cluster: int | None = None):
    from sysgym.envs.vm_resched.instance import VmInstance

    node_cpu, node_mem, pm_index = [], [], {}
    vm_cpu, vm_mem, vm_double, vm_pm, vm_numa = [], [], [], [], []
    clusters = data["cluster_list"] if cluster is None else [data["cluster_list"][cluster]]
    for ci, cl in enumerate(clusters):
        for hi, host in enumerate(cl.get("host_info", [])):
            where = f"{source}: cluster {ci} host_info[{hi}]"
            try:
                if host.get("status", "ACTIVE") != "ACTIVE":
                    continue
                numa = sorted(host["numa"], key=lambda x: x["node"])
                if len(numa) != 2:
                    raise TraceFormatError(f"{where}: expected 2 NUMA nodes, got {len(numa)}")
                pm_index[host["node_id"]] = len(pm_index)
                for nd in numa:
                    node_cpu.append(int(nd["total_cpu"]))
                    node_mem.append(int(nd["memory_huge_total_mb"]))
            except KeyError as exc:
                raise TraceFormatError(f"{where}: missing field {exc.args[0]!r}") from None
        for vi, vm in enumerate(cl.get("vm_instance", [])):
            where = f"{source}: cluster {ci} vm_instance[{vi}]"
            try:
                if vm["host_id"] not in pm_index:
                    raise TraceFormatError(f"{where}: host {vm['host_id']!r} is not an active PM of the file")
                parts = vm["numa"]
                if len(parts) not in (1, 2):
                    raise TraceFormatError(f"{where}: a VM spans 1 or 2 NUMA nodes, got {len(parts)}")
                vm_pm.append(pm_index[vm["host_id"]])
                vm_cpu.append(sum(int(p["cpu"]) for p in parts))
                vm_mem.append(sum(int(p["mem_mb"]) for p in parts))
                vm_double.append(len(parts) == 2)
                vm_numa.append(-1 if len(parts) == 2 else int(parts[0]["node"]))
            except KeyError as exc:
                raise TraceFormatError(f"{where}: missing field {exc.args[0]!r}") from None
    if not pm_index:
        raise TraceFormatError(f"{source}: no active PMs in 'cluster_list'")
    return VmInstance(node_cpu=node_cpu, node_mem=node_mem, vm_cpu=vm_cpu, vm_mem=vm_mem, vm_double=vm_double,
                      vm_pm=vm_pm, vm_numa=vm_numa, mnl=mnl, name=f"vm_resched/file:{source}")
