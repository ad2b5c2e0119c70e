"""`sysgym train agent=vm_two_stage` / `agent=decima`: the shipped policies' recipes run through the training app."""
from __future__ import annotations

import json

import pytest

from sysgym.agents.common import AgentError
from sysgym.agents.training import train
from sysgym.errors import InvalidArgumentError, UnknownNameError
from tests.agents.conftest import compose

QUIET = ["progress_bar=false", "tensorboard=false"]
VM_SHORT = ["env=vm_resched_tiny", "agent=vm_two_stage", "agent.params.tiny_seeds=2", "agent.params.small_seeds=1",
            "agent.params.medium_seeds=0", "agent.params.epochs=1", "agent.params.eval_every=1",
            "agent.params.finetune_iterations=1", "agent.params.finetune_eval_every=1"]


def test_vm_two_stage_recipe_clones_then_fine_tunes_into_a_policy_the_agent_solver_runs(tmp_path):
    import sysgym
    from sysgym import solvers

    res = train(compose(QUIET + VM_SHORT + ["seed=3"]), tmp_path / "vm")
    assert res.model_path == tmp_path / "vm" / "policy.pt" and res.model_path.is_file()
    assert (tmp_path / "vm" / "bc" / "plans.json").is_file()  # the expert plans it cloned
    assert json.loads((tmp_path / "vm" / "agent.json").read_text())["seed"] == 3
    assert res.metric == "val_fr_small" and res.best is not None and 0 <= res.best <= 1 and res.timesteps >= 2
    fam = sysgym.get_family("vm_resched")
    inst = fam.generate(seed=7, preset="tiny")
    sol = solvers.get("vm_resched.agent", path=str(res.model_path)).solve(inst)
    assert fam.evaluate(inst, sol)["feasible"]
    with pytest.raises(AgentError, match="already holds a run"):  # nothing already written is lost
        train(compose(QUIET + VM_SHORT), tmp_path / "vm")


def test_decima_recipe_trains_a_run_the_job_sched_agent_loads(tmp_path):
    from sysgym import solvers
    from sysgym.envs.job_sched.generator import generate_v1

    short = ["agent.params.preset=tiny", "agent.params.num_jobs=2", "agent.params.iterations=1",
             "agent.params.rollouts=2", "agent.params.eval_every=1", "agent.params.val_seeds=[900]",
             "agent.params.pretrain_instances=1"]
    res = train(compose(QUIET + ["env=job_sched_decima", "agent=decima"] + short), tmp_path / "dec")
    assert res.model_path.is_file() and res.metric == "val_mean_jct_s" and res.best > 0 and res.timesteps > 0
    meta = json.loads((tmp_path / "dec" / "decima.json").read_text())
    assert meta["config"]["pretrain"] == "uwfq" and meta["config"]["num_jobs"] == 2
    assert meta["net"]["hint"] == "uwfq" and meta["limit_mode"] == "relative"  # the shipped recipe's actor
    sol = solvers.get("job_sched.agent", path=str(tmp_path / "dec")).solve(generate_v1(seed=1, preset="tiny",
                                                                                         num_jobs=2))
    assert sol.stats["policy_format"] == "decima"


@pytest.mark.parametrize("overrides, error, match", [
    (["env=job_sched_decima", "agent=vm_two_stage"], AgentError, "trains a vm_resched policy"),
    (["env=vm_resched_tiny", "agent=vm_two_stage", "agent.pretrain=dagger"], AgentError, "bc or null"),
    (["env=vm_resched_tiny", "agent=vm_two_stage", "+agent.params.epoch=3"], AgentError, "unknown parameter"),
    (["env=job_sched_decima", "agent=decima", "agent.pretrain=fastest"], UnknownNameError, "fastest"),
    (["env=job_sched_decima", "agent=decima", "+agent.params.learning_rate=1"], AgentError, "unknown parameter"),
    (["env=job_sched_decima", "agent=decima", "agent.params.hint=fastest"], UnknownNameError, "fastest"),
    (["env=job_sched_decima", "agent=decima_plain", "+agent.params.stay=always"], InvalidArgumentError, "stay must be"),
])
def test_recipe_mistakes_are_named_before_any_work(tmp_path, overrides, error, match):
    with pytest.raises(error, match=match):
        train(compose(QUIET + overrides), tmp_path / "r")
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_the_plain_decima_recipe_is_the_first_shipped_policys():
    """`agent=decima_plain` keeps Decima's inputs only (no hint) and the first policy's actor (its weights record
    no actor options: stay "stage", 10 absolute levels)."""
    cfg = compose(QUIET + ["env=job_sched_decima", "agent=decima_plain"])
    params = cfg.agent.params
    assert cfg.agent.algo == "decima" and cfg.agent.pretrain == "uwfq"
    assert "hint" not in params and "stay" not in params and "limit_mode" not in params
