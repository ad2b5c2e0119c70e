"""`sysgym run ... solver=agent agent.path=...`: a trained policy as a method in sweeps and the leaderboard."""
from hydra import compose, initialize_config_module

from sysgym.experiments.runner import run_from_config
from sysgym.experiments.validate import validate


def _cfg(*overrides):
    with initialize_config_module("sysgym.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_solver_agent_maps_to_the_family_agent_and_validates(vm_run, tmp_path):
    run_dir = vm_run[0]
    res = run_from_config(_cfg("env=vm_resched", "env.preset=tiny", "solver=agent", f"agent.path={run_dir}",
                               f"results_dir={tmp_path}"))
    assert res.record["method"] == "vm_resched.agent" and res.record["method_config"]["path"] == str(run_dir)
    assert res.record["metrics"]["feasible"]
    assert [v["status"] for v in validate(tmp_path).values()] == ["ok"]


def test_solver_agent_without_a_path_is_refused(tmp_path):
    import pytest

    with pytest.raises(ValueError, match="agent.path="):
        run_from_config(_cfg("env=vm_resched", "solver=agent", f"results_dir={tmp_path}"))
    assert not list(tmp_path.glob("*.jsonl"))
