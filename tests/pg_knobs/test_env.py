"""`sysgym/PgKnobs-v0` on the shared real server."""
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sysgym
from sysgym.errors import InvalidActionError


def test_gymnasium_checker_passes(pg):
    env = sysgym.make("PgKnobs-v0", preset="tiny", server=pg, episode_length=2)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.spec.nondeterministic  # real measurements: documented as nondeterministic
    env.close()
    assert pg.is_alive()  # a shared server is not stopped by the env


def test_episode_rewards_and_invalid_actions(pg):
    env = sysgym.make("PgKnobs-v0", preset="tiny", server=pg, episode_length=2)
    obs, info = env.reset(seed=0)
    obs2, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, obs2)  # the defaults are measured once per env
    assert env.observation_space.contains(obs) and info["tps"] > 0
    assert env.action_space.shape == (3,)
    # synchronous_commit is the first knob: +1 -> 'off', the biggest lever on an fsync-bound disk
    obs, r, term, trunc, info = env.step(np.array([1.0, 0.0, -1.0], np.float32))
    assert info["config"]["synchronous_commit"] == "off" and not info["crashed"]
    assert env.observation_space.contains(obs) and np.isfinite(r) and not term and not trunc
    with pytest.raises(InvalidActionError, match=r"\[-1, 1\]"):
        env.step(np.array([2.0, 0.0, 0.0], np.float32))
    _, _, _, trunc, _ = env.step(np.zeros(3, np.float32))
    assert trunc
    env.close()
