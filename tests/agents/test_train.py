"""Training runs: run directory contents, evaluation by the family's evaluator, same seed -> same curve,
checkpoint/resume, and the run-directory and checkpoint errors."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import sysgym
from sysgym import solvers
from sysgym.agents.common import AgentError, AgentFileError
from sysgym.agents.training import latest_checkpoint, train
from tests.agents.conftest import TINY, compose


def _curve(run):
    with (run / "evaluations.csv").open() as fh:
        return [(int(r["timesteps"]), float(r["mean_fragment_rate"])) for r in csv.DictReader(fh)]


def test_run_directory_holds_config_checkpoints_logs_and_models(vm_run):
    run, res = vm_run
    for name in ("agent.json", "train_config.yaml", "model.zip", "best_model.zip", "evaluations.csv",
                 "summary.json", "eval_curve.png", "checkpoints/ckpt_256_steps.zip", "checkpoints/ckpt_512_steps.zip"):
        assert (run / name).exists(), name
    assert list((run / "monitor").glob("*.monitor.csv")), "no Monitor episode logs"
    assert list((run / "tb").rglob("events.out.tfevents*")), "no TensorBoard logs"
    meta = json.loads((run / "agent.json").read_text())
    assert meta["env_id"] == "sysgym/VmResched-v0" and meta["env_version"] == 0
    assert [d["key"] for d in meta["obs_layout"]] == ["pair", "pm", "progress", "vm"]
    assert meta["env_kwargs"]["observation"] == "pairs"  # the agent's env_kwargs reach the meta
    assert meta["sysgym_version"] == sysgym.__version__
    assert res.timesteps == 512 and [t for t, _ in _curve(run)] == [0, 256, 512]


def test_evaluation_is_the_family_evaluator_on_held_out_instances(vm_run):
    run, res = vm_run
    fam = sysgym.get_family("vm_resched")
    best = min(m for _, m in _curve(run))
    assert res.best == pytest.approx(best)
    agent = solvers.get("vm_resched.agent", path=str(run), which="best")
    scores = []
    for i in range(3):
        inst = fam.generate(seed=1_000_000 + i, preset="tiny")
        scores.append(fam.evaluate(inst, agent.solve(inst))["fragment_rate"])
    assert np.mean(scores) == pytest.approx(best, abs=1e-12)


def test_same_seed_same_curve_other_seed_other_curve(tmp_path):
    base = TINY + ["agent.total_timesteps=256", "agent.n_envs=1", "agent.params.n_steps=64", "eval.freq=128",
                   "eval.instances=2", "checkpoint_freq=0", "vec_env=dummy"]
    runs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        train(compose(base + [f"seed={seed}"]), tmp_path / name)
        runs.append(tmp_path / name)
    # Monitor rows are reward, length, elapsed time: compare rewards and lengths
    mon = [[ln.rsplit(",", 1)[0] for ln in (r / "monitor" / "0.monitor.csv").read_text().splitlines()[2:]]
           for r in runs]
    assert _curve(runs[0]) == _curve(runs[1]) and mon[0] == mon[1] and len(mon[0]) > 20
    assert mon[0] != mon[2]


def test_resume_picks_the_newest_state_final_model_or_checkpoint(vm_run, tmp_path):
    import shutil

    run, _ = vm_run
    assert latest_checkpoint(run).name == "model.zip"  # saved at 512 steps, as the last checkpoint: the final wins
    partial = tmp_path / "partial"
    shutil.copytree(run, partial)
    (partial / "checkpoints" / "ckpt_512_steps.zip").unlink()  # checkpoints lag the final model (512 vs 256)
    assert latest_checkpoint(partial).name == "model.zip"
    (partial / "model.zip").unlink()
    assert latest_checkpoint(partial).name == "ckpt_256_steps.zip"


def test_resume_continues_from_the_newest_checkpoint(vm_run, tmp_path):
    run, _ = vm_run
    cfg = compose(TINY + ["agent.total_timesteps=768", "agent.n_envs=2", "eval.freq=256", "eval.instances=1",
                          "checkpoint_freq=0", f"resume={run / 'checkpoints' / 'ckpt_256_steps.zip'}"])
    res = train(cfg, tmp_path / "resumed")
    assert res.timesteps == 768
    assert [t for t, _ in _curve(tmp_path / "resumed")] == [256, 512, 768]


def test_resume_never_overwrites_a_run_silently(vm_run):
    run, _ = vm_run
    cfg = compose(TINY + ["agent.total_timesteps=1536", f"resume={run}"])
    with pytest.raises(AgentError, match="refusing to overwrite"):
        train(cfg, run)


def test_missing_or_corrupted_checkpoint_names_the_file(vm_run, tmp_path):
    run, _ = vm_run
    missing = tmp_path / "nope" / "ckpt_9_steps.zip"
    with pytest.raises(AgentFileError, match="nope"):
        train(compose(TINY + [f"resume={missing}"]), tmp_path / "r1")
    bad_dir = tmp_path / "bad"
    (bad_dir / "checkpoints").mkdir(parents=True)
    (bad_dir / "agent.json").write_text((run / "agent.json").read_text())
    bad = bad_dir / "checkpoints" / "ckpt_256_steps.zip"
    bad.write_bytes((run / "checkpoints" / "ckpt_256_steps.zip").read_bytes()[:300])
    with pytest.raises(AgentFileError, match="ckpt_256_steps.zip"):
        train(compose(TINY + ["agent.n_envs=2", f"resume={bad_dir}"]), tmp_path / "r2")
    with pytest.raises(AgentFileError, match="model.zip"):
        sysgym.agents.load(tmp_path)


def test_resume_into_another_env_is_refused(vm_run, tmp_path):
    run, _ = vm_run
    with pytest.raises(AgentError, match="observation layout mismatch"):
        train(compose(["env.preset=small", "progress_bar=false", "tensorboard=false", "agent.n_envs=2",
                       f"resume={run}"]), tmp_path / "r")
