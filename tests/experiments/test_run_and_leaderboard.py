"""The Hydra app, records, the leaderboard and the CLI, end to end on the VM family."""
import json
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_module

from sysgym.experiments.cli import main as cli_main
from sysgym.experiments.leaderboard import leaderboard, summarise
from sysgym.experiments.runner import run_from_config
from sysgym.records import read_records

SYSGYM = [sys.executable, "-m", "sysgym.experiments.cli"]


def _cfg(*overrides):
    with initialize_config_module("sysgym.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_a_run_writes_a_complete_record(tmp_path):
    cfg = _cfg("env=vm_resched", "solver=vm_resched.greedy", "seed=1", f"results_dir={tmp_path}",
               "env.preset=tiny")
    result = run_from_config(cfg)
    rec = json.loads(result.path.read_text())
    assert rec["family"] == "vm_resched" and rec["method"] == "vm_resched.greedy" and rec["seed"] == 1
    assert rec["instance"] == "vm_resched/tiny?seed=1"
    for key in ("fragment_rate", "fragment_rate_before", "num_migrations", "feasible", "fragment_rate_timed"):
        assert key in rec["metrics"]
    assert rec["solver_stats"]["status"] == "feasible"
    assert rec["versions"]["ortools"] and rec["git_commit"]
    assert rec["solver_stats"]["claimed_objective"] == pytest.approx(rec["metrics"]["fragment_rate"])


def test_same_seed_and_config_give_the_same_numbers(tmp_path):
    runs = [run_from_config(_cfg("solver=vm_resched.random", "seed=4", f"results_dir={tmp_path}", "resume=false"))
            for _ in range(2)]
    a, b = (r.record["metrics"] for r in runs)
    assert a["fragment_rate"] == b["fragment_rate"] and a["num_migrations"] == b["num_migrations"]
    assert runs[0].path != runs[1].path  # a second run never overwrites the first


def test_resume_skips_finished_runs(tmp_path):
    first = run_from_config(_cfg("solver=vm_resched.greedy", "seed=2", f"results_dir={tmp_path}"))
    again = run_from_config(_cfg("solver=vm_resched.greedy", "seed=2", f"results_dir={tmp_path}"))
    assert first.skipped is None and again.skipped and again.path == first.path
    other = run_from_config(_cfg("solver=vm_resched.greedy", "seed=3", f"results_dir={tmp_path}"))
    assert other.skipped is None and len(list(tmp_path.glob("*.jsonl"))) == 2


def test_per_env_solver_overrides_apply():
    from sysgym.experiments.runner import solver_params

    assert solver_params(_cfg("env=vm_resched_large", "solver=vm_resched.milp"))["max_vms"] == 600
    assert solver_params(_cfg("env=vm_resched", "solver=vm_resched.milp"))["max_vms"] is None


def test_validate_flags_a_corrupted_metric_and_the_leaderboard_drops_it(tmp_path, capsys):
    from sysgym.experiments.validate import validate

    paths = [run_from_config(_cfg(f"solver={s}", "seed=0", "env.preset=tiny", f"results_dir={tmp_path}")).path
             for s in ("vm_resched.greedy", "vm_resched.random", "vm_resched.cpsat")]
    assert {v["status"] for v in validate(tmp_path).values()} == {"ok"}
    rec = json.loads(paths[0].read_text())
    rec["metrics"]["fragment_rate"] = 0.0001  # a too-good number
    paths[0].write_text(json.dumps(rec) + "\n")
    verdicts = validate(tmp_path, use_cache=False)
    assert verdicts[rec["run_id"]]["status"] == "mismatch" and "fragment_rate" in verdicts[rec["run_id"]]["detail"]
    assert sum(v["status"] == "ok" for v in verdicts.values()) == 2
    (tmp_path / "validation.json").unlink()
    rows = leaderboard(tmp_path)
    assert "vm_resched.greedy" not in {r["method"] for r in rows}
    assert "not counted (mismatch)" in capsys.readouterr().out
    rec2 = json.loads(paths[1].read_text())
    rec2["solution"]["decisions"] = [[0, 99, 0]]  # a migration to a PM that does not exist
    paths[1].write_text(json.dumps(rec2) + "\n")
    assert validate(tmp_path, use_cache=False)[rec2["run_id"]]["status"] == "infeasible"
    assert cli_main(["validate", str(tmp_path), "--fresh"]) == 1
    assert (tmp_path / "leaderboard.md").exists() and (tmp_path / "leaderboard.csv").exists()


def test_a_torn_record_is_reported_with_its_line(tmp_path):
    path = run_from_config(_cfg("solver=vm_resched.greedy", "env.preset=tiny", f"results_dir={tmp_path}")).path
    path.write_text(path.read_text().rstrip("\n")[:-20])
    with pytest.raises(Exception, match="torn last line"):
        list(read_records(tmp_path))


def test_joblib_and_submitit_local_launchers(tmp_path):
    for launcher in ("sysgym_joblib", "sysgym_submitit_local"):
        out = tmp_path / launcher
        proc = subprocess.run(SYSGYM + ["run", "--multirun", f"hydra/launcher={launcher}", "env=vm_resched",
                                        "env.preset=tiny", "solver=vm_resched.greedy", "seed=0,1",
                                        f"results_dir={out}"], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert sorted(r["seed"] for r in read_records(out)) == [0, 1], launcher


def test_a_killed_sweep_resumes_to_exactly_the_full_record_set(tmp_path):
    import signal
    import time

    out = tmp_path / "res"
    cmd = SYSGYM + ["run", "--multirun", "env=vm_resched", "env.preset=small", "solver=vm_resched.greedy",
                    "seed=0,1,2,3,4,5,6,7", f"results_dir={out}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and len(list(out.glob("*.jsonl"))) < 2:
        time.sleep(0.05)
    os_kill = __import__("os").killpg
    os_kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = len(list(out.glob("*.jsonl")))
    assert 2 <= partial < 8, partial  # killed midway
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    records = list(read_records(out))
    assert sorted(r["seed"] for r in records) == list(range(8))  # every run once: nothing lost or duplicated
    assert "already done" in done.stdout


def test_cli_multirun_then_leaderboard(tmp_path, capsys):
    out = tmp_path / "res"
    proc = subprocess.run(SYSGYM + ["run", "--multirun", "env=vm_resched", "env.preset=tiny",
                                    "solver=vm_resched.greedy,vm_resched.random", "seed=0,1", f"results_dir={out}"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    records = list(read_records(out))
    assert len(records) == 4
    assert {(r["method"], r["seed"]) for r in records} == {(m, s) for m in ("vm_resched.greedy", "vm_resched.random")
                                                           for s in (0, 1)}
    rows = leaderboard(out, plot_path=tmp_path / "lb.png")
    assert (tmp_path / "lb.png").stat().st_size > 1000
    greedy = next(r for r in rows if r["method"] == "vm_resched.greedy")
    random_ = next(r for r in rows if r["method"] == "vm_resched.random")
    assert greedy["runs"] == 2 and greedy["objective"] <= random_["objective"]
    assert greedy["rank"] == 1
    assert cli_main(["leaderboard", str(out), "--format", "csv"]) == 0
    assert "vm_resched.greedy" in capsys.readouterr().out


def test_unknown_override_fails_before_any_work(tmp_path):
    out = tmp_path / "res"
    for bad, message in (("bogus=1", "unknown config key 'bogus'; valid keys: agent, deterministic_time, env,"),
                         ("solver=vm_resched.nope", "Could not find 'solver/vm_resched.nope'"),
                         ("env=nope", "Could not find 'env/nope'")):
        proc = subprocess.run(SYSGYM + ["run", bad, f"results_dir={out}"], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode != 0 and message in proc.stderr + proc.stdout, (bad, proc.stderr)
    assert not any(out.rglob("*.jsonl"))  # nothing was written


def test_unknown_solver_option_is_named_before_solving(tmp_path):
    with pytest.raises(TypeError, match="no option.*frobnicate"):
        run_from_config(_cfg("solver=vm_resched.milp", "+solver.params.frobnicate=1", f"results_dir={tmp_path}"))
    assert not list(tmp_path.rglob("*.jsonl"))


def test_cross_family_pairs_are_skipped_not_run(tmp_path):
    from sysgym.experiments import runner

    cfg = _cfg("solver=vm_resched.greedy", f"results_dir={tmp_path}")
    cfg.solver.name = "vm_resched.greedy"
    cfg.env.family = "vm_resched"
    assert runner.run_from_config(cfg).skipped is None


def test_leaderboard_of_missing_results_is_a_clear_error(tmp_path, capsys):
    assert cli_main(["leaderboard", str(tmp_path / "nothing")]) == 2
    assert "no results at" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli_main(["leaderboard", str(tmp_path / "empty")]) == 2


def test_summarise_ranks_by_the_family_objective():
    def rec(method, fr, seed):
        return {"family": "vm_resched", "env": "e", "instance": f"vm_resched/tiny?seed={seed}", "method": method,
                "seed": seed, "metrics": {"fragment_rate": fr, "fragment_rate_before": 0.5},
                "wall_time_s": 0.1, "solver_stats": {"status": "feasible"}}
    rows = summarise([rec("a", 0.3, 0), rec("a", 0.5, 1), rec("b", 0.2, 0), rec("b", 0.4, 1)])
    assert [r["method"] for r in rows] == ["b", "a"] and rows[0]["objective"] == pytest.approx(0.3)


def test_list_shows_envs_and_solvers(capsys):
    assert cli_main(["list"]) == 0
    out = capsys.readouterr().out
    assert "sysgym/VmResched-v0" in out and "vm_resched.cpsat" in out


def test_a_users_own_config_directory_is_searched(tmp_path):
    conf = tmp_path / "myconf" / "env"
    conf.mkdir(parents=True)
    (conf / "my_cluster.yaml").write_text("name: my_cluster\nfamily: vm_resched\nid: sysgym/VmResched-v0\n"
                                          "preset: tiny\ninstance_seed: ${seed}\nparams: {mnl: 2}\n")
    out = tmp_path / "res"
    proc = subprocess.run(SYSGYM + ["run", f"hydra.searchpath=[file://{tmp_path / 'myconf'}]", "env=my_cluster",
                                    "solver=vm_resched.greedy", f"results_dir={out}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (rec,) = read_records(out)
    assert rec["env"] == "my_cluster" and rec["metrics"]["num_migrations"] <= 2
