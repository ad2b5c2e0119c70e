"""Loaders for the Azure Functions 2019 and Huawei 2025 traces, on small files in each schema (data/README.md)."""
import shutil

import numpy as np
import pytest

import sysgym
from sysgym.envs.serverless import (
    TRIGGERS,
    load,
    load_azure_invocations,
    load_huawei_cold_starts,
    load_huawei_per_minute,
    load_huawei_requests,
)
from sysgym.envs.serverless.traces import trace_kind
from sysgym.errors import TraceFormatError
from tests.serverless.conftest import DATA


def test_azure_invocations_with_durations_and_memory():
    plain = load_azure_invocations(DATA / "azure_invocations_d01.csv")
    assert plain.num_functions == 3  # the never-invoked fourth function is dropped
    counts = np.bincount(plain.inv_func)
    assert counts[0] == 96  # every 15 minutes
    assert [TRIGGERS[t] for t in plain.trigger] == ["timer", "http", "queue"]
    minutes = np.floor(plain.inv_time[plain.inv_func == 0] / 60)
    assert (minutes % 15 == 3).all()  # the file's column "4" is minute index 3; arrivals stay within the minute
    inst = load_azure_invocations(DATA / "azure_invocations_d01.csv", durations=DATA / "azure_durations_d01.csv",
                                  memory=DATA / "azure_memory_d01.csv")
    assert inst.mem_mb.tolist() == [256, 256, 512]  # 141 MB and 300 MB rounded up to Huawei pools
    e0 = inst.inv_exec[inst.inv_func == 0]
    assert 0.61 <= e0.min() and e0.max() <= 1.32  # within the file's percentile range, seconds
    assert inst.name.startswith("serverless/loaded:") and inst.source["durations"].endswith("azure_durations_d01.csv")
    assert sysgym.instance(plain.name).digest() == plain.digest()  # default options: replayable from its name


def test_huawei_cold_starts_requests_and_per_minute():
    table = load_huawei_cold_starts(DATA / "huawei_cold_starts.csv")
    s = table.summary()
    assert s["events"] == 5 and s["functions"] == 3
    assert s["mean_s"] == pytest.approx(np.mean([0.91109, 0.193592, 1.696061, 5.309122, 6.913106]))
    assert table.components("2016---556---pool24-600-512") == pytest.approx(
        [(0.000724 + 0.027074) / 2, (0.052 + 0.002) / 2, 4.322 / 2, (1.643337 + 2.562032) / 2])
    inst = load_huawei_requests(DATA / "huawei_requests.csv", cold_starts=table)
    assert inst.num_functions == 3 and inst.num_invocations == 10
    assert inst.mem_mb.tolist() == [128, 512, 1024]
    assert inst.inv_time[0] == pytest.approx(60.008) and inst.horizon_s == 86400  # day 30 starts at 0
    assert inst.inv_exec[0] == pytest.approx(0.0121)  # runtimeCost
    assert inst.source["functions_with_cold_start_events"] == 3
    assert inst.cold_s[2] == pytest.approx(5.309122)  # function 84's one cold start: its components sum to it
    per_min = load_huawei_per_minute(DATA / "huawei_requests_per_minute.csv",
                                     exec_time=DATA / "huawei_runtime_per_minute.csv")
    assert per_min.num_invocations == 12
    assert np.bincount(per_min.inv_func).tolist() == [5, 4, 3]
    assert sorted(set(np.round(per_min.inv_exec[per_min.inv_func == 1], 4))) == [0.454, 0.4608]
    for name in ("huawei_requests.csv", "huawei_requests_per_minute.csv", "azure_invocations_d01.csv"):
        assert load(DATA / name).digest() == sysgym.instance(f"serverless/file:{DATA / name}").digest()
    with pytest.raises(TraceFormatError, match="holds no invocations"):
        load(DATA / "huawei_cold_starts.csv")
    assert trace_kind(DATA / "huawei_cold_starts.csv") == "huawei_cold_starts"


def test_methods_run_on_a_loaded_trace():
    inst = load_huawei_requests(DATA / "huawei_requests.csv", cold_starts=DATA / "huawei_cold_starts.csv")
    bound = sysgym.solvers.get("serverless.offline").solve(inst).bound
    for name in ("serverless.fixed", "serverless.hybrid", "serverless.greedy_dual"):
        assert sysgym.solvers.get(name).solve(inst).objective >= bound - 1e-9


def _corrupt(tmp_path, name, line, old, new):
    path = tmp_path / name
    shutil.copy(DATA / name, path)
    lines = path.read_text().splitlines()
    assert old in lines[line - 1], (old, lines[line - 1][:80])
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("name,line,old,new,loader,match", [
    ("azure_invocations_d01.csv", 2, ",timer,", ",cron,", load_azure_invocations, ":2: Trigger 'cron'"),
    ("azure_invocations_d01.csv", 3, ",http,0,", ",http,-1,", load_azure_invocations, ":3: column 'minute 1'"),
    ("azure_invocations_d01.csv", 4, ",queue,", ",queue,x,", load_azure_invocations, ":4: 1445 fields"),
    ("azure_invocations_d01.csv", 1, ",1,2,3,", ",1,3,2,", load_azure_invocations, ":1: expected the columns"),
    ("huawei_cold_starts.csv", 3, ",0.193592,", ",fast,", load_huawei_cold_starts, ":3: column 'totalCost"),
    ("huawei_cold_starts.csv", 4, ",pool24-600-512-", ",p24-", load_huawei_cold_starts, ":4: 'p24-"),
    ("huawei_cold_starts.csv", 1, ",schedulingCost,", ",sched,", load_huawei_cold_starts, "lacks column"),
    ("huawei_requests.csv", 4, ",0.0122,", ",inf,", load_huawei_requests, ":4: column 'runtimeCost'"),
    ("huawei_requests.csv", 2, ",332,", ",,", load_huawei_requests, ":2: funcName and userID"),
    ("huawei_requests_per_minute.csv", 4, ",2.0,", ",2.5,", load_huawei_per_minute, ":4: column '332---439"),
    ("huawei_requests_per_minute.csv", 1, ",332---439---", ",332--439---", load_huawei_per_minute, "not a funcID"),
    ("huawei_requests_per_minute.csv", 3, "30,2592060", "thirty,2592060", load_huawei_per_minute, ":3: column 'day'"),
])
def test_malformed_rows_are_named(tmp_path, name, line, old, new, loader, match):
    path = _corrupt(tmp_path, name, line, old, new)
    with pytest.raises(TraceFormatError, match=match) as exc:
        loader(path)
    assert str(path) in str(exc.value)


def test_unreadable_files_are_named(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(TraceFormatError, match="empty file"):
        load_huawei_requests(tmp_path / "empty.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(TraceFormatError, match="not UTF-8"):
        load(tmp_path / "bin.csv")
    (tmp_path / "other.csv").write_text("a,b,c\n1,2,3\n")
    with pytest.raises(TraceFormatError, match="not a known serverless trace"):
        load(tmp_path / "other.csv")
    with pytest.raises(FileNotFoundError):
        load_azure_invocations(tmp_path / "missing.csv")
    short = tmp_path / "mismatch.csv"
    short.write_text((DATA / "huawei_runtime_per_minute.csv").read_text().replace("30,2592420,0.0238,,1.0987\n", ""))
    with pytest.raises(TraceFormatError, match="must match"):
        load_huawei_per_minute(DATA / "huawei_requests_per_minute.csv", exec_time=short)
