"""A trained agent as a solver: scored by the family's evaluator, in `sysgym run` records and the CLI."""
from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

import sysgym
from sysgym import solvers
from sysgym.agents.common import EnvVersionError
from sysgym.testing import check_solver


def test_agent_solver_is_registered_as_learned():
    assert "vm_resched.agent" in solvers.list("vm_resched")
    assert solvers.solver_class("vm_resched.agent").kind == "learned"
    with pytest.raises(ValueError, match="needs path"):  # vm_resched.agent defaults to its shipped policy
        solvers.get("kv_eviction.agent")


@pytest.mark.parametrize("which", ["run", "onnx"])
def test_claimed_objective_is_the_evaluators(vm_run, vm_onnx, which):
    path = vm_run[0] if which == "run" else vm_onnx
    inst = sysgym.get_family("vm_resched").generate(seed=7, preset="tiny")
    sol, metrics = check_solver("vm_resched.agent", inst, path=str(path))
    assert sol.status == "feasible" and sol.stats["steps"] == inst.mnl  # one decision per step, MNL steps
    assert metrics["num_migrations"] == len(sol.decisions) <= inst.mnl  # no-op steps are not migrations


def test_instance_of_another_size_is_refused_clearly(vm_onnx):
    inst = sysgym.get_family("vm_resched").generate(seed=0, preset="small")
    with pytest.raises((EnvVersionError, ValueError), match="PMs|layout"):
        solvers.get("vm_resched.agent", path=str(vm_onnx)).solve(inst)


def test_sysgym_run_records_the_agent(vm_onnx, tmp_path):
    from hydra import compose as hcompose
    from hydra import initialize_config_module

    from sysgym.experiments.runner import run_from_config

    with initialize_config_module(config_module="sysgym.conf", version_base="1.3"):
        cfg = hcompose(config_name="config", overrides=[
            "env=vm_resched", "env.preset=tiny", "solver.name=vm_resched.agent", f"+solver.params.path={vm_onnx}",
            f"results_dir={tmp_path}", "seed=3"])
    res = run_from_config(cfg)
    rec = res.record
    assert rec["method"] == "vm_resched.agent" and rec["solver_stats"]["status"] == "feasible"
    assert rec["solver_stats"]["claimed_objective"] == pytest.approx(rec["metrics"]["fragment_rate"])
    line = json.loads(res.path.read_text().splitlines()[0])
    assert line["method_config"]["path"] == str(vm_onnx)
    assert OmegaConf.select(cfg, "solver.params.path") == str(vm_onnx)


def test_cli_export_writes_both_formats(vm_run, tmp_path):
    from sysgym.experiments.cli import main

    out = tmp_path / "cli.onnx"
    assert main(["export", str(vm_run[0]), "--format", "onnx", "--output", str(out)]) == 0
    assert out.exists() and sysgym.agents.load(out).env_id == "sysgym/VmResched-v0"
    out = tmp_path / "cli.pt"
    assert main(["export", str(vm_run[0]), "--format", "torchscript", "--which", "best", "--output", str(out)]) == 0
    assert sysgym.agents.load(out).kind == "torchscript"
    assert main(["export", str(tmp_path / "missing_run"), "--format", "onnx"]) == 2


def test_cli_train_places_the_run_directory(tmp_path):
    from sysgym.experiments.cli import main

    run = tmp_path / "cli_run"
    assert main(["train", "env=vm_resched", "env.preset=tiny", "agent=maskable_ppo", "seed=1",
                 "agent.total_timesteps=256", "agent.n_envs=1", "agent.params.n_steps=128", "eval.instances=1",
                 "checkpoint_freq=0", "progress_bar=false", "tensorboard=false", f"hydra.run.dir={run}"]) == 0
    assert (run / "model.zip").exists() and (run / ".hydra" / "config.yaml").exists()
    assert json.loads((run / "summary.json").read_text())["timesteps"] == 256
