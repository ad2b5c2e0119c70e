"""sysgym/VmResched-v0 keeps the env contract and agrees with the evaluator."""
import numpy as np
import pytest

import sysgym
from sysgym.envs.vm_resched import generate
from sysgym.envs.vm_resched.evaluate import evaluate
from sysgym.errors import InvalidActionError, UnknownNameError
from sysgym.testing import check_env, masked_random_action


def test_env_contract():
    check_env("sysgym/VmResched-v0", preset="small")


def _full_mask(env) -> np.ndarray:
    """The mask recomputed from scratch: where each VM fits now, plus its own place."""
    u = env.unwrapped
    st = u.state
    m = np.zeros((u.max_vms, u.n_dest), bool)
    for v in range(st.num_vms):
        for d in range(u.n_dest):
            pm, numa = divmod(d, 2)
            if st.vm_double[v] and numa == 1:
                continue
            m[v, d] = st.why_not(v, pm, numa) is None
    return m


@pytest.mark.parametrize("groups", [0, 4])
def test_incremental_mask_equals_recomputed_mask(groups):
    inst = generate(preset="tiny", seed=3, mnl=30, anti_affinity_groups=groups, anti_affinity_size=2)
    env = sysgym.make("VmResched-v0", instance=inst)
    rng = np.random.default_rng(1)
    env.reset(seed=3)
    for _ in range(30):
        np.testing.assert_array_equal(env.unwrapped.action_masks().reshape(env.unwrapped.max_vms, -1),
                                      _full_mask(env))
        env.step(masked_random_action(env, rng))


def test_episode_is_mnl_steps_and_info_fr_matches_the_evaluator():
    inst = generate(preset="small", seed=5)
    env = sysgym.make("VmResched-v0", instance=inst, reward="fr")
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=0)
    total, steps, done = 0.0, 0, False
    while not done:
        obs, r, done, trunc, info = env.step(masked_random_action(env, rng))
        total += r
        steps += 1
    assert steps == inst.mnl
    scored = evaluate(inst, env.unwrapped.history)
    assert info["fragment_rate"] == pytest.approx(scored["fragment_rate"])
    assert info["num_migrations"] == scored["num_migrations"]
    # With reward="fr" the return telescopes to FR before - FR after.
    assert total == pytest.approx(scored["fragment_rate_before"] - scored["fragment_rate"])


def test_default_reward_is_vmr2l_per_pm_score():
    from sysgym.envs.vm_resched import VmInstance

    # Free CPUs: PM0 (32, 32), PM1 (16, 40). Moving VM 0 (8 cores) from PM0/NUMA0 to PM1/NUMA0 gives
    # PM0 (40, 32), PM1 (8, 40): remainders mod 16 go from (0, 0, 0, 8) to (8, 0, 8, 8).
    inst = VmInstance(node_cpu=[40, 40, 40, 40], node_mem=[100] * 4, vm_cpu=[8, 8, 24], vm_mem=[1, 1, 1],
                      vm_double=[False] * 3, vm_pm=[0, 0, 1], vm_numa=[0, 1, 0], mnl=1)
    env = sysgym.make("VmResched-v0", instance=inst)
    env.reset(seed=0)
    _, r, done, _, _ = env.step(0 * env.unwrapped.n_dest + 2 * 1 + 0)
    assert r == pytest.approx((8 / 32 - 24 / 32) / 4) and done


def test_out_of_mask_action_raises_and_leaves_state_alone():
    env = sysgym.make("VmResched-v0", preset="tiny", invalid_action="raise")
    env.reset(seed=0)
    u = env.unwrapped
    mask = u.action_masks().copy()
    free_before = u.state.free_cpu.copy()
    bad = int(np.flatnonzero(~mask)[0])
    with pytest.raises(InvalidActionError, match="VmReschedEnv: VM"):
        env.step(bad)
    np.testing.assert_array_equal(u.state.free_cpu, free_before)
    np.testing.assert_array_equal(u.action_masks(), mask)
    with pytest.raises(InvalidActionError, match="outside Discrete"):
        env.step(u.action_space.n + 5)


def test_penalise_mode_is_the_default_and_a_noop_with_negative_reward():
    env = sysgym.make("VmResched-v0", preset="tiny")
    env.reset(seed=0)
    u = env.unwrapped
    bad = int(np.flatnonzero(~u.action_masks())[0])
    _, r, _, _, info = env.step(bad)
    assert r == -1.0 and "invalid_action" in info and info["num_migrations"] == 0


def test_same_seed_same_generated_instance():
    a, b = sysgym.make("VmResched-v0", preset="small"), sysgym.make("VmResched-v0", preset="small")
    assert a.reset(seed=11)[1]["instance"] == b.reset(seed=11)[1]["instance"]
    assert a.reset(seed=12)[1]["instance"] != b.reset(seed=11)[1]["instance"]


def test_bad_env_arguments():
    with pytest.raises(UnknownNameError, match="small"):
        sysgym.make("VmResched-v0", preset="gigantic")
    with pytest.raises(ValueError, match="reward"):
        sysgym.make("VmResched-v0", reward="happiness")
    with pytest.raises(ValueError, match="observation"):
        sysgym.make("VmResched-v0", observation="pixels")


def test_pairs_observation_contract():
    check_env("sysgym/VmResched-v0", preset="tiny", observation="pairs")
    plain = sysgym.make("VmResched-v0", preset="small").observation_space
    assert set(plain.spaces) == {"pm", "vm", "progress"} and plain["pm"].shape == (10, 8)


@pytest.mark.parametrize("groups", [0, 3])
def test_pair_features_are_each_moves_exact_remainder_change(groups):
    """`pair[v, d, 3] * 16` is what moving VM v to destination d does to the sum of remainders (the
    objective's numerator), for every move the mask allows, along random episodes; hosted counts match."""
    import copy

    inst = generate(preset="small", seed=5, mnl=12, anti_affinity_groups=groups, anti_affinity_size=2)
    assert inst.vm_double.any(), "the instance should hold a double-NUMA VM to cover that branch"
    env = sysgym.make("VmResched-v0", instance=inst, observation="pairs").unwrapped
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    for _ in range(12):
        st = env.state
        base = int((st.free_cpu % st.unit).sum())
        mask = env.action_masks().reshape(env.max_vms, env.n_dest)
        for v, d in zip(*np.nonzero(mask)):
            pm, numa = divmod(int(d), 2)
            after = copy.deepcopy(st)
            if not st.is_current(v, pm, numa):
                after.move(v, pm, numa)
            change = int((after.free_cpu % st.unit).sum()) - base
            assert obs["pair"][v, d, 3] * st.unit == pytest.approx(change), (v, d)
            assert obs["pair"][v, d, 4] == float(st.is_current(v, pm, numa))
        for node in range(env.n_dest):
            on = (~st.vm_double) & (2 * st.vm_pm + st.vm_numa == node)
            for j, size in enumerate((2, 4, 8)):
                want = min(int((st.vm_cpu[on] % st.unit == size).sum()) / 8, 1.0)
                assert obs["pm"][node // 2, 8 + 3 * (node % 2) + j] == pytest.approx(want)
        obs, *_ = env.step(masked_random_action(env, rng))
