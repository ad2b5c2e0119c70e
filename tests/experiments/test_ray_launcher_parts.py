"""The Ray launcher's pieces that need no cluster (tests/cluster runs the real thing, `make test-ray`): records
kept for the driver instead of written, and the CPUs a job asks for."""
from __future__ import annotations

import json

from hydra import compose, initialize_config_module

from sysgym.experiments.ray_sweep import job_cpus
from sysgym.experiments.runner import run_from_config, run_key_of
from sysgym.records import SOLUTION_INLINE_LIMIT, capture, make_record, read_records, write_record
from sysgym.records import attach_solution as attach


def _cfg(*overrides: str):
    with initialize_config_module("sysgym.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_a_captured_run_writes_nothing_and_the_driver_writes_it_once(tmp_path):
    out = tmp_path / "results"
    cfg = _cfg("env=vm_resched_tiny", "solver=vm_resched.greedy", f"results_dir={out}")
    with capture() as captured:
        res = run_from_config(cfg)
    assert not out.exists()  # nothing on this machine's disk: it travels back to the driver
    assert len(captured.records) == 1 and captured.records[0]["record"]["run_key"] == run_key_of(cfg)
    paths = captured.write(out)
    assert [json.loads(p.read_text()) for p in paths] == [res.record]
    assert run_from_config(cfg).skipped.startswith("already done")  # the written record resumes like a local one


def test_a_large_solution_travels_as_a_side_file(tmp_path):
    class Big:
        decisions = list(range(SOLUTION_INLINE_LIMIT // 4))
        objective, status, bound = 1.0, "feasible", None

    rec = make_record(family="vm_resched", instance="x", method="m", method_config={}, seed=0, metrics={},
                      wall_time_s=0.0)
    with capture() as captured:
        attach(rec, Big(), tmp_path)
        write_record(rec, tmp_path)
    assert not list(tmp_path.iterdir())
    captured.write(tmp_path)
    (stored,) = read_records(tmp_path)
    assert json.loads((tmp_path / stored["solution_file"]).read_text())["decisions"] == Big.decisions


def test_cpus_per_job_from_the_solver_capped_at_the_largest_node():
    cpsat = _cfg("env=vm_resched_tiny", "solver=vm_resched.cpsat", "solver.params.workers=4")
    greedy = _cfg("env=vm_resched_tiny", "solver=vm_resched.greedy")
    assert job_cpus(greedy, 1, {}, ["workers"], 8) == 1
    assert job_cpus(cpsat, 1, {}, ["workers"], 8) == 4  # CP-SAT's thread count
    assert job_cpus(cpsat, 1, {}, ["workers"], 2) == 2  # no node has 4
    assert job_cpus(cpsat, 1, {"vm_resched.cpsat": 3}, ["workers"], 8) == 3  # per-solver setting wins
    assert job_cpus(cpsat, 1, {}, [], 8) == 1
