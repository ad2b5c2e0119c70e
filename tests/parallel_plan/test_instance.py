"""The generator (presets, replayable names) and the instance file format (`save` / `load`)."""
import json

import pytest

import sysgym
from sysgym.envs.parallel_plan import GENERATOR, PlanInstance, generate, load
from sysgym.errors import InvalidArgumentError, InvalidInstanceError, TraceFormatError, UnknownNameError


def test_instance_names_replay_and_bad_names():
    inst = generate(preset="medium", global_batch=512)
    again = sysgym.instance(inst.name)
    assert again.digest() == inst.digest()
    assert generate is GENERATOR and sysgym.get_family("parallel_plan").generator is GENERATOR
    with pytest.raises(UnknownNameError, match="known parallel_plan presets: 1t"):
        generate(preset="huge")
    with pytest.raises(UnknownNameError, match="known models: .*gpt-1t"):
        generate(model="gpt-2t", cluster="dgx-a100", seq_len=8, global_batch=8)
    with pytest.raises(InvalidArgumentError, match="needs model, seq_len"):
        generate(cluster="dgx-a100", global_batch=8)


@pytest.mark.parametrize("kwargs", [{"preset": "tiny"}, {"preset": "gpt3", "memory_limit_gib": 60.0},
                                    {"model": "llama-2-13b", "cluster": "dgx-a100", "nodes": 2, "seq_len": 2048,
                                     "global_batch": 64, "flash_attention": True, "num_layers": 20}])
def test_save_load_round_trip(tmp_path, kwargs):
    inst = generate(seed=4, **kwargs)
    back = load(inst.save(tmp_path / "inst.json"))
    assert isinstance(back, PlanInstance) and back.digest() == inst.digest() and back.name == inst.name
    assert (back.model, back.cluster, back.seq_len, back.global_batch, back.memory_limit_gib,
            back.flash_attention) == (inst.model, inst.cluster, inst.seq_len, inst.global_batch,
                                      inst.memory_limit_gib, inst.flash_attention)
    assert sysgym.instance(f"parallel_plan/file:{tmp_path / 'inst.json'}").digest() == inst.digest()
    plan = {"tp": 8, "pp": 1, "dp": inst.num_gpus // 8, "micro_batch": 1, "recompute": "full"}
    assert sysgym.get_family("parallel_plan").evaluate(back, plan, raise_on_infeasible=False) == \
        sysgym.get_family("parallel_plan").evaluate(inst, plan, raise_on_infeasible=False)


def _write(tmp_path, data) -> str:
    path = tmp_path / "bad.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def _saved(tmp_path) -> dict:
    return json.loads(generate(preset="tiny").save(tmp_path / "ok.json").read_text())


def test_malformed_files_name_the_field(tmp_path):
    data = _saved(tmp_path)
    with pytest.raises(TraceFormatError, match="bad.json:1: not a JSON instance"):
        load(_write(tmp_path, "{nope"))
    with pytest.raises(TraceFormatError, match="lacks field 'format'"):
        load(_write(tmp_path, {"model": 1}))
    with pytest.raises(TraceFormatError, match="not a parallel-plan instance"):
        load(_write(tmp_path, {**data, "format": "sysgym.vm_resched.instance/1"}))
    for field in ("model", "cluster", "seq_len", "global_batch"):
        with pytest.raises(TraceFormatError, match=f"lacks field '{field}'"):
            load(_write(tmp_path, {k: v for k, v in data.items() if k != field}))
    with pytest.raises(TraceFormatError, match="'model'.*hidden_size"):
        load(_write(tmp_path, {**data, "model": {k: v for k, v in data["model"].items() if k != "hidden_size"}}))
    with pytest.raises(TraceFormatError, match="'model' has unknown key"):
        load(_write(tmp_path, {**data, "model": {**data["model"], "depth": 3}}))
    with pytest.raises(TraceFormatError, match="'cluster.gpu'"):
        load(_write(tmp_path, {**data, "cluster": {**data["cluster"], "gpu": "a100"}}))
    with pytest.raises(TraceFormatError, match="'cluster.inter_node'.*bandwidth"):
        load(_write(tmp_path, {**data, "cluster": {**data["cluster"], "inter_node": {"bandwidth_gbps": -1}}}))
    with pytest.raises(TraceFormatError, match="instance cluster lacks field 'num_nodes'"):
        load(_write(tmp_path, {**data, "cluster": {k: v for k, v in data["cluster"].items() if k != "num_nodes"}}))
    with pytest.raises(TraceFormatError, match="'seq_len' must be an integer"):
        load(_write(tmp_path, {**data, "seq_len": "4096"}))
    with pytest.raises(TraceFormatError, match="'memory_limit_gib' must be a number"):
        load(_write(tmp_path, {**data, "memory_limit_gib": "10"}))
    with pytest.raises(TraceFormatError, match="'flash_attention' must be true or false"):
        load(_write(tmp_path, {**data, "flash_attention": 1}))
    with pytest.raises(InvalidInstanceError, match="global_batch must be a positive integer"):
        load(_write(tmp_path, {**data, "global_batch": 0}))
    with pytest.raises(FileNotFoundError, match="no instance file"):
        load(tmp_path / "missing.json")
