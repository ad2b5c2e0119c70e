"""Trace loaders on small files written in the Alibaba 2018 and Google 2019 formats (tests/job_sched/data)."""
from pathlib import Path

import pytest

from sysgym.envs.job_sched import evaluate, load, simulate
from sysgym.envs.job_sched.traces import load_trace
from sysgym.errors import TraceFormatError

DATA = Path(__file__).with_name("data")


def test_alibaba_dag_names_become_edges():
    inst = load(DATA / "alibaba2018_batch_task.csv")
    assert inst.meta["trace"] == "alibaba2018" and len(inst.meta["sha256"]) == 16
    assert inst.num_jobs == 3  # j_4 never finished: dropped
    labels = list(inst.job_label)
    j1 = labels.index("j_1")
    stages = list(inst.job_stages(j1))
    assert [inst.stage_num_tasks(s) for s in stages] == [10, 5, 2, 1]
    local = sorted((a - stages[0], b - stages[0]) for a, b in inst.edges.tolist() if a in stages)
    assert local == [(0, 2), (1, 2), (2, 3)]  # R3_1_2 after M1, M2; J4_3 after R3
    assert inst.task_duration_s[inst.stage_task_ptr[stages[0]]] == pytest.approx(10.0)
    assert inst.job_arrival[j1] == 0.0 and inst.job_arrival[labels.index("j_3")] == pytest.approx(30.0)
    res = simulate(inst, "uwfq")
    assert evaluate(inst, res.schedule)["mean_response_s"] == pytest.approx(res.metrics["mean_response_s"])


@pytest.mark.parametrize("name", ["google2019_instance_events.csv", "google2019_instance_events.jsonl"])
def test_google_collections_become_jobs(name):
    inst = load_trace(DATA / name, num_executors=4)
    assert inst.meta["trace"] == "google2019" and inst.meta["users"] == ["alice", "bob"]
    assert inst.num_jobs == 2  # collection 777 never finished
    a = inst.job_label.index("collection-400465256")
    b = inst.job_label.index("collection-500123")
    s = inst.job_stages(a)[0]
    assert sorted(inst.task_duration_s[inst.stage_task_ptr[s]:inst.stage_task_ptr[s + 1]]) == [10.0, 20.0]
    sb = inst.job_stages(b)[0]
    assert inst.task_duration_s[inst.stage_task_ptr[sb]] == pytest.approx(4.0)  # rescheduled after eviction
    assert inst.job_arrival[b] == pytest.approx(5.0) and list(inst.job_user) == [0, 1]


def test_malformed_rows_name_the_line():
    with pytest.raises(TraceFormatError, match=r"alibaba2018_bad_row.csv:2: job 'j_1' task 'M2'"):
        load(DATA / "alibaba2018_bad_row.csv")
    with pytest.raises(TraceFormatError, match=r":2: job 'j_1' task 'R3_2' depends on task 2"):
        load(DATA / "alibaba2018_missing_dep.csv")
    with pytest.raises(TraceFormatError, match=r"google2019_bad_row.csv:3: time/type"):
        load(DATA / "google2019_bad_row.csv")


def test_unknown_file_is_named(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(TraceFormatError, match="x.csv:1: neither"):
        load(p)
