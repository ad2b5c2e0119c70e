"""The family kit's conformance suite: every registered env, solver and family keeps the same contract.

Parametrised over `sysgym.list_envs()`, `sysgym.solvers.list()` and `sysgym.list_families()`, so a new family
is checked by adding it, with no edit here. Nothing is turned into a skip: an env or solver that does not
build is a failure.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

import sysgym
from sysgym import registry, solver
from sysgym.env import SysgymEnv
from sysgym.solution import Solution
from sysgym.testing import check_env, check_generator, check_solver, masked_random_action

REPO = Path(__file__).resolve().parents[1]
DIGESTS = REPO / "tests" / "data" / "digests"
CONF_SOLVER = REPO / "conf" / "solver"
ENVS = sysgym.list_envs()
FAMILIES = sysgym.list_families()
SOLVERS = [n for n in sysgym.solvers.list() if solver.solver_class(n).kind != "learned"]
AGENT_SOLVERS = [n for n in sysgym.solvers.list() if solver.solver_class(n).kind == "learned"]


def tiny_instance(family_name: str, seed: int = 0):
    fam = sysgym.get_family(family_name)
    return fam.generator(seed=seed, preset=fam.tiny_preset)


# -- envs -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENVS)
def test_env_contract(env_id):
    """Gymnasium's and SB3's checkers as registered, random masked rollouts, determinism, refusals."""
    check_env(env_id)


@pytest.mark.parametrize("env_id", ENVS)
def test_env_is_a_sysgym_env_whose_decisions_the_evaluator_scores(env_id):
    fam_name = registry.env_family(env_id)
    env = sysgym.make(env_id, **_tiny_kwargs(env_id, fam_name))  # whole random episodes: the smallest preset
    base = env.unwrapped
    assert isinstance(base, SysgymEnv), f"{env_id} does not derive from sysgym.env.SysgymEnv"
    fam = sysgym.get_family(registry.env_family(env_id))
    assert base.family == fam.name and env_id in fam.env_ids
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=0)
    instance = base.instance
    assert fam.is_instance(instance), f"{env_id}: env.instance is not a {fam.name} instance"
    parts = []
    for options in type(base).episodes(instance):
        env.reset(seed=0, options=options)
        done = False
        while not done:
            _, _, term, trunc, _ = env.step(masked_random_action(env, rng))
            done = term or trunc
        parts.append(base.decisions())
    decisions = type(base).combine(parts)
    metrics = fam.evaluate(instance, Solution(decisions, float("nan"), "feasible", 0.0))
    assert metrics.get("feasible", True) and fam.objective in metrics


@pytest.mark.parametrize("env_id", ENVS)
def test_same_seed_same_first_observation(env_id):
    a, b = sysgym.make(env_id), sysgym.make(env_id)
    for x, y in zip(_leaves(a.reset(seed=5)[0]), _leaves(b.reset(seed=5)[0])):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("env_id", ENVS)
def test_env_refuses_another_familys_instance(env_id):
    fam = registry.env_family(env_id)
    other = next(f for f in FAMILIES if f != fam and f in _CHEAP_TINY)
    with pytest.raises(sysgym.FamilyMismatchError, match=fam):
        env = sysgym.make(env_id)
        env.reset(seed=0, options={"instance": tiny_instance(other)})


# -- solvers ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SOLVERS)
def test_solver_on_its_familys_tiny_instance(name):
    """The claimed objective is the evaluator's, the solution is feasible, a bound is not beaten."""
    cls = solver.solver_class(name)
    check_solver(name, tiny_instance(cls.family), time_limit=60, seed=0)


@pytest.mark.parametrize("name", SOLVERS + AGENT_SOLVERS)
def test_solver_refuses_bad_arguments_before_any_work(name):
    cls = solver.solver_class(name)
    fam = cls.family
    other = next(f for f in FAMILIES if f != fam and f in _CHEAP_TINY)
    s = cls.__new__(cls)  # no constructor: an agent solver's would load a policy file
    s.config = {}
    with pytest.raises(sysgym.FamilyMismatchError, match=fam):
        s.solve(tiny_instance(other), time_limit=1)
    if fam in _CHEAP_TINY:
        inst = tiny_instance(fam)
        for bad in ({"seed": -1}, {"seed": 1.5}, {"time_limit": 0}, {"time_limit": -3}, {"time_limit": float("nan")}):
            with pytest.raises(sysgym.SysgymError):
                s.solve(inst, **bad)


@pytest.mark.parametrize("name", solver.list())
def test_solver_is_described(name):
    cls = solver.solver_class(name)
    assert (cls.__doc__ or "").strip(), f"{name} has no docstring (sysgym list shows its first line)"
    assert cls.kind in solver.KINDS


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_has_an_agent_solver(family):
    assert f"{family}.agent" in sysgym.solvers.list(family)


@pytest.mark.parametrize("path", sorted(CONF_SOLVER.glob("*.yaml")), ids=lambda p: p.stem)
def test_solver_config_matches_the_solver_signature(path):
    """conf/solver/*.yaml restate the Python defaults (so `solver.params.x=...` overrides work): every key must
    be an option of the solver and every value its default; per-env changes live under `overrides`."""
    cfg = yaml.safe_load(path.read_text())
    if cfg["name"] == "agent":
        return
    cls = solver.solver_class(cfg["name"])
    defaults = solver.options(cls)
    assert defaults is not None, f"{cls.name} takes **kwargs: its options cannot be checked"
    params = cfg.get("params") or {}
    for key, value in params.items():
        assert key in defaults, f"{path.name}: {key!r} is not an option of {cls.name} ({sorted(defaults)})"
        assert _same(value, defaults[key]), f"{path.name}: {key}={value!r}, but {cls.name}'s default is " \
                                            f"{defaults[key]!r}"
    for env_name, over in (cfg.get("overrides") or {}).items():
        for key in over or {}:
            assert key in defaults, f"{path.name}: override {env_name}.{key} is not an option of {cls.name}"


@pytest.mark.parametrize("name", [n for n in solver.list() if solver.solver_class(n).kind != "learned"])
def test_every_solver_has_a_config(name):
    assert (CONF_SOLVER / f"{name}.yaml").is_file(), f"conf/solver/{name}.yaml is missing (sysgym run solver={name})"


# -- families and instances -------------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_instance_contract(family, tmp_path):
    inst = tiny_instance(family)
    assert isinstance(inst, sysgym.instances.Instance)
    assert sysgym.instance(inst.name).digest() == inst.digest()
    fam = sysgym.get_family(family)
    if fam.load is not None:
        path = inst.save(tmp_path / "inst.json")
        assert fam.load(path).digest() == inst.digest()


@pytest.mark.parametrize("family", FAMILIES)
def test_pinned_digests(family):
    """Generators do not change what a version makes: every preset's seeds 0 and 1 keep their digests.
    (A deliberate change is a new generator version; regenerate with `python tests/pin_digests.py FAMILY`.)"""
    path = DIGESTS / f"{family}.json"
    assert path.is_file(), f"{path} is missing: run python tests/pin_digests.py {family}"
    pinned = json.loads(path.read_text())
    digests: dict[str, str] = {}
    for version in pinned.get("versions", [None]):  # files written before versions: the newest only
        digests.update(check_generator(family, presets=tuple(pinned["presets"]), version=version))
    assert digests == pinned["digests"]


@pytest.mark.parametrize("family", FAMILIES)
def test_generator_refuses_bad_seeds_and_presets(family):
    gen = sysgym.get_family(family).generator
    for seed in (-1, 1.5, "3", True):
        with pytest.raises(sysgym.InvalidSpecError):
            gen(seed=seed)
    with pytest.raises(sysgym.UnknownNameError, match="preset"):
        gen(seed=0, preset="no-such-preset")
    with pytest.raises(sysgym.UnknownNameError, match="version"):
        gen(seed=0, version=99)


def _tiny_kwargs(env_id: str, family_name: str) -> dict:
    import inspect

    params = inspect.signature(registry.env_class(env_id).__init__).parameters
    return {"preset": sysgym.get_family(family_name).tiny_preset} if "preset" in params else {}


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(float(a) - float(b)) <= 1e-12 * max(1.0, abs(float(b)))
    return a == b


def _leaves(obs):
    if isinstance(obs, dict):
        return [np.asarray(obs[k]) for k in sorted(obs)]
    return [np.asarray(obs)]


# Families whose tiny instance builds in well under a second (used as "another family's instance").
_CHEAP_TINY = [f for f in FAMILIES if f not in ("kv_eviction",)]


# -- learned methods: every family's `.agent` solver on a freshly trained (tiny) policy ---------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_agent_solver_rolls_out_a_trained_policy(family, tmp_path):
    """conf/env/<family>_tiny.yaml trains the family's default agent for a few steps; `<family>.agent` then
    solves the tiny instance and the evaluator agrees with its claim (`check_solver`)."""
    from hydra import compose, initialize_config_module

    from sysgym.agents.algos import default_algo
    from sysgym.agents.training import train

    assert (REPO / "conf" / "env" / f"{family}_tiny.yaml").is_file(), f"conf/env/{family}_tiny.yaml is missing"
    with initialize_config_module(config_module="sysgym.conf", version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"env={family}_tiny"])
        algo = default_algo(sysgym.make(cfg.env.id, **({"preset": cfg.env.preset} if cfg.env.get("preset") else {})))
        if algo in ("ppo", "maskable_ppo"):
            steps = ["agent.params.n_steps=16", "agent.params.batch_size=16", "agent.params.n_epochs=1"]
        else:  # off-policy agents (SAC on Box actions)
            steps = ["agent.params.learning_starts=8", "agent.params.batch_size=8"]
        cfg = compose(config_name="train", overrides=[
            f"env={family}_tiny", f"agent={algo}", "agent.total_timesteps=16", "agent.n_envs=1", "eval.instances=1",
            "checkpoint_freq=0", "progress_bar=false", "tensorboard=false", *steps])
    res = train(cfg, tmp_path)
    assert res.metric == sysgym.get_family(family).objective  # training evaluates with the family's evaluator
    inst = tiny_instance(family, seed=int(cfg.env.get("instance_seed", 0) or 0))
    check_solver(f"{family}.agent", inst, time_limit=None, path=str(tmp_path))
