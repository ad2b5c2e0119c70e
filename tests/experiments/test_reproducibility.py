"""The same config run twice gives byte-identical metrics, for every registered solver, under the limits sweeps use
by default (no wall-clock limit; `deterministic_time` for solvers that take it; their own trial budgets).

Slow (every solver twice, CP-SAT/MILP models, Optuna searches and PostgreSQL-backed knob tuning included), so
it is marked `slow`: `pytest -m slow tests/experiments/test_reproducibility.py`. A solver that cannot finish its
family's tiny instance without a wall-clock limit within KILL_AFTER seconds fails here too: it has no
deterministic budget, so its sweep results would depend on the machine. On a family's measured presets (a live
server: `Family.nondeterministic_presets`) the decisions are compared instead of the numbers, and searches, whose
answer follows the measured noise, are skipped with that reason.
"""
from __future__ import annotations

import json

import pytest

import sysgym
from sysgym import solvers
from sysgym.experiments.isolate import run_in_child
from sysgym.experiments.runner import check_limit
from sysgym.records import jsonable

KILL_AFTER = 180.0  # seconds per solve
DETERMINISTIC_TIME = 10.0  # the sweep default (conf/config.yaml)
SOLVERS = solvers.list()


@pytest.fixture(scope="module")
def policies(tmp_path_factory):
    """A tiny trained policy per family, for the learned `<family>.agent` solvers (trained on first use)."""
    cache: dict[str, str] = {}

    def get(family: str) -> str:
        if family not in cache:
            from hydra import compose, initialize_config_module

            from sysgym.agents.algos import default_algo
            from sysgym.agents.training import train

            with initialize_config_module(config_module="sysgym.conf", version_base="1.3"):
                cfg = compose(config_name="train", overrides=[f"env={family}_tiny"])
                env = sysgym.make(cfg.env.id, **({"preset": cfg.env.preset} if cfg.env.get("preset") else {}))
                algo = default_algo(env)
                steps = (["agent.params.n_steps=16", "agent.params.batch_size=16", "agent.params.n_epochs=1"]
                         if algo in ("ppo", "maskable_ppo") else
                         ["agent.params.learning_starts=8", "agent.params.batch_size=8"])
                cfg = compose(config_name="train", overrides=[
                    f"env={family}_tiny", f"agent={algo}", "agent.total_timesteps=16", "agent.n_envs=1",
                    "eval.instances=0", "checkpoint_freq=0", "progress_bar=false", "tensorboard=false", *steps])
            run = tmp_path_factory.mktemp(f"policy_{family}")
            train(cfg, run)
            cache[family] = str(run)
        return cache[family]

    return get


def _run(name: str, instance, params: dict, measured: bool) -> str:
    """The metrics as JSON text; for a measured preset (a live server) the decisions instead: re-measuring gives
    other numbers by nature, but the same seed must still take the same decisions."""
    family = sysgym.get_family(solvers.solver_class(name).family)
    solver = solvers.get(name, **params)
    child = run_in_child(lambda: solver.solve(instance, time_limit=None, seed=0), kill_after=KILL_AFTER)
    if not child.ok:
        pytest.fail(f"{name} on {instance.name} without a wall-clock limit: {child.exit_detail}")
    solution = child.value
    if measured:
        return json.dumps({"decisions": jsonable(solution.decisions)}, sort_keys=True)
    if solution.decisions is None:
        metrics = {"no_solution": solution.status}
    else:
        metrics = family.evaluate(instance, solution)
    return json.dumps(jsonable(metrics), sort_keys=True)


@pytest.mark.slow  # every registered solver twice on its tiny instance: minutes (PostgreSQL, CP-SAT, Optuna)
@pytest.mark.parametrize("name", SOLVERS)
def test_the_same_config_twice_gives_byte_identical_metrics(name, policies):
    cls = solvers.solver_class(name)
    fam = sysgym.get_family(cls.family)
    measured = fam.tiny_preset in fam.nondeterministic_presets
    if measured and cls.kind == "search":
        pytest.skip(f"{fam.name}/{fam.tiny_preset} is a live measurement (Family.nondeterministic_presets): a search "
                    "picks its answer by measured, noisy results, so neither its numbers nor its decisions repeat")
    instance = fam.generator(seed=0, preset=fam.tiny_preset)
    options = solvers.options(cls) or {}
    params: dict = {}
    if "deterministic_time" in options:
        params["deterministic_time"] = check_limit(DETERMINISTIC_TIME, "deterministic_time")
    if cls.kind == "learned":
        params["path"] = policies(cls.family)
    first, second = _run(name, instance, params, measured), _run(name, instance, params, measured)
    if first != second:
        a, b = json.loads(first), json.loads(second)
        differ = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        pytest.fail(f"{name}: metrics differ between two identical runs in {differ}: "
                    + "; ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in differ[:4]))
