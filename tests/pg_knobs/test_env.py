"""`sysgym/PgKnobs-v0` on the shared real server (the conformance suite checks it as registered)."""
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sysgym
from sysgym.errors import InvalidActionError, InvalidArgumentError


def test_gymnasium_checker_passes(pg):
    env = sysgym.make("PgKnobs-v0", preset="tiny", server=pg, episode_length=2)
    check_env(env.unwrapped, skip_render_check=True, skip_close_check=True)
    assert env.spec.nondeterministic  # real measurements: documented as nondeterministic
    env.close()
    assert pg.is_alive()  # a shared server is not stopped by the env


def test_episode_rewards_decisions_and_refused_actions(pg):
    env = sysgym.make("PgKnobs-v0", preset="tiny", server=pg, episode_length=3)
    obs, info = env.reset(seed=0)
    t0 = info["tps"]
    obs2, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, obs2)  # nothing measured in the reset observation
    assert env.observation_space.contains(obs) and info["tps"] > 0
    assert env.action_space.shape == (3,)
    base = env.unwrapped
    assert base.decisions() == base.space.defaults()
    # synchronous_commit is the first knob: +1 -> 'off', the biggest lever on an fsync-bound disk
    obs, r, term, trunc, info = env.step(np.array([1.0, 0.0, -1.0], np.float32))
    assert info["config"]["synchronous_commit"] == "off" and not info["crashed"]
    assert env.observation_space.contains(obs) and np.isfinite(r) and not term and not trunc
    # decisions(): the best configuration measured so far; info["tps_mean"]: its throughput
    if info["tps"] > t0:
        assert base.decisions() == info["config"] and info["tps_mean"] == info["tps"]
    else:
        assert base.decisions() == base.space.defaults() and info["tps_mean"] == t0
    before = base.snapshot()
    _, reward, _, trunc, info = env.step(np.array([2.0, 0.0, 0.0], np.float32))  # outside the box: refused
    assert reward == -1.0 and "outside [low, high]" in info["invalid_action"] and not trunc
    for key in before:
        np.testing.assert_array_equal(before[key], base.snapshot()[key])
    _, _, _, trunc, info = env.step(np.full(3, np.nan, np.float32))  # the third step (refusals use a step)
    assert "non-finite" in info["invalid_action"] and trunc
    env.close()


def test_raise_and_clip_modes(pg):
    env = sysgym.make("PgKnobs-v0", preset="tiny", server=pg, episode_length=2, invalid_action="raise")
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match="outside"):
        env.step(np.array([2.0, 0.0, 0.0], np.float32))
    with pytest.raises(InvalidActionError, match="shape"):
        env.step(np.zeros(4, np.float32))
    env = sysgym.make("PgKnobs-v0", preset="tiny", server=pg, episode_length=2, invalid_action="clip")
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([2.0, 0.0, -1.0], np.float32))
    assert info["clipped_action"] == [1.0, 0.0, -1.0] and info["config"]["synchronous_commit"] == "off"
    _, reward, _, _, info = env.step(np.array([np.nan, 0.0, 0.0], np.float32))  # NaN is still refused
    assert reward == -1.0 and "non-finite" in info["invalid_action"]


def test_decisions_are_what_the_evaluator_scores(pg):
    fam = sysgym.get_family("pg_knobs")
    env = sysgym.make("PgKnobs-v0", preset="tiny", server=pg, episode_length=2)
    env.reset(seed=1)
    env.step(np.array([1.0, -1.0, -1.0], np.float32))
    m = fam.evaluate(env.unwrapped.instance, sysgym.Solution(env.unwrapped.decisions(), float("nan"), "feasible", 0.0),
                     server=pg, repetitions=1)
    assert m["feasible"] and not m["crashed"] and m["tps_mean"] > 0


def test_instances_of_another_knob_subset_are_refused(pg):
    env = sysgym.make("PgKnobs-v0", preset="tiny", server=pg)
    other = sysgym.get_family("pg_knobs").generator(seed=0, preset="small")
    with pytest.raises(InvalidArgumentError, match="pgbench-core"):
        env.reset(seed=0, options={"instance": other})
