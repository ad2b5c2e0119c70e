"""The contracts every family keeps: registries, Solution, records, instance specs."""
import json

import gymnasium
import pytest

import sysgym
from sysgym import solvers
from sysgym.errors import TraceFormatError, UnknownNameError
from sysgym.instances import format_spec, parse_spec
from sysgym.records import make_record, read_records, write_record
from sysgym.solution import Solution, relative_gap


def test_envs_register_on_import_and_gymnasium_make_agrees():
    assert "sysgym/VmResched-v0" in sysgym.list_envs()
    a = sysgym.make("sysgym/VmResched-v0", preset="tiny")
    b = gymnasium.make("sysgym/VmResched-v0", preset="tiny")
    c = sysgym.make("VmResched-v0", preset="tiny")  # namespace may be omitted
    assert a.unwrapped.action_space == b.unwrapped.action_space == c.unwrapped.action_space


def test_unknown_env_lists_known_ones():
    with pytest.raises(UnknownNameError, match="sysgym/VmResched-v0") as exc:
        sysgym.make("sysgym/Nope-v0")
    assert "unknown env 'sysgym/Nope-v0'" in str(exc.value)


def test_solver_registry_names_and_families():
    names = solvers.list("vm_resched")
    assert {"vm_resched.milp", "vm_resched.cpsat", "vm_resched.greedy", "vm_resched.filter_score",
            "vm_resched.random"} <= set(names)
    assert all(n.startswith("vm_resched.") for n in names)
    assert solvers.list("no_such_family") == []
    assert set(names) <= set(solvers.list())


def test_unknown_solver_and_unknown_option_are_named():
    with pytest.raises(UnknownNameError, match="vm_resched.milp"):
        solvers.get("vm_resched.nope")
    with pytest.raises(TypeError, match="no option.*bogus.*options: backend"):
        solvers.get("vm_resched.milp", bogus=1)
    with pytest.raises(ValueError, match="not available"):
        solvers.get("vm_resched.milp", backend="NOT_A_SOLVER")


def test_solution_status_and_gap():
    s = Solution(decisions=[], objective=0.5, status="timeout", wall_time_s=1.0, bound=0.4)
    assert s.gap == pytest.approx(0.2)
    assert relative_gap(0.0, 0.0) == 0.0
    with pytest.raises(ValueError, match="status"):
        Solution(decisions=[], objective=0.0, status="great", wall_time_s=0.0)


def test_records_never_overwrite_and_carry_provenance(tmp_path):
    rec = make_record(family="vm_resched", instance="vm_resched/tiny?seed=0", method="vm_resched.greedy",
                      method_config={}, seed=0, metrics={"fragment_rate": 0.25, "nan": float("nan")},
                      wall_time_s=0.1)
    p1 = write_record(rec, tmp_path)
    p2 = write_record({**rec, "run_id": ("1" if rec["run_id"][0] == "0" else "0") + rec["run_id"][1:]}, tmp_path)
    assert p1 != p2 and p1.exists() and p2.exists()
    with pytest.raises(FileExistsError):
        write_record(rec, tmp_path)  # the same run id would reuse the file name: refused
    loaded = list(read_records(tmp_path))
    assert len(loaded) == 2
    assert loaded[0]["versions"]["python"] and "numpy" in loaded[0]["versions"]
    assert loaded[0]["git_commit"]
    assert loaded[0]["metrics"]["nan"] is None  # JSON has no NaN


def test_malformed_record_names_file_and_line(tmp_path):
    (tmp_path / "bad.jsonl").write_text(json.dumps({"family": "x"}) + "\n")
    with pytest.raises(TraceFormatError, match=r"bad.jsonl:1: record lacks field\(s\) instance"):
        list(read_records(tmp_path))
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(TraceFormatError, match="bad.jsonl:1: not a JSON record"):
        list(read_records(tmp_path))


def test_instance_specs_round_trip():
    spec = format_spec("vm_resched", "small", 3, {"mnl": 4})
    assert parse_spec(spec) == ("vm_resched", "small", 3, {"mnl": 4})
    inst = sysgym.instance(spec)
    assert inst.mnl == 4 and inst.name == spec
    assert sysgym.instance(inst.name).digest() == inst.digest()  # a record's spec rebuilds the instance
    with pytest.raises(UnknownNameError, match="medium"):
        sysgym.instance("vm_resched/huge?seed=0")
    with pytest.raises(UnknownNameError, match="vm_resched"):
        sysgym.instance("nofamily/small?seed=0")


def test_gymnasium_make_without_importing_sysgym_first():
    """Gymnasium 1.x has no env plugin entry points; the `module:` prefix imports sysgym, then makes the env."""
    import subprocess
    import sys

    code = ("import sys, gymnasium\n"
            "assert 'sysgym' not in sys.modules\n"
            "env = gymnasium.make('sysgym:sysgym/VmResched-v0', preset='tiny')\n"
            "obs, info = env.reset(seed=0)\n"
            "print(type(env.unwrapped).__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "VmReschedEnv"


def test_unknown_names_use_the_plural_of_their_kind():
    with pytest.raises(UnknownNameError, match="known families: .*vm_resched"):
        sysgym.get_family("nope")
    from sysgym.errors import plural

    assert [plural(k) for k in ("policy", "TPC-H query", "arrival process", "memory-plan semantics", "env")] == \
        ["policies", "TPC-H queries", "arrival processes", "memory-plan semantics", "envs"]

