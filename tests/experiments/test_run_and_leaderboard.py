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
    runs = [run_from_config(_cfg("solver=vm_resched.random", "seed=4", f"results_dir={tmp_path}")) for _ in range(2)]
    a, b = (r.record["metrics"] for r in runs)
    assert a["fragment_rate"] == b["fragment_rate"] and a["num_migrations"] == b["num_migrations"]
    assert runs[0].path != runs[1].path  # a second run never overwrites the first


def test_per_env_solver_overrides_apply():
    from sysgym.experiments.runner import solver_params

    assert solver_params(_cfg("env=vm_resched_large", "solver=vm_resched.milp"))["max_vms"] == 150
    assert solver_params(_cfg("env=vm_resched", "solver=vm_resched.milp"))["max_vms"] == 200


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
    for bad, message in (("bogus=1", "Key 'bogus' is not in struct"),
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
