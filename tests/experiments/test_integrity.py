"""Record integrity: verdicts follow the record's content, the leaderboard counts only what was validated (one
record per run key, per results folder) and says so, and provenance names sysgym's own build."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from sysgym import records
from sysgym.experiments.cli import main as cli_main
from sysgym.experiments.leaderboard import collect, leaderboard
from sysgym.experiments.runner import run_from_config
from sysgym.experiments.validate import CACHE, check, validate

SYSGYM = [sys.executable, "-m", "sysgym.experiments.cli"]


def _cfg(*overrides):
    with initialize_config_module("sysgym.conf", version_base="1.3"):
        return compose("config", overrides=["env=vm_resched_tiny", *overrides])


def _run(out, solver="vm_resched.greedy", seed=0, *more):
    return run_from_config(_cfg(f"solver={solver}", f"seed={seed}", f"results_dir={out}", *more))


def _edit(path: Path, change) -> dict:
    rec = json.loads(path.read_text())
    change(rec)
    path.write_text(json.dumps(rec) + "\n")
    return rec


def test_an_edited_record_is_validated_again_without_fresh(tmp_path):
    path = _run(tmp_path).path
    _run(tmp_path, "vm_resched.random")
    first = check(tmp_path)
    assert [v["status"] for _, v in first.checked] == ["ok", "ok"] and first.reused == 0
    again = check(tmp_path)
    assert again.reused == 2  # nothing changed: both verdicts come from the cache

    def better(rec):
        rec["metrics"]["fragment_rate"] = 0.0001  # a too-good number, written after validation

    rec = _edit(path, better)
    after = check(tmp_path)  # no --fresh
    assert after.reused == 1
    verdict = after.by_run_id()[rec["run_id"]]
    assert verdict["status"] == "mismatch" and "fragment_rate" in verdict["detail"]
    rows = leaderboard(tmp_path, write=False)
    assert "vm_resched.greedy" not in {r["method"] for r in rows}  # the leaderboard follows the new content


def test_a_record_missing_its_objective_or_a_metric_is_a_mismatch(tmp_path, capsys):
    paths = [_run(tmp_path, seed=s).path for s in (0, 1, 2)]
    rec = _edit(paths[0], lambda r: r["metrics"].pop("fragment_rate"))
    rec1 = _edit(paths[1], lambda r: r["metrics"].pop("num_migrations"))
    rec2 = _edit(paths[2], lambda r: r["metrics"].update(made_up=1.0))
    verdicts = validate(tmp_path, use_cache=False)
    assert verdicts[rec["run_id"]]["status"] == "mismatch"
    assert "objective 'fragment_rate' is missing" in verdicts[rec["run_id"]]["detail"]
    assert verdicts[rec1["run_id"]]["status"] == "mismatch" and "num_migrations" in verdicts[rec1["run_id"]]["detail"]
    assert verdicts[rec2["run_id"]]["status"] == "mismatch" and "made_up" in verdicts[rec2["run_id"]]["detail"]
    _run(tmp_path, seed=3)
    (row,) = leaderboard(tmp_path, write=False)
    assert row["runs"] == 1 and row["scored_runs"] == 1  # runs counted = values averaged


def test_an_edited_side_file_is_noticed_and_side_files_resolve_from_a_parent_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(records, "SOLUTION_INLINE_LIMIT", 1)  # every solution goes to a side file
    out = tmp_path / "sweep"
    path = _run(out).path
    rec = json.loads(path.read_text())
    side = out / rec["solution_file"]
    assert "solution" not in rec and side.is_file()
    # validated from the parent folder (and from the record file itself): the side file is found beside the record
    assert [v["status"] for v in validate(tmp_path).values()] == ["ok"]
    assert [v["status"] for v in validate(path, out=tmp_path / "elsewhere").values()] == ["ok"]
    payload = json.loads(side.read_text())
    payload["decisions"] = [[0, 99, 0]]  # a migration to a PM that does not exist
    side.write_text(json.dumps(payload))
    assert validate(tmp_path)[rec["run_id"]]["status"] == "infeasible"  # cached verdict not reused
    side.unlink()
    verdict = validate(tmp_path)[rec["run_id"]]
    assert verdict["status"] == "unverifiable" and "missing" in verdict["detail"]


def test_two_sweeps_under_one_root_are_ranked_apart_unless_merged(tmp_path, capsys):
    for sweep, seeds in (("a", (0, 1)), ("b", (2,))):
        for s in seeds:
            _run(tmp_path / sweep, seed=s)
    rows = leaderboard(tmp_path)
    assert {(r["group"], r["runs"]) for r in rows} == {("a", 2), ("b", 1)}
    out = capsys.readouterr().out
    assert "results folders 'a', 'b', ranked separately" in out
    merged = leaderboard(tmp_path, merge=True, write=False)
    assert [(r["group"], r["runs"]) for r in merged] == [("all", 3)]
    assert "pooled from every folder" in capsys.readouterr().out
    assert "results folder `a`" in (tmp_path / "leaderboard.md").read_text()


def test_duplicates_of_one_run_key_are_counted_once_and_listed(tmp_path, capsys):
    first = _run(tmp_path, "vm_resched.random", 4)
    again = _run(tmp_path, "vm_resched.random", 4, "resume=false")  # same config, new run id
    assert first.record["run_key"] == again.record["run_key"] and first.record["run_id"] != again.record["run_id"]
    shutil.copy(first.path, tmp_path / "copy_of_first.jsonl")  # same run id under another name
    found = collect(tmp_path, progress=False)
    assert len(found["counted"]) == 1
    dups = [(s.path.name, d) for s, status, d in found["not_counted"] if status == "duplicate"]
    assert len(dups) == 2 and any("same run id" in d for _, d in dups) and any("new run id" in d for _, d in dups)
    (row,) = leaderboard(tmp_path, write=False)
    assert row["runs"] == 1
    assert capsys.readouterr().out.count("not counted (duplicate)") == 2


def test_torn_and_foreign_files_are_reported_not_fatal(tmp_path, capsys):
    good = _run(tmp_path).path
    torn = _run(tmp_path, seed=1).path
    torn.write_text(torn.read_text().rstrip("\n")[:-20])
    (tmp_path / "notes.jsonl").write_text(json.dumps({"step": 1, "loss": 0.3}) + "\n")
    (tmp_path / "binary.jsonl").write_bytes(b"\xff\xfe\x00garbage\n")
    (tmp_path / "list.jsonl").write_text("[1, 2]\n")
    rows = leaderboard(tmp_path, write=False)
    assert rows[0]["runs"] == 1
    out = capsys.readouterr().out
    for needle in (f"{torn.name}:1: torn last line", "notes.jsonl:1: record lacks field(s)", "binary.jsonl: not UTF-8",
                   "list.jsonl:1: a JSON list"):
        assert needle in out, needle
    assert cli_main(["validate", str(tmp_path)]) == 1  # validate lists them too, and says so by its exit code
    out = capsys.readouterr().out
    assert "1 of 1 records validated" in out and out.count("not a record") == 4 and good.exists()


def test_the_verdict_cache_keeps_no_run_id_only_entries(tmp_path):
    _run(tmp_path)
    (tmp_path / CACHE).write_text(json.dumps({"0" * 32: {"status": "ok", "detail": ""}}))  # an old-format cache
    report = check(tmp_path)
    assert report.reused == 0 and [v["status"] for _, v in report.checked] == ["ok"]
    data = json.loads((tmp_path / CACHE).read_text())
    assert data["format"] == 2 and len(data["verdicts"]) == 1 and data["validator"].startswith("sysgym ")


# -- read-only results folders ----------------------------------------------------------------------------------
def test_validate_and_leaderboard_work_on_a_read_only_folder(tmp_path, read_only_run):
    res = tmp_path / "res"
    _run(res)
    _run(res, "vm_resched.random")
    before = sorted(p.name for p in res.iterdir())
    out = tmp_path / "out"
    proc = read_only_run(res, ["validate", str(res)], ["leaderboard", str(res), "--out", str(out)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 of 2 records validated" in proc.stdout and "not writable" in proc.stdout
    assert (out / "leaderboard.md").is_file() and (out / "validation.json").is_file()
    assert sorted(p.name for p in res.iterdir()) == before  # nothing written into the read-only folder


# -- provenance ---------------------------------------------------------------------------------------------------
def test_provenance_is_sysgyms_own_build_never_the_users_repository(tmp_path, monkeypatch):
    info = records.build_info()
    assert info["source"] in ("build", "checkout") and info["commit"] != "unknown"
    if info["source"] == "checkout":  # an editable install: the commit of sysgym's own checkout
        root = records._package_root()
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
        assert info["commit"].split("+")[0] == head
    # A user's repository around an installed copy (a virtualenv inside it, a vendored folder) is never asked.
    user = tmp_path / "user_repo"
    (user / "venv" / "site-packages").mkdir(parents=True)
    (user / "vendored").mkdir()
    (user / "vendored" / "pyproject.toml").write_text('[project]\nname = "sysgym"\n')
    git = ["git", "-c", "user.email=u@example.com", "-c", "user.name=u"]
    subprocess.run(git + ["init", "-q", str(user)], check=True)
    subprocess.run(git + ["-C", str(user), "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    monkeypatch.chdir(user)
    assert records._own_checkout_commit(user / "venv" / "site-packages") is None
    assert records._own_checkout_commit(user / "vendored") is None
    # A wheel carries the commit it was built from (written by setup.py into sysgym/_build_info.py).
    fake = type(sys)("sysgym._build_info")
    fake.VERSION, fake.COMMIT = "9.9.9", "abc123"
    monkeypatch.setitem(sys.modules, "sysgym._build_info", fake)
    records.build_info.cache_clear()
    try:
        assert records.build_info() == {"version": "9.9.9", "commit": "abc123", "source": "build"}
        assert records.make_record(family="f", instance="f/x?seed=0", method="f.m", method_config={}, seed=0,
                                   metrics={}, wall_time_s=0.0)["git_commit"] == "abc123"
    finally:
        records.build_info.cache_clear()


@pytest.mark.slow  # builds a wheel from a clone of this checkout (pip, about 10-20 s)
def test_a_wheel_records_the_commit_it_was_built_from_inside_a_users_repository(tmp_path):
    root = records._package_root()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--shared", str(root), str(clone)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(clone)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("sysgym-*.whl"))
    user = tmp_path / "user_repo"  # the user's own repository, with the wheel installed inside it
    site = user / "venv" / "site-packages"
    site.mkdir(parents=True)
    shutil.unpack_archive(str(wheel), str(site), "zip")
    git = ["git", "-c", "user.email=u@example.com", "-c", "user.name=u"]
    subprocess.run(git + ["init", "-q", str(user)], check=True)
    subprocess.run(git + ["-C", str(user), "commit", "-q", "--allow-empty", "-m", "user"], check=True)
    deps = next(p for p in sys.path if p.endswith("site-packages"))  # numpy etc.; no .pth: no editable sysgym
    code = ("import sysgym, sysgym.records as r; print(sysgym.__file__); print(r.build_info()['source'], "
            "r.git_commit())")
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=user, capture_output=True, text=True,
                         env={"PYTHONPATH": f"{site}:{deps}", "PATH": "/usr/bin:/bin"}, check=True).stdout.split("\n")
    assert out[0].startswith(str(site))
    assert out[1] == f"build {head.stdout.strip()}"  # the clone's commit, not the user's repository's
