"""VmResched-v0(action_mode="two_stage"): per-stage masks agree with the flat env's, decisions score in the
evaluator, the VM stage's move features are exact, and no step builds a VMs x destinations table."""
import dataclasses

import numpy as np
import pytest

import sysgym
from sysgym.envs.vm_resched.env import VmReschedEnv
from sysgym.envs.vm_resched.state import ClusterState
from sysgym.envs.vm_resched.two_stage import dest_table, own_node, vm_stage
from sysgym.errors import InvalidActionError, UnknownNameError
from sysgym.solution import Solution

FAM = sysgym.get_family("vm_resched")


def _own(st):
    return np.where(st.vm_double, 2 * st.vm_pm, 2 * st.vm_pm + np.maximum(st.vm_numa, 0))


@pytest.mark.parametrize("preset,seed", [("tiny", 3), ("small", 1), ("small", 7)])
def test_stage_masks_match_the_flat_mask_and_decisions_score(preset, seed):
    inst = FAM.generate(seed=seed, preset=preset)
    two, flat = VmReschedEnv(instance=inst, action_mode="two_stage"), VmReschedEnv(instance=inst)
    obs, _ = two.reset(seed=0)
    flat.reset(seed=0)
    rng = np.random.default_rng(seed)
    done = False
    while not done:
        m = two.action_masks()
        assert m.shape == (max(two.max_vms, two.n_dest),)
        full = flat._mask.copy()
        n = flat.state.num_vms
        if obs["stage"][0] == 0:
            full[np.arange(n), _own(flat.state)] = False
            assert np.array_equal(m[:n], full[:n].any(1)) and not m[n:].any()
        else:
            assert np.array_equal(m[:two.n_dest], full[int(obs["chosen"][0])]) and not m[two.n_dest:].any()
        a = int(rng.choice(np.flatnonzero(m)))
        obs, _r, done, _t, info = two.step(a)
        if obs["stage"][0] == 0 and len(flat.history) < len(two.history):
            v, pm, numa = two.history[-1]
            flat.step(v * flat.n_dest + 2 * pm + numa)
    assert two.steps == inst.mnl
    ev = FAM.evaluate(inst, Solution(two.decisions(), np.nan, "feasible", 0.0))
    assert ev["fragment_rate"] == pytest.approx(info["fragment_rate"])
    assert two.decisions() == flat.decisions()


@pytest.mark.parametrize("preset,seed", [("small", 2), ("medium", 0)])
def test_vm_stage_features_are_exact(preset, seed):
    inst = FAM.generate(seed=seed, preset=preset)
    st = ClusterState(inst)
    has, best, src = vm_stage(st)
    rng = np.random.default_rng(0)
    for v in rng.choice(st.num_vms, size=min(st.num_vms, 40), replace=False):
        feas, total, *_ = dest_table(st, int(v))
        feas[own_node(st, int(v))] = False
        assert has[v] == feas.any()
        if feas.any():
            assert best[v] == total[feas].min()


def test_medium_two_stage_masks_are_per_stage_not_flat():
    inst = FAM.generate(seed=0, preset="medium")
    env = VmReschedEnv(instance=dataclasses.replace(inst, mnl=2), action_mode="two_stage")
    obs, _ = env.reset(seed=0)
    assert not hasattr(env, "_mask")  # the 2400 x 560 flat table is never built
    assert env.action_masks().size == max(env.max_vms, env.n_dest) < 10_000
    v = int(np.argmin(np.where(env.action_masks()[:inst.num_vms], obs["vm"][:inst.num_vms, 15], np.inf)))
    obs, *_ = env.step(v)
    assert obs["stage"][0] == 1 and obs["chosen"][0] == v and obs["dest"].shape == (2 * inst.num_pms, 6)


def test_two_stage_refuses_bad_actions_by_name():
    inst = FAM.generate(seed=3, preset="tiny")
    env = VmReschedEnv(instance=inst, action_mode="two_stage", invalid_action="raise")
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match="padding|no destination"):
        env.step(int(np.flatnonzero(~env.action_masks())[0]))
    with pytest.raises(UnknownNameError):
        VmReschedEnv(instance=inst, action_mode="three_stage")
