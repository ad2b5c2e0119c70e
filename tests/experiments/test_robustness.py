"""Bad input is named before any work; a solver that takes its process down becomes a recorded failure; a killed
sweep leaves no workers behind; runs leave no junk files."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from sysgym import registry
from sysgym.errors import FamilyMismatchError, InvalidArgumentError, InvalidSpecError, SysgymError
from sysgym.experiments.isolate import SWEEP_PID_ENV, run_in_child
from sysgym.experiments.leaderboard import collect
from sysgym.experiments.overrides import check_overrides
from sysgym.experiments.runner import run_from_config
from sysgym.records import read_records, scan
from sysgym.solution import Solution
from sysgym.solver import Solver

SYSGYM = [sys.executable, "-m", "sysgym.experiments.cli"]


def _cfg(*overrides):
    with initialize_config_module("sysgym.conf", version_base="1.3"):
        return compose("config", overrides=["env=vm_resched_tiny", *overrides])


@pytest.fixture
def test_solver():
    """Register a VM solver class for one test (and remove it after): `make(behaviour)` -> its registry name."""
    added = []

    def make(behaviour, kind="exact"):
        name = f"vm_resched.test_{behaviour.__name__}"

        class TestSolver(Solver):
            """A solver that misbehaves on purpose (robustness tests)."""

            family = "vm_resched"

            def solve(self, instance, *, time_limit=None, seed=0):
                return behaviour(instance)

        TestSolver.name, TestSolver.kind = name, kind
        registry.register_solver(TestSolver)
        added.append(name)
        return name

    yield make
    for name in added:
        registry.SOLVERS.pop(name, None)


def _run_with(name, *overrides):
    cfg = _cfg("solver=vm_resched.greedy", *overrides)
    cfg.solver.name = name
    return run_from_config(cfg)


# -- bad input, named before any work ----------------------------------------------------------------------------
@pytest.mark.parametrize("override,error,message", [
    ("seed=-1", InvalidSpecError, "seed must be a non-negative integer"),
    ("seed=1.5", InvalidSpecError, "seed must be a non-negative integer"),
    ("time_limit=0", InvalidArgumentError, "time_limit must be a positive number"),
    ("time_limit=-3", InvalidArgumentError, "time_limit must be a positive number"),
    ("deterministic_time=0", InvalidArgumentError, "deterministic_time must be a positive number"),
    ("kill_after=-1", InvalidArgumentError, "kill_after must be a positive number"),
    ("isolate=sometimes", InvalidArgumentError, "isolate must be auto, true or false"),
])
def test_bad_run_arguments_are_named_before_the_solver_runs(override, error, message, tmp_path, test_solver):
    marker = tmp_path / "solved"

    def touches(instance):
        marker.touch()
        raise AssertionError("solve ran")

    name = test_solver(touches)
    with pytest.raises(error, match=message):
        _run_with(name, override, f"results_dir={tmp_path / 'res'}")
    assert not marker.exists() and not list(tmp_path.rglob("*.jsonl"))


def test_a_results_dir_that_is_a_file_fails_before_the_solve(tmp_path, test_solver):
    marker = tmp_path / "solved"
    name = test_solver(lambda inst: marker.touch())
    (tmp_path / "res").write_text("not a folder")
    with pytest.raises(InvalidArgumentError, match="results_dir .* is a file"):
        _run_with(name, f"results_dir={tmp_path / 'res'}")
    assert not marker.exists()


def test_a_read_only_results_dir_fails_before_the_solve(tmp_path, read_only_run):
    res = tmp_path / "res"
    res.mkdir()
    t0 = time.perf_counter()
    proc = read_only_run(res, ["run", "env=vm_resched", "solver=vm_resched.milp", "time_limit=null",
                                f"results_dir={res}"])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "is not writable" in proc.stderr
    assert time.perf_counter() - t0 < 60  # the MILP (about 20 s to optimality on `small`) never started
    assert not list(res.iterdir())


def test_an_instance_of_another_family_is_refused_before_any_work(tmp_path):
    cfg = _cfg("solver=vm_resched.greedy", f"results_dir={tmp_path}", "+env.instance='job_sched/tiny?seed=0'")
    with pytest.raises(FamilyMismatchError, match="vm_resched"):
        run_from_config(cfg)
    assert not list(tmp_path.rglob("*.jsonl"))


def test_unknown_config_keys_list_the_valid_ones(tmp_path):
    with pytest.raises(InvalidArgumentError, match=r"unknown config key 'bogus'; valid keys: .*deterministic_time.*"
                                                   r"time_limit"):
        check_overrides(["bogus=1"])
    with pytest.raises(InvalidArgumentError, match=r"env has no key 'presett'; its keys: .*preset"):
        check_overrides(["env=vm_resched_tiny,vm_resched", "env.presett=tiny"])
    with pytest.raises(InvalidArgumentError, match=r"solver.params has no key 'frobnicate'.*vm_resched.milp's "
                                                   r"options: backend, max_vms, threads, warm_start"):
        check_overrides(["solver=vm_resched.milp", "solver.params.frobnicate=1"])
    check_overrides(["+bogus=1", "seed=0,1", "env.preset=tiny", "hydra/launcher=sysgym_joblib", "~tag"])  # valid
    proc = subprocess.run(SYSGYM + ["run", "tim_limit=5", f"results_dir={tmp_path}"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "unknown config key 'tim_limit'; valid keys:" in proc.stderr
    assert "time_limit" in proc.stderr and not list(tmp_path.rglob("*.jsonl"))


# -- crashes become recorded failures ----------------------------------------------------------------------------
def test_a_solver_that_aborts_the_process_is_a_recorded_failure(tmp_path, test_solver, capfd):
    def aborts(instance):
        sys.stderr.write("Check failed: something native\n")
        sys.stderr.flush()
        os.abort()

    name = test_solver(aborts)
    result = _run_with(name, f"results_dir={tmp_path}")  # this process survives
    rec = json.loads(result.path.read_text())
    assert rec["failure"]["kind"] == "crash" and "SIGABRT" in rec["failure"]["detail"]
    assert "Check failed: something native" in rec["failure"]["stderr_tail"]
    assert rec["solver_stats"]["status"] == "crashed" and rec["metrics"]["fragment_rate"] is None
    assert "Check failed" in capfd.readouterr().err  # the child's stderr is passed on
    found = collect(tmp_path, progress=False)
    assert found["counted"] == [] and found["not_counted"][0][1] == "failed"
    # A resumed sweep runs a crashed run again (it is not "done").
    again = _run_with(name, f"results_dir={tmp_path}")
    assert again.skipped is None and len(list(tmp_path.glob("*.jsonl"))) == 2


def test_a_hung_solver_is_ended_by_kill_after(tmp_path, test_solver):
    name = test_solver(lambda inst: time.sleep(60))
    t0 = time.perf_counter()
    rec = _run_with(name, f"results_dir={tmp_path}", "kill_after=1").record
    assert time.perf_counter() - t0 < 30
    assert "hard limit of 1 s" in rec["failure"]["detail"]


def test_exceptions_in_the_child_are_raised_in_the_parent(tmp_path, test_solver):
    def raises(instance):
        raise ValueError("bad model")

    with pytest.raises(ValueError, match="bad model"):
        _run_with(test_solver(raises), f"results_dir={tmp_path}")

    def unpicklable(instance):
        raise SysgymErrorWithArgs("x", 1)

    with pytest.raises(Exception, match="SysgymErrorWithArgs"):
        _run_with(test_solver(unpicklable), f"results_dir={tmp_path}")
    assert not list(tmp_path.glob("*.jsonl"))


class SysgymErrorWithArgs(SysgymError):
    def __init__(self, a, b):  # pickles but does not unpickle: comes back as a ChildError with the traceback
        super().__init__(f"{a}{b}")


def test_vm_cpsat_at_tiny_wall_clock_limits_never_takes_the_sweep_down(tmp_path):
    """OR-Tools aborts (CHECK failure, SIGABRT) in some CP-SAT runs with time limits <= 0.1 s; isolated, each run
    ends as a result or a recorded crash and the process goes on."""
    for seed in range(6):
        res = run_from_config(_cfg("solver=vm_resched.cpsat", f"seed={seed}", "time_limit=0.05",
                                   f"results_dir={tmp_path}"))
        assert res.record["isolated"] is True
    recs = list(read_records(tmp_path))
    assert len(recs) == 6
    for rec in recs:
        assert rec.get("failure") is None or "SIGABRT" in rec["failure"]["detail"], rec.get("failure")


def test_isolation_costs_milliseconds():
    inst = Solution([], 0.0, "feasible", 0.0)
    run_in_child(lambda: inst)  # warm up
    t0 = time.perf_counter()
    for _ in range(10):
        assert run_in_child(lambda: inst).value.status == "feasible"
    per_run = (time.perf_counter() - t0) / 10
    print(f"fork isolation: {1000 * per_run:.1f} ms per run")
    assert per_run < 0.5


def test_torch_work_in_a_child_forked_after_the_parent_used_torch_does_not_hang():
    """torch's intra-op thread pool hangs in a child forked after the parent used it (kv_eviction's solvers hung
    this way, killed after 180 s); the child runs torch single-threaded."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x, w = torch.randn(256, 512), torch.randn(512, 512)
        for _ in range(5):
            torch.nn.functional.softmax(x @ w, dim=-1).sum()
        child = run_in_child(lambda: float((x @ w).relu().sum()), kill_after=30)
    finally:
        torch.set_num_threads(threads)
    assert child.ok, child.exit_detail
    assert child.value == pytest.approx(float((x @ w).relu().sum()), rel=1e-5)


# -- a killed joblib sweep leaves no workers --------------------------------------------------------------------
def _processes_of(sweep_pid: int) -> list[int]:
    import socket

    marker = f"{SWEEP_PID_ENV}={socket.gethostname()}:{sweep_pid}".encode()
    out = []
    for env in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in env.read_bytes().split(b"\0") and int(env.parent.name) != sweep_pid:
                out.append(int(env.parent.name))
        except OSError:
            continue
    return out


@pytest.mark.slow  # starts a joblib sweep and SIGKILLs it: about 25 s on a loaded machine
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to find the workers")
def test_a_sigkilled_joblib_sweep_leaves_no_workers(tmp_path):
    out = tmp_path / "res"
    cmd = SYSGYM + ["run", "--multirun", "hydra/launcher=sysgym_joblib", "hydra.launcher.n_jobs=2", "env=vm_resched",
                    "solver=vm_resched.greedy", "seed=0,1,2,3,4,5,6,7,8,9,10,11", f"results_dir={out}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and not list(out.glob("*.jsonl")):
        time.sleep(0.05)
    workers = _processes_of(proc.pid)
    assert workers, "the sweep started no worker processes"
    os.kill(proc.pid, signal.SIGKILL)  # only the sweep's own process, as `kill -9 PID` does
    proc.wait()
    deadline = time.time() + 15
    while time.time() < deadline and _processes_of(proc.pid):
        time.sleep(0.2)
    left = _processes_of(proc.pid)
    for pid in left:  # do not leave them running if the test fails
        os.kill(pid, signal.SIGKILL)
    assert not left, f"workers still running after the sweep was killed: {left}"
    count = len(scan(out).records)
    time.sleep(3)
    assert len(scan(out).records) == count  # and nothing writes records any more


# -- no junk -----------------------------------------------------------------------------------------------------
def test_training_leaves_no_sb3_folder_in_the_temp_dir(tmp_path, monkeypatch):
    import tempfile

    from sysgym.agents.training import train

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    with initialize_config_module("sysgym.conf", version_base="1.3"):
        cfg = compose("train", overrides=["env=vm_resched_tiny", "agent.total_timesteps=16", "agent.n_envs=1",
                                          "agent.params.n_steps=16", "agent.params.batch_size=16",
                                          "agent.params.n_epochs=1", "eval.instances=0", "checkpoint_freq=0",
                                          "progress_bar=false", "tensorboard=false"])
    train(cfg, tmp_path / "run")
    assert not [p.name for p in tmp.iterdir() if p.name.startswith("SB3-")]


@pytest.mark.slow  # runs benchmarks/job_sched_bench.py --quick (simulations and a CP-SAT bound: minutes)
def test_the_job_sched_benchmark_writes_nothing_into_the_current_folder(tmp_path):
    bench = Path(__file__).resolve().parents[2] / "benchmarks" / "job_sched_bench.py"
    proc = subprocess.run([sys.executable, str(bench), "--quick"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not list(tmp_path.iterdir())  # it wrote bench_out/ here before


def test_bad_seeds_and_time_limits_are_refused_before_hydra_starts(tmp_path):
    from sysgym.errors import InvalidSpecError
    from sysgym.experiments.overrides import check_values

    for bad, err in ((["seed=-1"], InvalidSpecError), (["seed=0,-2"], InvalidSpecError),
                     (["seed=abc"], InvalidSpecError), (["time_limit=0"], InvalidArgumentError),
                     (["time_limit=nan"], InvalidArgumentError)):
        with pytest.raises(err):
            check_values(bad)
    check_values(["seed=0,3", "time_limit=null", "time_limit=2.5"])  # valid
    for cmd in (["run", "solver=vm_resched.greedy", "env=vm_resched_tiny", "seed=-1", f"results_dir={tmp_path}"],
                ["train", "env=vm_resched_tiny", "agent.bogus=3", f"hydra.run.dir={tmp_path}/t"]):
        proc = subprocess.run(SYSGYM + cmd, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and proc.stderr.startswith("error:"), proc.stderr
        assert "Traceback" not in proc.stderr
    assert not list(tmp_path.iterdir())  # nothing was made


def test_a_malformed_instance_file_or_policy_path_is_a_named_error_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "nope"')
    res = tmp_path / "res"
    for cmd in (["run", "env=vm_resched_tiny", "solver=vm_resched.greedy", f"+env.instance=vm_resched/file:{bad}"],
                # vm_resched.agent has a shipped default policy: a given agent.path must reach it, not be ignored
                ["run", "env=vm_resched_tiny", "solver=vm_resched.agent", f"agent.path={bad}"]):
        proc = subprocess.run(SYSGYM + cmd + [f"results_dir={res}"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and proc.stderr.startswith("error:") and str(bad) in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    assert not list(res.rglob("*.jsonl"))
