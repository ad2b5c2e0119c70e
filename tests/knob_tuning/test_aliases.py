"""`knob_tuning`, the glued family before the split, keeps working under its old names: the family and its specs
(chosen by preset), the solver names (the method of the instance's family), the env configs, the Python API of
`sysgym.envs.knob_tuning` and records written before the split."""
import json
import shutil
from pathlib import Path

import pytest

import sysgym
from sysgym import solvers
from sysgym.envs import knob_tuning
from sysgym.envs.pg_knobs import PgInstance
from sysgym.envs.serving_knobs import ServingKnobInstance

DATA = Path(__file__).parent / "data"


def test_family_alias_resolves_by_preset(tmp_path):
    assert sysgym.get_family("knob_tuning").name == "pg_knobs"  # the old default preset was PostgreSQL's `small`
    assert isinstance(sysgym.instance("knob_tuning/tiny?seed=0"), PgInstance)
    assert sysgym.instance("knob_tuning/tiny?seed=0").name == "pg_knobs/tiny?seed=0"
    serving = sysgym.instance("knob_tuning/serving-tiny?seed=2")
    assert isinstance(serving, ServingKnobInstance) and serving.name == "knob_tuning/serving-tiny?seed=2"
    path = serving.save(tmp_path / "s.json")
    assert sysgym.instance(f"knob_tuning/file:{path}").digest() == serving.digest()  # a file: by its format
    pg = sysgym.instance("knob_tuning/small?seed=0")
    assert sysgym.instance(f"knob_tuning/file:{pg.save(tmp_path / 'p.json')}").digest() == pg.digest()


def test_solver_aliases_resolve_against_the_family():
    for method in ("default", "random", "tpe", "gp", "cmaes", "llamatune"):
        assert solvers.get(f"knob_tuning.{method}").name == f"pg_knobs.{method}"
        assert solvers.get(f"knob_tuning.{method}", family="serving_knobs").name == f"serving_knobs.{method}"
    inst = knob_tuning.generate(seed=0, preset="serving-tiny")
    sol = solvers.get("knob_tuning.tpe", family="serving_knobs").solve(inst, seed=0)
    assert sol.objective == knob_tuning.evaluate(inst, sol)["slo_goodput_rps"]


def test_a_solver_given_another_familys_instance_starts_no_server():
    """The family check runs before any work: `pg_knobs.tpe` refuses a serving instance before PostgreSQL."""
    from sysgym.envs.pg_knobs import cleanup

    before = set(cleanup.live)
    with pytest.raises(sysgym.FamilyMismatchError, match="pg_knobs"):
        solvers.get("knob_tuning.tpe").solve(knob_tuning.generate(seed=0, preset="serving-tiny"))
    assert set(cleanup.live) == before


def test_module_api_dispatches_by_preset_type_and_format(tmp_path):
    assert isinstance(knob_tuning.generate(seed=0, preset="tiny"), PgInstance)
    assert isinstance(knob_tuning.generate(seed=0), PgInstance)  # default preset: small
    serving = knob_tuning.generate(seed=0, preset="serving")
    assert isinstance(serving, ServingKnobInstance)
    assert knob_tuning.evaluate(serving, {})["slo_goodput_rps"] > 0
    assert knob_tuning.load(serving.save(tmp_path / "s.json")).digest() == serving.digest()
    pg = knob_tuning.generate(seed=1, preset="llamatune")
    assert knob_tuning.load(pg.save(tmp_path / "p.json")).digest() == pg.digest()


@pytest.mark.parametrize("old, new", [("knob_tuning", "pg_knobs"), ("knob_tuning_tiny", "pg_knobs_tiny"),
                                      ("knob_tuning_llamatune", "pg_knobs_llamatune"),
                                      ("knob_tuning_serving", "serving_knobs")])
def test_env_configs_are_aliases(old, new):
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="sysgym.conf", version_base="1.3"):
        a = compose(config_name="config", overrides=[f"env={old}", "solver=knob_tuning.tpe"])
        b = compose(config_name="config", overrides=[f"env={new}", "solver=knob_tuning.tpe"])
    assert a.env == b.env and a.solver == b.solver and a.solver.name == "knob_tuning.tpe"


def test_runner_resolves_old_names_against_the_envs_family(tmp_path):
    from hydra import compose, initialize_config_module

    from sysgym.experiments.runner import run_from_config

    with initialize_config_module(config_module="sysgym.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=["env=knob_tuning_serving", "solver=knob_tuning.llamatune",
                                                       "+env.params.trials=3", f"results_dir={tmp_path}"])
    res = run_from_config(cfg)
    assert res.record["family"] == "serving_knobs" and res.record["method"] == "serving_knobs.llamatune"


def test_records_written_before_the_split_validate(tmp_path):
    """Records of `sysgym run env=knob_tuning_serving ...` (family knob_tuning, instance
    `knob_tuning/serving?seed=N`, its digest) and of the PostgreSQL env, written by sysgym before the split."""
    from sysgym.experiments.validate import validate

    shutil.copytree(DATA / "records_before_split", tmp_path / "results")
    verdicts = validate(tmp_path / "results", use_cache=False, progress=False)
    records = {json.loads(p.read_text().splitlines()[0])["run_id"]: json.loads(p.read_text().splitlines()[0])
               for p in (tmp_path / "results").glob("*.jsonl")}
    assert len(verdicts) == len(records) == 4
    for run_id, verdict in verdicts.items():
        rec = records[run_id]
        assert rec["family"] == "knob_tuning"
        if rec["instance"].startswith("knob_tuning/tiny"):
            assert verdict["status"] == "measured", verdict  # a live PostgreSQL measurement is not re-run
            continue
        # Resolved to serving_knobs, the instance rebuilt to its digest (else "unverifiable") and re-scored by
        # today's evaluator. Its serving cost model has changed since these records were written (prefill
        # attention priced on measured A100 kernels, issue 19), so the stored objective is found out of date: a
        # record is only as current as the model that scored it.
        assert verdict["status"] == "mismatch", (rec["instance"], verdict)
        assert verdict["detail"].startswith("objective: stored "), verdict


def test_leaderboard_ranks_records_written_before_the_split_by_their_familys_objective():
    from sysgym.experiments.leaderboard import summarise
    from sysgym.records import read_records

    rows = summarise(read_records(DATA / "records_before_split"), bootstrap=False)
    names = {r["env"]: r["objective_name"] for r in rows}
    assert names == {"knob_tuning_serving": "slo_goodput_rps", "knob_tuning_tiny": "tps_mean"}
    assert all(r["objective"] > 0 for r in rows)


def test_readme_python_api(pg):
    """The README's example from before the split: `from sysgym.envs.knob_tuning import PostgresServer, generate`,
    `solvers.get("knob_tuning.tpe").solve(inst, server=pg)`."""
    inst = knob_tuning.generate(seed=0, preset="tiny", trials=2, final_repetitions=1)
    sol = solvers.get("knob_tuning.tpe", reeval_top=0).solve(inst, server=pg)
    assert sol.stats["trials_run"] == 2 and sol.objective > 0
    assert knob_tuning.PostgresServer is type(pg)
