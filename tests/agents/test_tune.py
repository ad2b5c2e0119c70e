"""`tune-agent`: Optuna study on SQLite (or a journal file), best parameters written back as a config."""
from __future__ import annotations

import optuna
import yaml
from omegaconf import OmegaConf

from sysgym.agents.tune import tune
from tests.agents.conftest import TINY, compose


def test_tune_writes_best_parameters_back(tmp_path):
    cfg = compose(TINY + ["agent.total_timesteps=128", "agent.n_envs=1", "agent.params.n_steps=64", "eval.freq=64",
                          "eval.instances=1",
                          "tune.n_trials=2", "tune.n_startup_trials=1", "agent.extractor=mlp",
                          "agent.action_head=null"])
    res = tune(cfg, tmp_path, ["agent.total_timesteps=128"])
    assert res.storage.startswith("sqlite:///") and (tmp_path / "optuna.db").exists()
    study = optuna.load_study(study_name=res.study_name, storage=res.storage)
    assert len(study.trials) == 2 and study.direction == optuna.study.StudyDirection.MINIMIZE
    assert res.best_value == min(t.value for t in study.trials if t.value is not None)
    tuned = yaml.safe_load(res.best_config.read_text())
    assert tuned["name"] == "maskable_ppo_tuned"
    assert tuned["overrides"]["vm_resched"]["params"]["learning_rate"] == res.best_params["learning_rate"]
    # a second worker on the same storage adds to the same study
    res2 = tune(OmegaConf.merge(cfg, {"tune": {"n_trials": 1}}), tmp_path, [])
    assert res2.n_trials == 3


def test_tune_on_a_journal_file(tmp_path):
    journal = tmp_path / "study.log"
    cfg = compose(TINY + ["agent.total_timesteps=128", "agent.n_envs=1", "agent.params.n_steps=64", "eval.freq=64",
                          "eval.instances=1", "tune.n_trials=1", f"tune.storage={journal}"])
    res = tune(cfg, tmp_path, [])
    assert journal.exists() and res.n_trials == 1
