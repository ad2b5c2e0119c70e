"""Trace loaders on small files written in the Alibaba 2018 and Google 2019 formats (tests/job_sched/data)."""
from pathlib import Path

import pytest

from sysgym.envs.job_sched import evaluate, load, simulate
from sysgym.envs.job_sched.traces import load_trace
from sysgym.errors import InvalidInstanceError, TraceFormatError

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


# -- robustness (issue 21): every malformed input is a named error naming the file and the line ----------------
ROW = "M1,{n},j_1,1,Terminated,{s},{e},100,0.39\n"


@pytest.mark.parametrize("n, start, end, match", [
    ("inf", "86400", "86410", "instance_num must be finite, got 'inf'"),
    ("nan", "86400", "86410", "instance_num must be finite, got 'nan'"),
    ("-3", "86400", "86410", "instance_num must be >= 0, got '-3'"),
    ("2.5", "86400", "86410", "instance_num must be a whole number, got '2.5'"),
    ("4", "inf", "86410", "start_time must be finite"),
    ("4", "86400", "nan", "end_time must be finite"),
    ("4", "86400", "", "end_time must be a number, got ''"),
])
def test_alibaba_bad_numbers_name_file_and_line(tmp_path, n, start, end, match):
    p = tmp_path / "batch_task.csv"
    p.write_text(ROW.format(n=2, s=86400, e=86402) + ROW.format(n=n, s=start, e=end).replace("M1", "M2"))
    with pytest.raises(TraceFormatError, match=r"batch_task\.csv:2: job 'j_1' task 'M2': " + match):
        load(p)


def test_google_bad_numbers_and_rows_name_file_and_line(tmp_path):
    head = "time,type,collection_id,instance_index\n600000000,0,1,0\n"
    for bad, match in (("inf,3,1,0", "time must be finite"), ("601000000,3,1,-1", "instance_index must be >= 0"),
                       ("601000000,nan,1,0", "type must be finite"), ("601000000,3,1", "missing field")):
        p = tmp_path / "events.csv"
        p.write_text(head + bad + "\n")
        with pytest.raises(TraceFormatError, match=r"events\.csv:3: .*" + match):
            load_trace(p)
    p = tmp_path / "events.jsonl"
    p.write_text('{"time": 1, "type": 0, "collection_id": 1, "instance_index": 0}\n[1, 2, 3]\n')
    with pytest.raises(TraceFormatError, match=r"events\.jsonl:2: not a JSON object \(a list\)"):
        load_trace(p)
    p.write_text('{"time": 1, "type": 0, "collection_id": 1, "instance_index": 0}\n{"time": null, "type": 3, '
                 '"collection_id": 1, "instance_index": 0}\n')
    with pytest.raises(TraceFormatError, match=r"events\.jsonl:2: missing field 'time'"):
        load_trace(p)


def test_non_utf8_line_is_named_by_its_number(tmp_path):
    p = tmp_path / "batch_task.csv"
    p.write_bytes(ROW.format(n=2, s=86400, e=86402).encode() + b"M2,1,j_\xff\xfe,1,Terminated,1,2,1,1\n")
    with pytest.raises(TraceFormatError, match=r"batch_task\.csv:2: not UTF-8 text \(byte 7 of the line\)"):
        load(p)


def test_huge_instance_num_is_refused_before_any_work_or_coalesced(tmp_path):
    """instance_num=1e8 would build 1e8 tasks and a simulation of hours: refused while reading (max_tasks, default
    1,000,000), naming the line and the remedies; with max_tasks_per_stage the row is coalesced without ever
    expanding it, and the instance simulates at once."""
    import time

    p = tmp_path / "batch_task.csv"
    p.write_text(ROW.format(n=2, s=86400, e=86402) + "R2_1,1e8,j_1,1,Terminated,86402,86412,100,0.39\n")
    t0 = time.perf_counter()
    with pytest.raises(InvalidInstanceError, match=r"batch_task\.csv:2: job 'j_1' task 'R2_1' has "
                                                   r"instance_num=100,000,000.*max_tasks=1,000,000.*max_tasks_per_stage"):
        load(p)
    assert time.perf_counter() - t0 < 5
    inst = load_trace(p, max_tasks_per_stage=50, num_executors=10)
    assert inst.num_tasks == 2 + 50 and inst.stage_work_s[1] == pytest.approx(1e8 * 10.0)
    assert simulate(inst, "fifo").metrics["num_jobs"] == 1
    with pytest.raises(InvalidInstanceError, match=r"would have 50 tasks, more than max_tasks=49"):
        load_trace(p, max_tasks_per_stage=50, max_tasks=49)  # the row alone
    with pytest.raises(InvalidInstanceError, match=r"the 1 jobs selected have 52 tasks, more than max_tasks=51"):
        load_trace(p, max_tasks_per_stage=50, max_tasks=51)  # the rows together
