"""Both envs keep the env contract; every named scheduler, driving `LlmServing-v0` as a policy, gives exactly
the simulator's run; routing the simulator's way in `LlmRouting-v0` gives the simulator's run."""
import numpy as np
import pytest

import sysgym
from sysgym.envs.llm_serving import generate, simulate
from sysgym.envs.llm_serving.evaluate import evaluate
from sysgym.envs.llm_serving.simulator import ROUTERS, router_choice
from sysgym.errors import InvalidActionError, InvalidArgumentError, UnknownNameError
from sysgym.solution import Solution
from sysgym.testing import check_env

SCHEDULERS = ("vllm", "orca", "sarathi", "past_future", "vtc", "sjf")


@pytest.fixture(scope="module")
def instances():
    return {
        # the issue's instance: the old env policy (Orca-style mixed batching) said 4.582 for vllm, the
        # simulator 4.753
        "small": generate(preset="small", seed=1, num_requests=120),
        # four clients, a KV pool that forces preemptions, a batch cap: VTC's order and every preemption path
        "tight": generate(preset="multi_tenant", seed=1, num_requests=90, num_blocks=420, max_num_seqs=24),
    }


def _policy_episode(inst, name, **options):
    """(metrics of the env-driven run, episode return): the scheduler object drives LlmServing-v0."""
    pol = sysgym.solvers.get(f"llm_serving.{name}", **options).policy(inst)
    env = sysgym.make("LlmServing-v0", instance=inst, scheduler=pol, max_running=256)
    obs, _ = env.reset(seed=0)
    done, ret = False, 0.0
    while not done:
        obs, reward, done, _, _ = env.step(pol.act(obs, env.unwrapped.action_masks()))
        ret += reward
    return evaluate(inst, env.unwrapped.decisions()), ret


def _same_metrics(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], float):
            assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-12), k
        else:
            assert a[k] == b[k], k


@pytest.mark.parametrize("case", ["small", "tight"])
@pytest.mark.parametrize("name,options", [(n, {}) for n in SCHEDULERS] + [
    ("vllm", {"preemption_mode": "swap"}), ("sarathi", {"preemption_mode": "swap", "chunk_size": 128}),
    ("past_future", {"predictor": "oracle"}), ("orca", {"reserve": "oracle"}), ("sjf", {"predictor": "noisy"})])
def test_env_driven_run_is_the_simulators_run(instances, case, name, options):
    inst = instances[case]
    sim = evaluate(inst, sysgym.solvers.get(f"llm_serving.{name}", **options).solve(inst))
    env_metrics, ret = _policy_episode(inst, name, **options)
    _same_metrics(env_metrics, sim)
    assert -ret == pytest.approx(sim["e2e_mean"], rel=1e-9)  # the return is minus the mean latency
    if case == "tight" and name not in ("orca", "past_future") and options.get("predictor") != "oracle":
        assert sim["num_preemptions"] > 0  # the case exercises preemption (by recompute and by swap)


def test_the_issues_vllm_number_is_the_prefill_first_one(instances):
    """vLLM v0 runs an admitted batch's prefills alone (no decodes in that iteration): 4.976 s, not the 4.790 s of
    the old env policy, which mixed prefills into decode iterations as Orca does (Orca's own number). Issue 19's
    measured attention made iterations longer: under the literature attention defaults these were 4.753 and
    4.582 s; the ordering the test is about holds either way."""
    inst = instances["small"]
    vllm = simulate(inst.trace, scheduler="vllm", **inst.simulate_kwargs()).metrics["e2e_mean"]
    orca = simulate(inst.trace, scheduler="orca", **inst.simulate_kwargs()).metrics["e2e_mean"]
    assert vllm == pytest.approx(4.9762, abs=1e-4) and orca == pytest.approx(4.7897, abs=1e-4)
    assert _policy_episode(inst, "vllm")[0]["e2e_mean"] == pytest.approx(vllm, rel=1e-12)


def test_serving_env_contract_on_a_mixed_engine():
    check_env("sysgym/LlmServing-v0", rollout_steps=300, refusals=30, preset="tiny", scheduler="sarathi")


def test_routing_env_contract_with_fewer_requests():
    check_env("sysgym/LlmRouting-v0", rollout_steps=300, refusals=30, num_requests=150)


def test_random_episode_return_is_minus_mean_latency_and_scored_by_the_evaluator():
    inst = generate(preset="tiny", seed=3)
    env = sysgym.make("LlmServing-v0", instance=inst)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    ret, done = 0.0, False
    while not done:
        _, r, done, _, _ = env.step(int(rng.choice(np.flatnonzero(env.unwrapped.action_masks()))))
        ret += r
    metrics = evaluate(inst, Solution(env.unwrapped.decisions(), float("nan"), "feasible", 0.0))
    assert -ret == pytest.approx(metrics["e2e_mean"], rel=1e-9)


def test_masked_actions_raise_and_leave_state_alone():
    env = sysgym.make("LlmServing-v0", preset="small", invalid_action="raise")
    env.reset(seed=0)
    base = env.unwrapped
    bad = int(np.flatnonzero(~base.action_masks())[0])
    before = base.snapshot()
    with pytest.raises(InvalidActionError, match="masked"):
        env.step(bad)
    for key, value in before.items():
        np.testing.assert_array_equal(value, base.snapshot()[key])


def test_a_scheduler_acts_only_when_it_is_the_envs():
    pol = sysgym.solvers.get("llm_serving.vllm").policy()
    env = sysgym.make("LlmServing-v0", preset="tiny")
    obs, _ = env.reset(seed=0)
    with pytest.raises(InvalidArgumentError, match="scheduler=<this object>"):
        pol.act(obs, env.unwrapped.action_masks())


def test_env_names_unknown_schedulers_and_parameters():
    with pytest.raises(UnknownNameError, match="sarathi"):
        sysgym.make("LlmServing-v0", scheduler="fastserve")
    with pytest.raises(InvalidArgumentError, match="chunk_size"):
        sysgym.make("LlmServing-v0", scheduler="sarathi", scheduler_params={"chunk": 5})


@pytest.mark.parametrize("router", ROUTERS)
def test_routing_env_routed_as_the_router_is_the_simulators_run(router):
    inst = generate(preset="cluster", seed=0, num_requests=150).with_(router=router)
    env = sysgym.make("LlmRouting-v0", instance=inst)
    env.reset(seed=0)
    base = env.unwrapped
    rng = np.random.default_rng([1, 0x524F55])  # simulate's router stream for seed=1
    done, ret, i = False, 0.0, 0
    while not done:
        _, r, done, _, info = env.step(router_choice(router, base.reps, i, rng))
        ret += r
        i += 1
    sim = simulate(inst.trace, seed=1, **inst.simulate_kwargs()).metrics
    got = evaluate(inst, base.decisions())
    assert got["e2e_mean"] == pytest.approx(sim["e2e_mean"], rel=1e-9)
    assert got["ttft_p99"] == pytest.approx(sim["ttft_p99"], rel=1e-9)
    assert -ret == pytest.approx(info["mean_latency"], rel=1e-9) and -ret == pytest.approx(sim["e2e_mean"], rel=1e-9)


def test_routing_env_refuses_an_instance_with_other_replicas():
    env = sysgym.make("LlmRouting-v0", num_replicas=2, num_requests=50)
    with pytest.raises(InvalidArgumentError, match="4 replicas"):
        env.reset(seed=0, options={"instance": generate(preset="cluster", seed=0, num_requests=50)})
