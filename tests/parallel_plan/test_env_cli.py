"""The env (masks, determinism, reward from the evaluator), instance replay, and the `sysgym plan` CLI."""
import numpy as np
import pytest

import sysgym
from sysgym.envs.parallel_plan import generate
from sysgym.envs.parallel_plan.env import DECISIONS, ParallelPlanEnv
from sysgym.errors import InvalidActionError, UnknownNameError
from sysgym.testing import check_env, masked_random_action


def test_env_contract():
    check_env("sysgym/ParallelPlan-v0", checker_kwargs={"invalid_action": "penalise"}, rollout_steps=300)


def test_masked_episodes_end_feasible_and_reward_is_scored():
    env = ParallelPlanEnv(preset="tiny")
    rng = np.random.default_rng(0)
    inst = env.instance
    for _ in range(20):
        env.reset(seed=1)
        done, reward, info = False, 0.0, {}
        while not done:
            _, reward, done, _, info = env.step(masked_random_action(env, rng))
        est = inst.estimate(env.current_plan())
        assert est.feasible and info["iteration_time_s"] == est.iteration_time_s
        assert 0 < reward <= 1.0 + 1e-12 and reward == pytest.approx(env.best_time / est.iteration_time_s)


def test_following_the_optimum_gives_reward_one():
    env = ParallelPlanEnv(preset="tiny")
    env.reset(seed=0)
    best = None
    for k in range(len(env.space)):
        t = env.instance.estimate(env.space.plan(k)).iteration_time_s
        if best is None or t < best[0]:
            best = (t, k)
    k = best[1]
    reward = None
    for name in DECISIONS:
        a = int(env._col_idx[name][k])
        assert env.action_masks()[a]
        _, reward, _, _, _ = env.step(a)
    assert reward == pytest.approx(1.0)


def test_out_of_mask_action_raises_and_leaves_state():
    env = ParallelPlanEnv(preset="tiny")
    env.reset(seed=0)
    while env.action_masks().all():  # walk valid choices until a choice is masked
        env.step(int(np.flatnonzero(env.action_masks())[0]))
    bad = int(np.flatnonzero(~env.action_masks())[0])
    before = env.state.alive.copy()
    with pytest.raises(InvalidActionError, match="ParallelPlan: "):
        env.step(bad)
    assert np.array_equal(before, env.state.alive)


def test_instance_names_replay_and_bad_names():
    inst = generate(preset="medium", global_batch=512)
    again = sysgym.instance(inst.name)
    assert again.digest() == inst.digest()
    with pytest.raises(UnknownNameError, match="known parallel_plan presets: 1t"):
        generate(preset="huge")
    with pytest.raises(UnknownNameError, match="known models: .*gpt-1t"):
        generate(model="gpt-2t", cluster="dgx-a100", seq_len=8, global_batch=8)


def test_cli_plan_table_plot_and_errors(tmp_path, capsys):
    from sysgym.experiments.cli import main

    png = tmp_path / "front.png"
    rc = main(["plan", "--model", "llama-2-7b", "--cluster", "dgx-a100", "--nodes", "2", "--seq-len", "4096",
               "--global-batch", "128", "--top", "4", "--plot", str(png)])
    out = capsys.readouterr().out
    assert rc == 0 and "best plans" in out and "why it loses" in out and png.stat().st_size > 10_000
    assert main(["plan", "--model", "nope", "--seq-len", "8", "--global-batch", "8"]) == 2
    assert "known models" in capsys.readouterr().err
    assert main(["plan", "--model", "gpt-1t", "--nodes", "1", "--seq-len", "2048", "--global-batch", "8"]) == 1
    assert "no feasible plan" in capsys.readouterr().err
