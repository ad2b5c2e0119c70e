"""`sysgym bench`: the versioned suite is data, runs every registered method through the runner, validates, and
ranks with bounds apart and an aggregate across each family's envs."""
import pytest

from sysgym import solvers
from sysgym.errors import InvalidArgumentError, UnknownNameError
from sysgym.experiments.bench import TIERS, bench, load_suite, plan, suites
from sysgym.experiments.leaderboard import aggregate, summarise
from sysgym.records import read_records
from sysgym.specs import parse


def test_suite_v1_lists_fixed_instances_in_tiers_for_four_families():
    assert "v1" in suites()
    entries = load_suite("v1")
    assert {"vm_resched", "job_sched", "llm_serving", "parallel_plan"} <= set(entries)
    for family, entry in entries.items():
        assert {b.tier for b in entry.envs} == set(TIERS), family
        specs = [s for b in entry.envs for s in b.instances]
        assert len(specs) == len(set(specs)) and all(parse(s).family == family for s in specs)
        runs, skipped = plan(entry)
        methods = {o.split("=", 1)[1] for r in runs for o in r if o.startswith("solver=")}
        # every registered method runs, or is listed with its reason
        assert methods | {m.split(" on ")[0] for m in skipped} == set(solvers.list(family)), family


def test_unknown_suites_families_and_methods_are_named():
    with pytest.raises(UnknownNameError, match="unknown suite 'v0'; known suites: v1"):
        load_suite("v0")
    with pytest.raises(UnknownNameError, match="unknown family 'vm'; known families:"):
        bench("v1", families=["vm"], dry_run=True)
    with pytest.raises(UnknownNameError, match="vm_resched method 'vm_resched.nope'"):
        plan(load_suite("v1")["vm_resched"], methods=["vm_resched.nope"])


def test_a_family_without_an_entry_is_told_so(tmp_path, monkeypatch):
    from sysgym.experiments import bench as bench_module

    only_vm = {"vm_resched": load_suite("v1")["vm_resched"]}
    monkeypatch.setattr(bench_module, "load_suite", lambda suite: only_vm)
    with pytest.raises(InvalidArgumentError, match="suite v1 has no entry for family 'job_sched' yet"):
        bench("v1", families=["job_sched"], dry_run=True, results_dir=tmp_path)


def test_bench_runs_validates_and_ranks_the_tiny_tier(tmp_path, capsys):
    root = bench("v1", families=["vm_resched"], tiers=["tiny"], results_dir=tmp_path,
                 methods=["vm_resched.greedy", "vm_resched.cpsat"])
    recs = list(read_records(root / "vm_resched"))
    assert len(recs) == 2 * 5 and {r["suite"]["tier"] for r in recs} == {"tiny"}
    assert {r["instance"] for r in recs} == {f"vm_resched/tiny?seed={s}" for s in range(5)}
    cpsat = [r for r in recs if r["method"] == "vm_resched.cpsat"]
    # the suite's deterministic budget reaches the solvers that read their limit as deterministic work
    assert solvers.get("vm_resched.cpsat").deterministic_limit
    assert all(r["limits"]["deterministic_time"] == 10 for r in cpsat)
    assert all(r["limits"]["deterministic_time"] is None for r in recs if r["method"] != "vm_resched.cpsat")
    assert all(r["limits"]["time_limit"] is None for r in recs)
    text = (root / "leaderboard.md").read_text()
    assert "vm_resched / vm_resched_tiny" in text and "aggregate" not in text  # one env: no aggregate
    again = bench("v1", families=["vm_resched"], tiers=["tiny"], results_dir=tmp_path,
                  methods=["vm_resched.greedy"])  # resumable: nothing new
    assert again == root and len(list(read_records(root / "vm_resched"))) == 10


def _rec(method, env, inst, value, kind="heuristic", bound=None):
    return {"family": "vm_resched", "env": env, "instance": inst, "method": method, "method_kind": kind, "seed": 0,
            "metrics": {"fragment_rate": value}, "wall_time_s": 0.1,
            "solver_stats": {"status": "feasible", "bound": bound}}


def test_bounds_are_shown_apart_and_the_aggregate_normalises_per_instance():
    recs = [_rec("a", "e1", "i1", 0.2), _rec("b", "e1", "i1", 0.4), _rec("lb", "e1", "i1", 0.3, "bound", 0.1),
            _rec("a", "e2", "i2", 10.0), _rec("b", "e2", "i2", 5.0)]
    rows = summarise(recs)
    bound = next(r for r in rows if r["method"] == "lb")
    assert bound["kind"] == "bound" and "rank" not in bound and bound["bound"] == pytest.approx(0.1)
    assert [r["method"] for r in rows if r["env"] == "e1" and "rank" in r] == ["a", "b"]
    agg = {r["method"]: r for r in aggregate(recs)}
    assert set(agg) == {"a", "b"}  # the bound is not a method
    assert agg["a"]["mean"] == pytest.approx(0.5) and agg["b"]["mean"] == pytest.approx(0.5)  # 1 and 0 on each
    assert agg["a"]["envs"] == ["e1", "e2"] and agg["a"]["instances"] == 2


def test_a_run_without_a_solution_ranks_last_and_scores_zero():
    nosol = _rec("c", "e1", "i1", None)
    nosol["metrics"]["no_solution"] = "infeasible"
    recs = [_rec("a", "e1", "i1", 0.2), _rec("b", "e1", "i1", 0.4), nosol, _rec("c", "e1", "i2", 0.1),
            _rec("a", "e1", "i2", 0.3), _rec("b", "e1", "i2", 0.5), _rec("a", "e2", "i3", 0.3)]
    rows = {r["method"]: r for r in summarise(recs) if r["env"] == "e1"}
    assert rows["c"]["runs"] == 2 and rows["c"]["scored_runs"] == 1
    assert rows["c"]["objective"] == pytest.approx(0.1) and rows["c"]["rank"] == 3  # best mean, but failed once
    agg = {r["method"]: r for r in aggregate(recs)}
    assert agg["c"]["mean"] == pytest.approx(0.5)  # 0 (no solution) and 1 (best on i2)
