"""Saving, loading, VMR2L's file format, and rejecting impossible instances."""
import json

import pytest

from sysgym.envs.vm_resched import VmInstance, generate, load, save
from sysgym.errors import InvalidInstanceError, TraceFormatError


def test_save_load_round_trip(tmp_path):
    inst = generate(preset="small", seed=2)
    path = save(inst, tmp_path / "x.json")
    again = load(path)
    assert again.digest() == inst.digest() and again.name == inst.name


def _tiny(**over):
    base = dict(node_cpu=[44, 44], node_mem=[1000, 1000], vm_cpu=[8, 16], vm_mem=[100, 100],
                vm_double=[False, False], vm_pm=[0, 0], vm_numa=[0, 1], mnl=1)
    base.update(over)
    return base


def test_vm_larger_than_any_numa_node_is_rejected_naming_the_vm(tmp_path):
    with pytest.raises(InvalidInstanceError, match="VM 1 .*larger than any NUMA node"):
        VmInstance(**_tiny(vm_cpu=[8, 46]))
    data = {"format": "sysgym.vm_resched.instance/1", "frag_unit": 16, **_tiny(vm_cpu=[8, 46])}
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(InvalidInstanceError, match="VM 1"):
        load(tmp_path / "bad.json")


def test_memory_over_capacity_is_rejected_naming_the_pm():
    with pytest.raises(InvalidInstanceError, match="PM 0 NUMA 0 memory over capacity.*VMs there: \\[0, 1\\]"):
        VmInstance(**_tiny(vm_mem=[600, 600], vm_numa=[0, 0]))


def test_malformed_files_name_the_problem(tmp_path):
    (tmp_path / "a.json").write_text("{oops")
    with pytest.raises(TraceFormatError, match="a.json:1: not a JSON instance"):
        load(tmp_path / "a.json")
    (tmp_path / "b.json").write_text(json.dumps({"format": "sysgym.vm_resched.instance/1", "node_cpu": [1, 1]}))
    with pytest.raises(TraceFormatError, match="lacks field .node_mem."):
        load(tmp_path / "b.json")
    (tmp_path / "c.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(TraceFormatError, match="neither a sysgym instance"):
        load(tmp_path / "c.json")


def _vmr2l_file(tmp_path, vm_numa):
    host = lambda i: {"node_id": f"h{i}", "status": "ACTIVE", "node_cpu": 88, "node_mem_mb": 368776.0,  # noqa: E731
                      "numa": [{"node": k, "total_cpu": 44, "free_cpu": 0, "memory_huge_total_mb": 184388.0,
                                "memory_huge_free_mb": 0} for k in (0, 1)], "rack_id": 1}
    data = {"cluster_list": [{"cluster_name": "c", "host_info": [host(0), host(1)],
                              "vm_instance": [
                                  {"instance_id": "v0", "instance_type": "ecs.c1.4xlarge", "host_id": "h0",
                                   "numa": vm_numa, "allow_migration": True},
                                  {"instance_id": "v1", "instance_type": "ecs.c1.16xlarge", "host_id": "h1",
                                   "numa": [{"node": 0, "cpu": 32, "mem_mb": 65536},
                                            {"node": 1, "cpu": 32, "mem_mb": 65536}],
                                   "allow_migration": True}]}],
            "vm_type_list": [], "general_requirement": {}}
    path = tmp_path / "reset_vm_pm0.json"
    path.write_text(json.dumps(data))
    return path


def test_vmr2l_dataset_format_loads(tmp_path):
    inst = load(_vmr2l_file(tmp_path, [{"node": 1, "cpu": 16, "mem_mb": 32768}]))
    assert inst.num_pms == 2 and inst.num_vms == 2
    assert inst.vm_numa.tolist() == [1, -1] and inst.vm_double.tolist() == [False, True]
    assert inst.vm_cpu.tolist() == [16, 64]


def test_vmr2l_file_missing_field_names_it(tmp_path):
    with pytest.raises(TraceFormatError, match=r"vm_instance\[0\]: missing field 'cpu'"):
        load(_vmr2l_file(tmp_path, [{"node": 1, "mem_mb": 32768}]))


def test_anti_affinity_groups_sharing_a_pm_are_rejected_and_saved_groups_round_trip(tmp_path):
    with pytest.raises(InvalidInstanceError, match="VMs 0 and 1 of anti-affinity group 3 share PM 0"):
        VmInstance(**_tiny(), vm_group=[3, 3])
    inst = generate(preset="small", seed=1, anti_affinity_groups=5)
    assert (inst.vm_group >= 0).sum() == 15
    assert load(save(inst, tmp_path / "g.json")).vm_group.tolist() == inst.vm_group.tolist()
