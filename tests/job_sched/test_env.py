"""`sysgym/JobSched-v0`: the kit's env checks, the reward identity, masks, observations, the wait action, and
every named policy giving the same run whether the env or the simulator drives it."""
import numpy as np
import pytest

import sysgym
from sysgym import solvers
from sysgym.envs.job_sched import build, evaluate, generate, policy_names, simulate
from sysgym.errors import InvalidActionError
from sysgym.solution import Solution
from sysgym.solvers.job_sched.policies import PolicyAgent
from sysgym.testing import check_env


def test_check_env_flat_observation_and_user_fair_reward():
    # the registered default (graph observation) is checked by tests/test_conformance.py
    check_env("sysgym/JobSched-v0", rollout_steps=200, refusals=30, observation="flat", reward="user_fair")


def test_check_env_with_the_wait_action():
    check_env("sysgym/JobSched-v0", rollout_steps=200, refusals=30, allow_wait=True)


def _random_episode(env, seed):
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    ret, done, steps = 0.0, False, 0
    while not done:
        mask = env.unwrapped.action_masks()
        _, r, done, trunc, _ = env.step(int(rng.choice(np.flatnonzero(mask))))
        assert not trunc
        ret += r
        steps += 1
    return ret, steps


@pytest.mark.parametrize("seed", [0, 7])
def test_minus_return_over_jobs_is_the_mean_jct(seed):
    env = sysgym.make("sysgym/JobSched-v0")
    ret, steps = _random_episode(env, seed)
    base = env.unwrapped
    m = evaluate(base.instance, Solution(base.decisions(), float("nan"), "feasible", 0.0))  # re-checked schedule
    assert steps > base.instance.num_jobs
    assert -ret / base.instance.num_jobs == pytest.approx(m["mean_response_s"], rel=1e-9)


def test_user_fair_reward_is_the_mean_of_user_means():
    env = sysgym.make("sysgym/JobSched-v0", reward="user_fair")
    ret, _ = _random_episode(env, 3)
    m = evaluate(env.unwrapped.instance, env.unwrapped.decisions())
    assert -ret == pytest.approx(m["user_mean_response_of_means_s"], rel=1e-9)
    assert m["user_mean_response_of_means_s"] != pytest.approx(m["mean_response_s"], rel=1e-3)


def _env_run(name, allow_wait, seed=11, waits=None, **options):
    env = sysgym.make("sysgym/JobSched-v0", allow_wait=allow_wait, invalid_action="raise")
    obs, _ = env.reset(seed=seed)
    agent = PolicyAgent(solvers.get(f"job_sched.{name}", **options).policy(), env, seed=1)
    done, ret = False, 0.0
    while not done:
        obs, r, done, _, info = env.step(agent.act(obs))
        ret += r
        if waits is not None and info.get("waited"):
            waits.append(info["time_s"])
    base = env.unwrapped
    return base.instance, ret, evaluate(base.instance, base.decisions())


@pytest.mark.parametrize("name", policy_names())
def test_every_policy_driven_by_the_env_matches_the_simulator(name):
    """The same policy object class, driven step by step through the env (PolicyAgent) and run by the simulator,
    gives the same schedule: every metric equal. The small preset has 10 executors and 10 limit levels, so each
    executor count is an action; `allow_wait` lets decima_cap leave executors idle at its caps."""
    inst, ret, env_metrics = _env_run(name, allow_wait=True)
    sim = simulate(inst, name, seed=1)
    sim_metrics = evaluate(inst, sim.schedule)
    assert -ret / inst.num_jobs == pytest.approx(sim.metrics["mean_response_s"], rel=1e-9)
    for key, value in sim_metrics.items():
        if isinstance(value, float):
            assert env_metrics[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
        else:
            assert env_metrics[key] == value, key


def test_without_the_wait_action_policies_that_never_decline_still_match():
    # the small preset is multi_app: fair, user_fair and uwfq are move-aware there and may leave executors idle
    # rather than move them; unaware (move_aware=False) uwfq never declines
    for name, options in (("fifo", {}), ("uwfq", {"move_aware": False}), ("random", {})):
        inst, ret, _ = _env_run(name, allow_wait=False, **options)
        expected = simulate(inst, name, seed=1, **options).metrics["mean_response_s"]
        assert -ret / inst.num_jobs == pytest.approx(expected, rel=1e-9)
    # decima_cap declines at its caps; without the wait action the env cannot idle, so the runs differ
    inst, ret, _ = _env_run("decima_cap", allow_wait=False)
    assert -ret / inst.num_jobs != pytest.approx(simulate(inst, "decima_cap", seed=1).metrics["mean_response_s"],
                                                 rel=1e-6)


@pytest.mark.parametrize("name", ["fair", "user_fair", "uwfq"])
def test_move_aware_policies_idle_executors_through_the_wait_action(name):
    """In multi_app the move-aware policies decline to move executors that would arrive too late to help; the env
    run takes the wait action for those decisions and still matches the simulator (test above)."""
    waits = []
    _env_run(name, allow_wait=True, waits=waits)
    assert waits


def test_wait_action_idles_until_the_next_event():
    env = sysgym.make("sysgym/JobSched-v0", allow_wait=True, invalid_action="raise")
    env.reset(seed=0)
    base = env.unwrapped
    assert base.action_space.n == base.N * base.num_limits + 1 and base.wait_action == base.action_space.n - 1
    assert base.action_masks()[base.wait_action]  # jobs are yet to arrive
    t0, free0 = base.sim.now, base.sim.free_count
    _, reward, _, _, info = env.step(base.wait_action)
    assert info["waited"] and base.sim.now > t0 and reward <= 0
    assert base.sim.free_count >= free0  # nothing was launched
    # one job, nothing running, no job to come: waiting would idle for ever, so it is masked and refused
    inst = build(1, [{"arrival": 0, "stages": [[1.0]]}], moving_delay_s=0.0)
    env = sysgym.make("sysgym/JobSched-v0", instance=inst, allow_wait=True, invalid_action="raise")
    env.reset(seed=0)
    base = env.unwrapped
    assert not base.action_masks()[base.wait_action]
    with pytest.raises(InvalidActionError, match="wait"):
        env.step(base.wait_action)
    _, reward, done, _, _ = env.step(int(np.flatnonzero(base.action_masks())[0]))
    assert done and reward == pytest.approx(-1.0)


def test_out_of_mask_action_raises_or_is_penalised_leaving_state():
    env = sysgym.make("sysgym/JobSched-v0", invalid_action="raise")
    env.reset(seed=0)
    base = env.unwrapped
    mask = base.action_masks().copy()
    bad = int(np.flatnonzero(~mask)[0])
    before = base.snapshot()
    with pytest.raises(InvalidActionError, match="not runnable|empty|only"):
        env.step(bad)
    for key, value in base.snapshot().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)
    assert mask.any()
    env = sysgym.make("sysgym/JobSched-v0")  # the registered default: penalise
    env.reset(seed=0)
    before = env.unwrapped.snapshot()
    _, reward, term, trunc, info = env.step(bad)
    assert reward == -1.0 and not (term or trunc) and "not runnable" in info["invalid_action"]
    for key, value in env.unwrapped.snapshot().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)
    _, reward, _, _, info = env.step("x")
    assert reward == -1.0 and "not an integer" in info["invalid_action"]


def test_graph_observation_shapes_and_edges():
    env = sysgym.make("sysgym/JobSched-v0", max_jobs=8)
    obs, _ = env.reset(seed=2)
    N = 8 * 20
    assert obs["node_features"].shape == (N, 12) and obs["node_mask"].shape == (N,)
    valid = obs["node_mask"] > 0
    assert valid.any()
    e = obs["edges"][obs["edge_mask"] > 0]
    assert valid[e[:, 0]].all() and valid[e[:, 1]].all()  # edges join real nodes
    assert (obs["node_job"][e[:, 0]] == obs["node_job"][e[:, 1]]).all()  # within one job
    ready = obs["node_features"][:, 4] > 0
    mask = env.unwrapped.action_masks().reshape(N, -1)
    np.testing.assert_array_equal(mask.any(1), ready)


def test_layout_kwargs_rebuild_the_same_spaces_for_any_instance():
    env = sysgym.make("sysgym/JobSched-v0", max_jobs=6, max_stages=12, max_edges=16, num_limits=5,
                      allow_wait=True, observation="flat", num_executors=10)
    layout = env.unwrapped.layout_kwargs()
    assert layout == {"max_jobs": 6, "max_stages": 12, "max_edges": 16, "num_limits": 5, "allow_wait": True,
                      "observation": "flat"}
    inst = generate(preset="small", seed=4, max_stages=12)
    again = sysgym.make("sysgym/JobSched-v0", instance=inst, **layout)
    assert again.observation_space == env.observation_space and again.action_space == env.action_space


def test_fixed_instance_and_size_checks():
    inst = generate(preset="tiny", seed=0)
    env = sysgym.make("sysgym/JobSched-v0", instance=inst)
    env.reset(seed=0)
    assert env.unwrapped.instance is inst
    with pytest.raises(sysgym.InvalidArgumentError, match="executors"):
        env.reset(options={"instance": generate(preset="small", seed=0)})
    with pytest.raises(sysgym.InvalidArgumentError, match="max_stages"):
        sysgym.make("sysgym/JobSched-v0", max_stages=2).reset(seed=0)
    with pytest.raises(sysgym.UnknownNameError, match="reward"):
        sysgym.make("sysgym/JobSched-v0", reward="nope")
    with pytest.raises(sysgym.UnknownNameError, match="invalid_action"):
        sysgym.make("sysgym/JobSched-v0", invalid_action="clip_it")
    with pytest.raises(sysgym.InvalidArgumentError, match="max_jobs"):
        sysgym.make("sysgym/JobSched-v0", max_jobs=0)
    with pytest.raises(sysgym.InvalidArgumentError, match="num_executors"):
        sysgym.make("sysgym/JobSched-v0", preset="custom")


def test_same_reset_seed_same_generated_instance():
    a, b = sysgym.make("sysgym/JobSched-v0"), sysgym.make("sysgym/JobSched-v0")
    a.reset(seed=9)
    b.reset(seed=9)
    assert a.unwrapped.instance.digest() == b.unwrapped.instance.digest()
    assert a.unwrapped.instance.name.startswith("job_sched-v1/small?seed=")
    assert a.unwrapped.instance.setting == "multi_app"  # the env's default preset is Decima's executor model


def test_a_job_with_more_edges_than_the_observation_holds_is_refused():
    """Edges beyond max_edges would silently vanish from the observation: the instance is refused by name."""
    stages = [[1.0]] * 6
    fan = [(0, k) for k in range(1, 6)] + [(k, 5) for k in range(1, 5)]  # 9 edges
    inst = build(2, [{"arrival": 0, "stages": stages, "edges": fan, "label": "wide"},
                     {"arrival": 1, "stages": [[1.0], [1.0]], "edges": [(0, 1)], "label": "ok"}], moving_delay_s=0.0)
    with pytest.raises(sysgym.InvalidArgumentError, match=r"job 0 \(wide\) .* 9 DAG edges > max_edges=8"):
        sysgym.make("sysgym/JobSched-v0", instance=inst, max_edges=8).reset(seed=0)
    env = sysgym.make("sysgym/JobSched-v0", instance=inst, max_edges=9)
    obs, _ = env.reset(seed=0)
    assert int(obs["edge_mask"].sum()) == 9  # every edge of the visible job is in the observation


def test_sb3_maskable_ppo_consumes_the_graph_observation():
    torch = pytest.importorskip("torch")
    sb3c = pytest.importorskip("sb3_contrib")
    torch.set_num_threads(1)
    env = sysgym.make("sysgym/JobSched-v0", max_jobs=4, num_jobs=6)
    model = sb3c.MaskablePPO("MultiInputPolicy", env, n_steps=32, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(32)
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, action_masks=env.unwrapped.action_masks(), deterministic=True)
    assert env.unwrapped.action_masks()[int(action)]
