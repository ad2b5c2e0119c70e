"""Sweeps, Optuna searches and rollout workers on a real two-node Ray cluster (tests/cluster/conftest.py).

Marked `ray`: excluded from the default suite, run by `make test-ray` (installs the ray extra).
"""
from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from sysgym.records import read_records

pytestmark = pytest.mark.ray

SEEDS = list(range(12))
# A knob search on the serving simulator: deterministic metrics, about a second per job, isolated in a child
# (kind search), as a real sweep's jobs are.
JOB = ["env=serving_knobs_tiny", "solver=serving_knobs.random", "+solver.params.trials=20",
       "seed=" + ",".join(map(str, SEEDS))]


def sweep(out: Path, *launcher: str, timeout: float = 240) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "sysgym.experiments.cli", "run", "--multirun", *launcher, *JOB, f"results_dir={out}"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def ray_launcher(cluster, retries: int = 0) -> list[str]:
    return ["hydra/launcher=sysgym_ray", f"hydra.launcher.address={cluster.address}",
            f"hydra.launcher.max_retries={retries}"]


def by_key(out: Path) -> dict[str, dict]:
    recs = list(read_records(out))
    keys = [r["run_key"] for r in recs]
    assert len(keys) == len(set(keys)), "a run was recorded twice"
    return {r["run_key"]: r for r in recs}


@pytest.fixture(scope="module")
def basic(tmp_path_factory):
    """The same 12 jobs under Hydra's basic launcher (one process, no Ray)."""
    out = tmp_path_factory.mktemp("basic")
    proc = sweep(out)
    text, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, text[-3000:]
    return by_key(out)


def kill_worker_midway(cluster, proc: subprocess.Popen, out: Path) -> None:
    """SIGKILL the worker node while it runs a job, once a couple of records are in."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        done = len(list(out.glob("*.jsonl"))) if out.is_dir() else 0
        if done >= 2 and cluster.worker_busy():
            cluster.kill_worker()
            return
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"never saw the worker node busy after 2 records: {proc.communicate()[0][-3000:]}")


def same_metrics(recs: dict[str, dict], basic: dict[str, dict]) -> None:
    """Same jobs, same numbers as the basic launcher, byte for byte."""
    assert recs.keys() == basic.keys()
    for key, rec in recs.items():
        assert json.dumps(rec["metrics"], sort_keys=True) == json.dumps(basic[key]["metrics"], sort_keys=True)
        assert rec["solution"] == basic[key]["solution"]


def test_worker_node_killed_midway_keeps_records_reports_failures_and_rerun_completes(cluster, tmp_path, basic):
    # The kill races the job it aims at: a job of about a second can finish (its result already with the
    # driver) between the busy check and the SIGKILL. Then nothing was lost and the sweep rightly succeeds --
    # with every record written, which is asserted -- and the kill is tried again on a fresh sweep.
    for attempt in range(4):
        cluster.ensure_worker()
        out = tmp_path / f"results{attempt}"
        proc = sweep(out, *ray_launcher(cluster))
        kill_worker_midway(cluster, proc, out)
        text, _ = proc.communicate(timeout=240)
        if proc.returncode != 0:
            break
        assert len(by_key(out)) == len(SEEDS), "a job was lost with its node, yet the sweep reported success"
    assert proc.returncode != 0, "in 4 sweeps the worker node was never killed while it still ran a job"
    failures = json.loads(next(out.glob(".hydra/sweeps/*/ray_failures.json")).read_text())
    assert failures and all(f["error"] for f in failures)
    assert f"job #{failures[0]['job']} failed" in text and "others' records are kept" in text
    first = by_key(out)
    failed_seeds = {int(o.split("=")[1]) for f in failures for o in f["overrides"] if o.startswith("seed=")}
    assert len(first) + len(failures) == len(SEEDS)  # every job either wrote its record or was reported
    assert failed_seeds.isdisjoint(r["seed"] for r in first.values())
    kept = {p.name: p.read_bytes() for p in out.glob("*.jsonl")}

    rerun = sweep(out, *ray_launcher(cluster))  # the head node alone now
    text, _ = rerun.communicate(timeout=240)
    assert rerun.returncode == 0, text[-3000:]
    assert text.count("already done") == len(first)
    final = by_key(out)
    assert len(final) == len(SEEDS) and {r["seed"] for r in final.values()} == set(SEEDS)
    assert all((out / name).read_bytes() == data for name, data in kept.items())  # finished records untouched
    assert not list(out.glob(".tmp-*"))
    same_metrics(final, basic)


def test_with_retries_a_lost_node_costs_no_job(cluster, tmp_path, basic):
    """max_retries=1: the job lost with the worker node runs again on the head; one run completes the set."""
    cluster.ensure_worker()
    out = tmp_path / "results"
    proc = sweep(out, *ray_launcher(cluster, retries=1))
    kill_worker_midway(cluster, proc, out)
    text, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, text[-3000:]
    assert not list(out.glob(".hydra/sweeps/*/ray_failures.json"))
    same_metrics(by_key(out), basic)


def test_rollouts_in_ray_actors_train_the_same_policy_as_local_envs(cluster, tmp_path):
    """vec_env=ray (the two envs in actors, one per node) gives the transitions and the policy of
    vec_env=dummy for the same seed, and the run exports to ONNX as any other."""
    import ray
    import torch

    from sysgym.agents import export
    from sysgym.agents.training import train
    from tests.agents.conftest import TINY, compose

    cluster.ensure_worker()
    base = TINY + ["agent.total_timesteps=256", "agent.n_envs=2", "agent.params.n_steps=64", "eval.freq=128",
                   "eval.instances=2", "checkpoint_freq=0", "seed=3", f"ray_address={cluster.address}"]
    try:
        res = {kind: train(compose(base + [f"vec_env={kind}"]), tmp_path / kind) for kind in ("dummy", "ray")}
    finally:
        ray.shutdown()
    assert res["ray"].timesteps == res["dummy"].timesteps == 256
    for name in ("0.monitor.csv", "1.monitor.csv"):  # rewards and lengths (the last column is wall time)
        rows = {k: [ln.rsplit(",", 1)[0] for ln in (tmp_path / k / "monitor" / name).read_text().splitlines()[2:]]
                for k in res}
        assert rows["ray"] == rows["dummy"] and rows["ray"]
    assert (tmp_path / "ray" / "evaluations.csv").read_text() == (tmp_path / "dummy" / "evaluations.csv").read_text()
    weights = {}
    for k in res:  # the learned weights: SB3 keeps the policy's state dict as policy.pth inside model.zip
        with zipfile.ZipFile(tmp_path / k / "model.zip") as zf:
            weights[k] = torch.load(io.BytesIO(zf.read("policy.pth")), weights_only=True)
    assert weights["ray"].keys() == weights["dummy"].keys()
    assert all(torch.equal(weights["ray"][n], weights["dummy"][n]) for n in weights["ray"])
    onnx = export(tmp_path / "ray", "onnx", tmp_path / "policy.onnx")
    assert Path(onnx).stat().st_size > 0


def test_two_workers_tune_one_study_in_postgresql(cluster):
    import optuna

    from sysgym.envs.pg_knobs import PostgresServer
    from sysgym.studies import optimize_on_ray, postgres_url

    cluster.ensure_worker()
    import ray

    # The trial function lives in this test module, which the workers cannot import: send it by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        with PostgresServer() as pg:
            url = postgres_url(pg.socket_dir, pg.port)
            study = optimize_on_ray("serving", url, _serving_trial, n_trials=6, workers=2, direction="maximize",
                                    sampler_factory=_tpe)
            trials = study.trials
    finally:
        ray.shutdown()
    assert len(trials) == 6 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert sorted(t.user_attrs["ray_worker"] for t in trials) == [0, 0, 0, 1, 1, 1]
    # one CPU per node and one per worker task: the two workers ran on the two nodes
    assert len({t.user_attrs["ray_node"] for t in trials}) == 2


def _tpe(worker: int):
    import optuna

    return optuna.samplers.TPESampler(seed=worker, n_startup_trials=2)


def _serving_trial(trial) -> float:
    """A knob trial on the serving simulator, scored by the family's evaluator (goodput)."""
    from sysgym.registry import get_family
    from sysgym.solvers.serving_knobs import ServingProblem

    fam = get_family("serving_knobs")
    inst = fam.generate(seed=0, preset="tiny")
    problem = ServingProblem(inst)
    config = {k.name: k.from_unit(trial.suggest_float(k.name, 0.0, 1.0)) for k in problem.space.knobs}
    return problem.value(problem.measure(config, trial.number))


def test_tune_agent_trials_as_ray_tasks_share_one_study(cluster, tmp_path):
    """`sysgym tune-agent ... tune.workers=2`: two Ray tasks (one per node) run the trials of one study."""
    import optuna
    import ray

    from sysgym.agents.tune import tune
    from tests.agents.conftest import TINY, compose

    cluster.ensure_worker()
    journal = tmp_path / "study.journal"
    cfg = compose(TINY + ["agent.total_timesteps=128", "agent.n_envs=1", "agent.params.n_steps=64", "eval.freq=64",
                          "eval.instances=1", "tune.n_trials=2", "tune.n_startup_trials=1", "tune.workers=2",
                          f"tune.storage={journal}", "agent.extractor=mlp", "agent.action_head=null",
                          f"ray_address={cluster.address}"])
    try:
        res = tune(cfg, tmp_path / "run", [])
    finally:
        ray.shutdown()
    trials = optuna.load_study(study_name=res.study_name, storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal)))).trials
    assert res.n_trials == 2 and sorted(t.user_attrs["ray_worker"] for t in trials) == [0, 1]
    assert len({t.user_attrs["ray_node"] for t in trials}) == 2
    assert res.best_config.exists() and res.best_value == min(t.value for t in trials)
