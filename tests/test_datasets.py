"""Shipped datasets: named, checksummed, attributed; documented public traces load from a path."""
import shutil
from pathlib import Path

import numpy as np
import pytest

import sysgym.datasets as ds
from sysgym.errors import TraceFormatError, UnknownNameError

REPO = Path(__file__).resolve().parents[1]


def test_the_azure_2023_traces_ship_as_named_datasets():
    assert ds.list() == ["azure-code-2023", "azure-conv-2023"]
    conv = ds.load("azure-conv-2023")
    cols = conv.read()
    assert list(cols) == ["arrived_at", "num_prefill_tokens", "num_decode_tokens"]
    assert len(cols["arrived_at"]) == conv.info.rows == 19366
    assert np.all(np.diff(cols["arrived_at"]) >= 0) and cols["num_prefill_tokens"].min() >= 1
    code = ds.load("azure-code-2023").read(max_rows=10)
    assert len(code["arrived_at"]) == 10
    assert ds.path("azure-conv-2023") == conv.path and conv.path.is_file()
    assert ds.resolve("azure-conv-2023") == conv.path and ds.resolve("some/file.csv") == Path("some/file.csv")


def test_a_bad_name_lists_the_known_ones():
    with pytest.raises(UnknownNameError, match="unknown dataset 'azure-2023'; known datasets: alibaba-2018, "
                                               "azure-code-2023, azure-conv-2023"):
        ds.load("azure-2023")


def test_every_shipped_file_matches_its_checksum_and_is_attributed():
    notice = (REPO / "NOTICE").read_text()
    for name in ds.list():
        info = ds.info(name)
        assert ds.sha256_of(ds.path(name)) == info.sha256
        assert info.file in notice and "Splitwise" in info.attribution and "Splitwise" in notice
        assert "CC-BY" in info.license and "MIT" in info.license


def test_an_altered_file_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / "data" / "azure_llm_2023"
    copy.mkdir(parents=True)
    shutil.copy(ds.path("azure-code-2023"), copy / "code.csv")
    monkeypatch.setattr(ds, "_package_file", lambda rel: tmp_path / "data" / rel)
    assert ds.path("azure-code-2023").parent == copy
    with (copy / "code.csv").open("a") as fh:
        fh.write("3500.0,1,1\n")
    with pytest.raises(ds.DatasetError, match="does not match its checksum"):
        ds.load("azure-code-2023")
    (copy / "code.csv").unlink()
    with pytest.raises(ds.DatasetError, match="missing from this installation"):
        ds.path("azure-code-2023")


def test_public_traces_are_documented_and_loaded_from_a_path(tmp_path):
    external = [n for n in ds.list(external=True) if n not in ds.list()]
    assert {"burstgpt", "alibaba-2018", "google-2019", "azure-functions-2019", "huawei-2025"} <= set(external)
    for name in external:
        info = ds.info(name)
        assert not info.shipped and info.source.startswith("https://") and info.license and info.attribution
        with pytest.raises(ds.DatasetError, match="not shipped"):
            ds.load(name)
    burst = tmp_path / "burst.csv"
    burst.write_text("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                     "5,ChatGPT,472,18,490,Conversation log\n")
    assert ds.load("burstgpt", path=burst).read()["Request tokens"].tolist() == [472.0]
    burst.write_text("Timestamp,Model,Prompt tokens\n1,ChatGPT,3\n")
    with pytest.raises(TraceFormatError, match=r"burst.csv:1: header lacks burstgpt column\(s\) Request tokens"):
        ds.load("burstgpt", path=burst)
    ali = REPO / "tests" / "job_sched" / "data" / "alibaba2018_batch_task.csv"
    assert ds.load("alibaba-2018", path=ali).read()["task_name"].size > 0
    bad = tmp_path / "ali.csv"
    bad.write_text("M1,1,j_1\n")
    with pytest.raises(TraceFormatError, match="3 columns; alibaba-2018 rows have 9"):
        ds.load("alibaba-2018", path=bad)
    with pytest.raises(FileNotFoundError, match="get it from https://"):
        ds.load("google-2019", path=tmp_path / "missing.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(TraceFormatError, match="not UTF-8"):
        ds.load("burstgpt", path=tmp_path / "bin.csv")


def test_the_llm_serving_loader_reads_the_shipped_trace():
    from sysgym.envs.llm_serving import load_trace

    trace = load_trace(ds.path("azure-conv-2023"), format="azure")
    assert len(trace.arrival) == 19366


def test_the_datasets_command(capsys):
    from sysgym.experiments.cli import main

    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "azure-conv-2023" in out and "burstgpt" in out
    assert main(["datasets", "azure-code-2023", "--path"]) == 0
    assert capsys.readouterr().out.strip() == str(ds.path("azure-code-2023"))
    assert main(["datasets", "nope"]) == 2
