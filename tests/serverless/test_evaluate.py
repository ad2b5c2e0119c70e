"""The evaluator re-checks lifetimes and scores them; every figure here is worked out by hand."""
import json

import pytest

from sysgym.envs.serverless import ServerlessInstance, evaluate, load
from sysgym.errors import InfeasibleSolutionError, InvalidInstanceError, TraceFormatError
from sysgym.solution import Solution
from tests.serverless.conftest import hand_instance

KEEP = [(0, 0.0, 12.0), (1, 5.0, 8.0)]  # f0 kept warm through its 7 s gap
JIT = [(0, 0.0, 3.0), (0, 9.0, 11.0), (1, 5.0, 8.0)]  # f0 unloaded, pre-warmed just in time


def test_kept_instance_by_hand(hand):
    m = evaluate(hand, Solution(KEEP, 0.0, "feasible", 0.0))
    # f0: cold 1 s, runs [1, 3); warm at 10, runs [10, 11); loaded 12 s, busy [0, 3) + [10, 11) = 4 s -> 8 GB-s.
    # f1: cold 2 s, runs [7, 8); loaded = busy = 3 s -> 0 GB-s.
    assert m["cold_starts"] == 2 and m["cold_start_rate"] == pytest.approx(2 / 3)
    assert m["cold_start_s"] == pytest.approx(3.0)
    assert m["wasted_gb_s"] == pytest.approx(8.0)
    assert m["cost"] == pytest.approx(3.0 + 0.5 * 8.0)
    assert m["added_latency_mean_s"] == pytest.approx(1.0)
    assert m["cold_start_s_by_component"] == pytest.approx(
        {"pod_alloc": 0.9, "deploy_code": 0.5, "deploy_dep": 0.6, "scheduling": 1.0})
    assert m["per_function_cold_rate"] == [0.5, 1.0]
    assert m["fairness_jain"] == pytest.approx(0.5)  # warm rates 0.5 and 0
    assert m["peak_memory_mb"] == 1536 and m["loads"] == 2 and m["prewarm_loads"] == 0


def test_just_in_time_prewarm_by_hand(hand):
    m = evaluate(hand, JIT)
    assert m["cold_starts"] == 2 and m["prewarm_loads"] == 1
    assert m["wasted_gb_s"] == pytest.approx(1.0)  # the pre-warm's 1 s of loading, 1 GB, nobody waiting
    assert m["cost"] == pytest.approx(3.5)


@pytest.mark.parametrize("schedule,constraint", [
    ([(0, 0.0, 12.0), (0, 10.0, 12.0), (1, 5.0, 8.0)], "one instance per function"),
    ([(0, 0.0, 3.0), (1, 5.0, 8.0)], "coverage"),
    ([(0, 0.0, 2.5), (0, 10.0, 11.0), (1, 5.0, 8.0)], "unloaded while running"),
    ([(0, 0.0, 12.0), (1, 5.0, 8.0), (3, 0.0, 1.0)], "function index"),
    ([(0, 0.0, 12.0), (1, 5.0, 80.0)], "lifetime"),
    ([(0, "soon", 12.0)], "format"),
    ([(0, 0.0)], "format"),
])
def test_violations_are_named(hand, schedule, constraint):
    with pytest.raises(InfeasibleSolutionError) as exc:
        evaluate(hand, schedule)
    assert exc.value.constraint == constraint
    m = evaluate(hand, schedule, raise_on_infeasible=False)
    assert m["feasible"] is False and constraint in m["violation"]


def test_capacity_is_checked():
    small = hand_instance(capacity_mb=1024)
    with pytest.raises(InfeasibleSolutionError, match="capacity"):
        evaluate(small, KEEP)  # f0 kept through f1's run: 1536 MB
    assert evaluate(small, JIT)["feasible"]


def test_impossible_instances_are_refused():
    fields = _fields(hand_instance())
    with pytest.raises(InvalidInstanceError, match="busy instances may need"):  # f0 and f1 both busy at 1-3 s
        ServerlessInstance(**{**fields, "inv_time": [0.0, 1.0, 10.0], "capacity_mb": 1100.0})
    with pytest.raises(InvalidInstanceError, match="sorted"):
        ServerlessInstance(**{**fields, "inv_time": [0.0, 11.0, 10.0]})
    with pytest.raises(InvalidInstanceError, match="names function"):
        ServerlessInstance(**{**fields, "inv_func": [0, 2, 0]})
    with pytest.raises(InvalidInstanceError, match="horizon"):
        ServerlessInstance(**{**fields, "horizon_s": 10.0})


def _fields(inst):
    d = inst.to_dict()
    return {k: d[k] for k in ("mem_mb", "pod_alloc_s", "deploy_code_s", "deploy_dep_s", "scheduling_s", "trigger",
                              "inv_func", "inv_time", "inv_exec", "capacity_mb", "memory_weight", "horizon_s")}


def test_save_load_roundtrip_and_malformed_files(hand, tmp_path):
    path = hand.save(tmp_path / "hand.json")
    back = load(path)
    assert back.digest() == hand.digest() and back.name == hand.name
    data = json.loads(path.read_text())
    del data["inv_exec"]
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(TraceFormatError, match="inv_exec"):
        load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(TraceFormatError, match="not a sysgym serverless instance"):
        load(tmp_path / "other.json")
