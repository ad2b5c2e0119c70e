"""Agent configs: per-env overrides, the command line winning, bad keys and agent/space mismatches refused."""
from __future__ import annotations

from pathlib import Path

import gymnasium
import pytest
import yaml

import sysgym
from sysgym.agents.algos import ALGOS, check_compatible, default_algo, get_algo
from sysgym.agents.common import AgentError
from sysgym.agents.envs import setup_from_config
from sysgym.agents.pipelines import PIPELINES
from sysgym.agents.training import resolve_agent
from sysgym.errors import UnknownNameError
from tests.agents.conftest import compose

CONF = Path(sysgym.__file__).resolve().parents[1] / "conf" / "agent"


def test_every_agent_file_names_a_known_algorithm():
    files = sorted(CONF.glob("*.yaml"))
    assert {f.stem for f in files} >= {"maskable_ppo", "ppo", "a2c", "dqn", "sac", "td3", "ddpg", "vm_two_stage",
                                       "decima"}
    for f in files:
        d = yaml.safe_load(f.read_text())
        assert d["algo"] in ALGOS or d["algo"] in PIPELINES, f  # an SB3 learner, or a shipped policy's recipe
        assert d["name"] == f.stem


def test_per_env_overrides_then_command_line():
    cfg = compose(["agent=maskable_ppo"])
    agent = resolve_agent(cfg.agent, setup_from_config(cfg))
    assert agent["extractor"] == "set_attention"  # overrides.vm_resched
    assert agent["params"]["gamma"] == 1.0 and agent["params"]["clip_range"] == 0.2  # merged, not replaced
    cfg = compose(["agent=maskable_ppo", "agent.params.gamma=0.5"])
    agent = resolve_agent(cfg.agent, setup_from_config(cfg), ["agent.params.gamma=0.5"])
    assert agent["params"]["gamma"] == 0.5
    cfg = compose(["agent=ppo", "env_id=CartPole-v1"])
    agent = resolve_agent(cfg.agent, setup_from_config(cfg))
    assert agent["n_envs"] == 8 and agent["params"]["n_steps"] == 32


def test_vm_agent_observation_follows_the_env_size():
    """Small VM envs train on the pairs observation; medium/large (1.2 M+ moves) keep VMR2L's."""
    cfg = compose(["agent=maskable_ppo"])
    agent = resolve_agent(cfg.agent, setup_from_config(cfg))
    assert agent["env_kwargs"] == {"observation": "pairs"} and agent["action_head_kwargs"]["pair"] == "pair"
    for env in ("vm_resched_medium", "vm_resched_large"):
        cfg = compose(["agent=maskable_ppo", f"env={env}"])
        agent = resolve_agent(cfg.agent, setup_from_config(cfg))
        assert agent["env_kwargs"] == {"observation": "vmr2l"} and agent["action_head_kwargs"]["pair"] is None


def test_linear_schedule_and_its_bad_spelling():
    from sysgym.agents.training import _schedule

    lr = _schedule("learning_rate", "lin_0.001")
    assert lr(1.0) == pytest.approx(0.001) and lr(0.25) == pytest.approx(0.00025)
    assert _schedule("learning_rate", 0.003) == 0.003
    with pytest.raises(AgentError, match="lin_<number>"):
        _schedule("learning_rate", "lin_fast")


def test_unknown_agent_key_is_refused():
    cfg = compose(["agent=ppo", "+agent.nonsense=1"])
    with pytest.raises(AgentError, match="nonsense"):
        resolve_agent(cfg.agent, setup_from_config(cfg))


def test_unknown_env_id_lists_known():
    with pytest.raises(UnknownNameError, match="NoSuchEnv-v0"):
        setup_from_config(compose(["env_id=NoSuchEnv-v0"]))


def test_default_algorithm_follows_the_action_space():
    assert default_algo(sysgym.make("VmResched-v0", preset="tiny")) == "maskable_ppo"
    assert default_algo(gymnasium.make("CartPole-v1")) == "ppo"
    assert default_algo(gymnasium.make("Pendulum-v1")) == "sac"


@pytest.mark.parametrize("algo, env_id, reason", [
    ("dqn", "Pendulum-v1", "handles only Discrete"),
    ("sac", "CartPole-v1", "handles only Box"),
    ("maskable_ppo", "CartPole-v1", "no action_masks"),
    ("ppo", "sysgym/VmResched-v0", "ignores action masks"),
])
def test_agent_space_mismatch_is_refused_with_the_reason(algo, env_id, reason):
    env = gymnasium.make(env_id, **({"preset": "tiny", "invalid_action": "raise"} if "VmResched" in env_id else {}))
    with pytest.raises(AgentError, match=reason):
        check_compatible(get_algo(algo), env, env_id)


def test_ppo_on_a_masked_env_is_allowed_in_penalise_mode():
    env = sysgym.make("VmResched-v0", preset="tiny", invalid_action="penalise")
    check_compatible(get_algo("ppo"), env, "sysgym/VmResched-v0", {"invalid_action": "penalise"})


def test_unknown_algorithm_lists_the_known_ones():
    with pytest.raises(UnknownNameError, match="maskable_ppo"):
        get_algo("rainbow")


def test_composed_values_win_over_per_env_overrides_without_a_command_line():
    """compose(overrides=["agent.n_envs=2"]) from Python: the per-env override (8) must not undo it."""
    cfg = compose(["agent=maskable_ppo", "agent.n_envs=2", "agent.params.learning_rate=0.005"])
    agent = resolve_agent(cfg.agent, setup_from_config(cfg))
    assert agent["n_envs"] == 2 and agent["params"]["learning_rate"] == 0.005
    assert agent["params"]["n_steps"] == 64  # untouched keys still take the per-env override
