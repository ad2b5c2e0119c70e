"""The workload generator: seeded, calibrated on Decima's TPC-H data, bad input named."""
import json
from pathlib import Path

import numpy as np
import pytest

from sysgym.envs.job_sched import build, generate, load, offered_load, partition_runtime, save
from sysgym.envs.job_sched.generator import DATA, tpch_job
from sysgym.errors import InvalidInstanceError, TraceFormatError, UnknownNameError
from sysgym.instances import from_spec


def test_same_seed_same_instance_and_spec_replays():
    a = generate(num_executors=10, num_users=3, num_jobs=8, seed=4)
    b = generate(num_executors=10, num_users=3, num_jobs=8, seed=4)
    c = generate(num_executors=10, num_users=3, num_jobs=8, seed=5)
    assert a.digest() == b.digest() != c.digest()
    assert from_spec(a.name).digest() == a.digest()
    v1 = from_spec("job_sched-v1/small?seed=2&setting=multi_app")
    assert generate(preset="small", seed=2).digest() == v1.digest()
    assert generate(preset="small", seed=2, version=0).digest() == from_spec("job_sched/small?seed=2").digest()


def test_tpch_shapes_match_decima_data():
    table = json.loads(DATA.read_text())["sizes"]
    assert len(table) == 7 and all(len(q) == 22 for q in table.values())
    rng = np.random.default_rng(0)
    job = tpch_job(rng, 9, "2g")
    spec = table["2g"]["9"]
    assert [len(s) for s in job["stages"]] == [st["num_tasks"] for st in spec["stages"]]
    # sampled durations reproduce the measured median of a big stage within 10 % (200 tasks)
    big = max(range(len(spec["stages"])), key=lambda s: spec["stages"][s]["num_tasks"])
    med = np.median(job["stages"][big]) * 1000
    assert med == pytest.approx(spec["stages"][big]["q_ms"][5], rel=0.10)
    # larger inputs mean more work (Decima's 2g -> 100g scaling)
    w = {s: sum(sum(x) for x in tpch_job(np.random.default_rng(1), 9, s)["stages"]) for s in ("2g", "100g")}
    assert w["100g"] > 5 * w["2g"]


def test_decima_arrival_rate_and_load():
    inst = generate(preset="decima", seed=0, num_jobs=300)
    gaps = np.diff(np.sort(inst.job_arrival[10:]))
    assert gaps.mean() == pytest.approx(25.0, rel=0.15)  # Decima: 25 s mean inter-arrival at 100 executors
    assert (inst.job_arrival[:10] == 0).all()  # num_init_dags
    assert 0.1 < offered_load(inst) < 1.0


def test_heterogeneous_mix_heavy_users_submit_small_jobs():
    inst = generate(preset="multiuser", seed=1)
    heavy = inst.job_user < inst.meta["heavy_users"]
    assert heavy.mean() == pytest.approx(0.8, abs=0.1)
    assert inst.job_small[heavy].all() and not inst.job_small[~heavy].any()
    w = inst.job_work_s()
    assert w[heavy].mean() < w[~heavy].mean() / 3


def test_bad_input_is_named():
    with pytest.raises(InvalidInstanceError, match="num_executors must be >= 1"):
        generate(num_executors=0, num_users=1, num_jobs=1, seed=0)
    with pytest.raises(InvalidInstanceError, match="at least one executor"):
        build(0, [{"arrival": 0, "stages": [[1.0]]}])
    with pytest.raises(UnknownNameError, match="known job_sched presets"):
        generate(preset="nope")
    with pytest.raises(TypeError, match="unknown parameter"):
        generate(preset="small", bogus=1)
    cyc = [{"arrival": 0, "stages": [[1.0], [1.0], [1.0]], "edges": [(0, 1), (1, 2), (2, 1)]}]
    with pytest.raises(InvalidInstanceError, match="job 0 .*cyclic DAG"):
        build(2, cyc)
    with pytest.raises(InvalidInstanceError, match="job 0 stage 1 task 0 lasts 9.000 s, longer than the horizon"):
        build(2, [{"arrival": 0, "stages": [[1.0], [9.0]], "edges": [(0, 1)]}], horizon_s=5.0)
    with pytest.raises(InvalidInstanceError, match="job 0 stage 0 task 1 has duration"):
        build(2, [{"arrival": 0, "stages": [[1.0, -1.0]]}])


def test_save_load_roundtrip(tmp_path):
    inst = generate(preset="tiny", seed=3)
    back = load(save(inst, tmp_path / "i.json"))
    assert back.digest() == inst.digest()


def test_runtime_partitioning_keeps_work():
    inst = generate(preset="small", seed=0)
    part = partition_runtime(inst, 0.5)
    assert part.num_tasks > inst.num_tasks
    assert part.stage_work_s == pytest.approx(inst.stage_work_s, abs=1e-6)
    sizes = part.task_duration_s
    assert sizes.max() <= 0.5 + 1e-9


def test_generator_is_the_familys_versioned_generator():
    import sysgym
    from sysgym.envs.job_sched.generator import GENERATOR

    assert sysgym.get_family("job_sched").generator is GENERATOR is generate
    assert GENERATOR.versions.keys() == {0, 1} and set(GENERATOR.presets) == {"tiny", "small", "multiuser", "decima"}
    a = generate(preset="custom", seed=1, num_executors=4, num_users=2, num_jobs=3, version=0)
    assert a.name == "job_sched/custom?seed=1&num_executors=4&num_jobs=3&num_users=2"
    assert sysgym.instance(a.name).digest() == a.digest()
    b = generate(preset="custom", seed=1, num_executors=4, num_users=2, num_jobs=3)
    assert b.name == "job_sched-v1/custom?seed=1&num_executors=4&num_jobs=3&num_users=2&setting=%22multi_app%22"
    assert sysgym.instance(b.name).digest() == b.digest()
    assert sysgym.instance("job_sched-v0/tiny?seed=1").digest() == generate(preset="tiny", seed=1, version=0).digest()
    with pytest.raises(sysgym.InvalidArgumentError, match="needs num_executors"):
        generate(preset="custom", seed=0)


def test_malformed_saved_instances_name_the_file_and_field(tmp_path):
    data = generate(preset="tiny", seed=0).to_dict()
    cases = {
        "missing.json": ({k: v for k, v in data.items() if k != "task_duration_s"}, "lacks field 'task_duration_s'"),
        "format.json": ({**data, "format": "sysgym.other/1"}, "format 'sysgym.other/1', expected"),
        "type.json": ({**data, "num_executors": "two"}, "field 'num_executors' must be an integer"),
        "array.json": ({**data, "edges": 3}, "field 'edges' must be a list"),
        "shape.json": ({**data, "job_user": data["job_user"][:-1]}, "job_user has"),
    }
    for name, (content, match) in cases.items():
        path = tmp_path / name
        path.write_text(json.dumps(content))
        with pytest.raises((TraceFormatError, InvalidInstanceError), match=name.replace(".", r"\.")) as info:
            load(path)
        assert match in str(info.value)
    truncated = tmp_path / "truncated.json"
    truncated.write_text(json.dumps(data)[:-40])
    with pytest.raises(TraceFormatError, match=r"truncated\.json:1: not a JSON instance"):
        load(truncated)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(TraceFormatError, match=r"binary\.csv:1: not UTF-8"):
        load(binary)
    with pytest.raises(FileNotFoundError, match="nothere.json"):
        load(tmp_path / "nothere.json")
    with pytest.raises(TraceFormatError, match="directory"):
        load(tmp_path)


# -- the two settings (issue 20) -------------------------------------------------------------------------------
def test_presets_and_specs_name_their_setting():
    import sysgym
    from sysgym.envs.job_sched.generator import PRESETS

    assert {p: PRESETS[p]["setting"] for p in PRESETS} == {"tiny": "shared_app", "small": "multi_app",
                                                          "multiuser": "shared_app", "decima": "multi_app"}
    for preset, setting in (("multiuser", "shared_app"), ("decima", "multi_app")):
        inst = generate(preset=preset, seed=0)
        assert inst.setting == inst.effective_setting == setting
        assert inst.to_dict()["setting"] == setting and f"setting=%22{setting}%22" in inst.name
        assert sysgym.instance(inst.name).digest() == inst.digest()
    shared = generate(preset="multiuser", seed=0)
    assert shared.moving_delay_s == 0 and not (shared.stage_warmup_s > 0).any()
    multi = generate(preset="multiuser", seed=0, setting="multi_app")
    assert multi.moving_delay_s == 2.0 and (multi.stage_warmup_s > 0).any()  # Decima's 2 s and warm-up
    # a bare word in a hand-written spec is read as the string
    assert sysgym.instance("job_sched-v1/multiuser?seed=0&setting=multi_app").digest() == multi.digest()


def test_v1_is_v0_plus_the_setting_and_v0_still_reproduces():
    """v1 changes what a spec makes only by naming the setting: same jobs, durations and delays as v0 (the kit's
    rule: a changed generator is a new version; v0 stays reproducible, its digests pinned)."""
    import sysgym

    pinned = json.loads((Path(__file__).parents[1] / "data" / "digests" / "job_sched.json").read_text())
    v0 = {spec: d for spec, d in pinned["digests"].items() if spec.startswith("job_sched/")}  # no suffix: v0
    assert v0 and 0 in pinned["versions"]
    for spec, digest in v0.items():
        assert sysgym.instance(spec).digest() == digest, spec
    for kwargs in ({"preset": "small"}, {"preset": "tiny", "moving_delay_s": 2.0}, {"preset": "multiuser"},
                   {"preset": "multiuser", "moving_delay_s": 2.0, "warmup_scale": 1.0}):
        v0, v1 = generate(seed=3, version=0, **kwargs), generate(seed=3, **kwargs)
        assert v0.setting is None and v1.setting == v0.effective_setting
        for key in ("job_arrival", "task_duration_s", "stage_warmup_s", "edges", "job_user"):
            np.testing.assert_array_equal(getattr(v0, key), getattr(v1, key), err_msg=str(kwargs))
        assert v0.moving_delay_s == v1.moving_delay_s
        d0 = v0.to_dict()
        assert "setting" not in d0 and {k: v for k, v in v1.to_dict().items() if k not in ("setting", "name")} == \
            {k: v for k, v in d0.items() if k != "name"}


def test_setting_errors_are_named_before_any_work(tmp_path):
    from sysgym.errors import InvalidArgumentError

    with pytest.raises(UnknownNameError, match="job_sched setting"):
        generate(preset="multiuser", seed=0, setting="one_app")
    with pytest.raises(InvalidArgumentError, match="setting shared_app has no moving delay"):
        generate(preset="multiuser", seed=0, setting="shared_app", moving_delay_s=2.0)
    with pytest.raises(InvalidArgumentError, match="setting multi_app needs a moving delay"):
        generate(preset="decima", seed=0, setting="multi_app", moving_delay_s=0.0, warmup_scale=0.0)
    with pytest.raises(InvalidArgumentError, match="moving_delay_s must be a finite number"):
        generate(preset="multiuser", seed=0, moving_delay_s=float("inf"))
    with pytest.raises(InvalidArgumentError, match="unknown parameter"):
        generate(preset="multiuser", seed=0, setting="multi_app", version=0)  # v0 never knew settings
    with pytest.raises(InvalidInstanceError, match="setting shared_app .* no moving delay"):
        build(2, [{"arrival": 0, "stages": [[1.0]]}], moving_delay_s=2.0, setting="shared_app")
    with pytest.raises(InvalidInstanceError, match="unknown setting"):
        build(2, [{"arrival": 0, "stages": [[1.0]]}], setting="cloud")
    inst = generate(preset="tiny", seed=1, setting="multi_app")
    back = load(save(inst, tmp_path / "m.json"))
    assert back.setting == "multi_app" and back.digest() == inst.digest()
    data = inst.to_dict()
    data["setting"] = 3
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(TraceFormatError, match=r"bad\.json: field 'setting' must be a string or null"):
        load(tmp_path / "bad.json")
