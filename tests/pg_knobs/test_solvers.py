"""Every method runs on the real server and is scored by the one evaluator."""
import math
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from sysgym import solvers
from sysgym.envs.pg_knobs import evaluate, generate, space_for
from sysgym.errors import InfeasibleSolutionError
from sysgym.solvers.pg_knobs import gain_with_ci
from sysgym.solvers.tuning import LlamaTuneSpace
from sysgym.testing import check_solver

METHODS = ["pg_knobs.default", "pg_knobs.random", "pg_knobs.tpe", "pg_knobs.gp", "pg_knobs.cmaes",
           "pg_knobs.llamatune"]


def test_all_methods_registered():
    assert set(METHODS) <= set(solvers.list("pg_knobs"))


@pytest.mark.slow  # two extra servers; the same claim-vs-evaluator check runs exactly in test_serving.py
def test_check_solver_tpe_against_the_evaluator(pg):
    # check_solver re-measures the returned configuration on a fresh server. Real measurements agree only up
    # to noise (1-second pgbench runs on a loaded 2-core machine differ by up to ~2x), so the tolerance is
    # wide; it still catches a claim from another configuration (synchronous_commit alone moves tps ~10x).
    inst = generate(seed=0, preset="tiny", trials=2, final_repetitions=1)
    sol, metrics = check_solver("pg_knobs.tpe", inst, rel_tol=1.0, reeval_top=1)
    assert sol.stats["trials_run"] == 2 and len(sol.stats["history"]) == 2
    assert metrics["feasible"] and not metrics["crashed"]
    assert set(sol.decisions) == {"synchronous_commit", "shared_buffers", "commit_delay"}
    # the claimed objective is the evaluator's re-measurement of the returned configuration
    assert sol.objective == pytest.approx(sum(sol.stats["best_tps_runs"]) / len(sol.stats["best_tps_runs"]))


def test_search_methods_run_on_the_same_protocol(clean):
    inst = generate(seed=1, preset="tiny", trials=2, final_repetitions=1)
    for name, opts in [("pg_knobs.random", {}), ("pg_knobs.gp", {}), ("pg_knobs.cmaes", {}),
                       ("pg_knobs.llamatune", {"dim": 2})]:
        sol = solvers.get(name, reeval_top=0, **opts).solve(inst, seed=1, server=clean)
        assert sol.status == "feasible" and sol.objective > 0, name
        space_for(clean, inst).check(sol.decisions)
        hist = sol.stats["history"]
        assert sol.stats["trials_run"] == 2 and hist[0]["trial"] == 0 and hist[0]["tps_mean"] > 0, name
        assert sol.objective == max(h["value"] for h in hist), name
    sol = solvers.get("pg_knobs.default").solve(inst, server=clean)
    assert sol.decisions == space_for(clean, inst).defaults() and sol.objective > 0


def _kill_during_pgbench(server, timeout_s: float = 60.0) -> None:
    """SIGKILL the server 0.3 s after a measured pgbench run of this process starts (not during the restart that
    may come first: on a loaded machine a restart can take longer than any fixed delay)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except (OSError, IndexError, ValueError):
                continue
            if ppid == os.getpid() and cmd[0].endswith(b"pgbench") and b"-T" in cmd:
                time.sleep(0.3)
                server.kill()
                return
        time.sleep(0.02)
    raise AssertionError("no pgbench run started")


def test_study_goes_on_after_a_server_killed_mid_trial(clean):
    inst = generate(seed=2, preset="tiny", trials=3, final_repetitions=1, duration_s=1)
    timers = []

    def kill_during_next_trial(rec):
        if rec["trial"] == 0 and not timers:
            timers.append(threading.Thread(target=_kill_during_pgbench, args=(clean,)))  # pgbench runs >= 1 s
            timers[0].start()

    sol = solvers.get("pg_knobs.random", reeval_top=0).solve(inst, seed=0, server=clean,
                                                                callback=kill_during_next_trial)
    timers[0].join()
    hist = sol.stats["history"]
    assert len(hist) == 3
    assert hist[1]["crashed"] and "brought back" in hist[1]["error"]
    assert hist[1]["value"] == hist[0]["tps_mean"]  # a crash scores the worst value seen so far
    assert not hist[2]["crashed"] and clean.is_alive()
    assert sol.stats["crashes"] == 1


def test_evaluator_rejects_configurations_outside_the_space(clean):
    inst = generate(seed=0, preset="tiny")
    space_for(clean, inst)
    with pytest.raises(InfeasibleSolutionError, match="knob space.*work_mem"):
        evaluate(inst, {"work_mem": "8MB"}, server=clean)
    with pytest.raises(InfeasibleSolutionError, match=r"range.*shared_buffers.*allowed 16\.\.131072"):
        evaluate(inst, {"shared_buffers": "4GB"}, server=clean)  # outside the subset's 1 GiB cap
    m = evaluate(inst, {"work_mem": "8MB"}, server=clean, raise_on_infeasible=False)
    assert m["feasible"] is False and "work_mem" in m["violation"]


def test_llamatune_projection_biasing_and_buckets(pg):
    inst = generate(seed=0, preset="llamatune")
    space = space_for(pg, inst)
    proj = LlamaTuneSpace(space, dim=16, seed=3)
    assert proj.dim == 16 and set(proj.h) <= set(range(16))
    again = LlamaTuneSpace(space, dim=16, seed=3)
    assert (proj.h == again.h).all() and (proj.s == again.s).all()
    rng = np.random.default_rng(0)
    specials = 0
    for _ in range(20):
        cfg = proj.decode(rng.uniform(-1, 1, 16))
        pg.normalise(cfg, space.bounds())  # valid on the server
        specials += cfg["autovacuum_work_mem"] == -1
    assert 0 < specials < 20  # special value -1 taken with probability ~0.2
    # knobs on the same latent coordinate move together (up to sign)
    same = [i for i in range(len(space)) if proj.h[i] == proj.h[0]]
    assert len(same) >= 2


def test_gain_confidence_interval():
    gain, lo, hi = gain_with_ci([200.0, 210.0, 190.0], [100.0, 105.0, 95.0])
    assert gain == pytest.approx(1.0)
    assert lo < 1.0 < hi and lo > 0.5
    g1, lo1, hi1 = gain_with_ci([150.0], [100.0, 101.0])
    assert g1 == pytest.approx(0.4925, rel=1e-3) and lo1 == -math.inf
