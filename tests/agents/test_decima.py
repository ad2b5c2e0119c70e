"""Decima's GNN scheduler (sysgym.agents.decima) and the shipped `job_sched.agent`."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sysgym.agents.decima import DecimaActor, DecimaNet, TrainConfig, augment, make_instance, time_baseline, train_step
from sysgym.envs.job_sched.env import JobSchedEnv
from sysgym.envs.job_sched.generator import generate_v1

torch.set_num_threads(1)


def _steps_are_allowed(actor, env, obs, steps: int) -> None:
    """The actor's actions over `steps` env steps are allowed by the env's mask and never refused."""
    for _ in range(steps):
        a = actor.act(obs)
        assert env.action_masks()[a]
        obs, _, done, _, info = env.step(a)
        assert "invalid_action" not in info
        if done:
            break


@pytest.mark.parametrize("preset,jobs,layout", [("tiny", 3, {}), ("small", 4, {"max_jobs": 8, "max_stages": 20}),
                                                ("decima", 2, {"max_jobs": 4})])
def test_net_scores_every_node_and_masks_padding_on_graphs_of_any_size(preset, jobs, layout):
    torch.manual_seed(0)
    net = DecimaNet()  # one parameter set for every layout: nothing depends on the number of jobs or stages
    inst = generate_v1(seed=3, preset=preset, num_jobs=jobs)
    env = JobSchedEnv(instance=inst, allow_wait=True, **layout)
    obs, _ = env.reset()
    scores, limits, wait = net(augment(obs, env), env.num_limits)
    assert scores.shape == (env.N,) and limits.shape == (env.N, env.num_limits) and wait.shape == ()
    real = obs["node_mask"] > 0
    assert torch.isinf(scores[~torch.as_tensor(real)]).all() and torch.isfinite(scores[torch.as_tensor(real)]).all()
    actor = DecimaActor(net, env, greedy=False, generator=torch.Generator().manual_seed(0))
    _steps_are_allowed(actor, env, obs, 20)  # sampled actions are always allowed by the env's mask


def test_time_baseline_is_the_mean_return_to_go_at_each_decision_time():
    times = [np.array([0.0, 1.0, 2.0]), np.array([0.0, 1.5])]
    rets = [np.array([-3.0, -2.0, -1.0]), np.array([-5.0, -1.0])]
    b = time_baseline(times, rets)
    # rollout 0 at t=1: its own -2 and rollout 1's first decision at/after 1 (t=1.5: -1) -> -1.5
    np.testing.assert_allclose(b[0], [-4.0, -1.5, -0.5])
    # rollout 1 at t=1.5: rollout 0's first decision at/after 1.5 is t=2 (-1), its own -1 -> -1
    np.testing.assert_allclose(b[1], [-4.0, -1.0])


def test_imitation_clones_the_teacher_at_the_nets_decisions():
    from sysgym.agents.decima import TeacherActor, behaviour_clone, make_env

    inst = generate_v1(seed=2, preset="tiny")
    actor = TeacherActor("decima_cap", make_env(inst))
    actor.run(inst)
    assert actor.samples and all(mask[a] for _, mask, a, _ in actor.samples)  # the teacher's actions are allowed
    torch.manual_seed(0)
    net = DecimaNet()
    res = behaviour_clone(net, "decima_cap", [inst], 4, 3e-3, log=lambda m: None)
    losses = res["epoch_losses"]
    assert res["samples"] == len(actor.samples) and len(losses) == 4
    assert losses[-1] < losses[0]  # the cross-entropy on the teacher's choices falls


def test_one_reinforce_step_runs_and_changes_the_parameters():
    torch.manual_seed(0)
    cfg = TrainConfig(preset="tiny", num_jobs=3, rollouts=2)
    net = DecimaNet()
    before = [p.detach().clone() for p in net.parameters()]
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    stats = train_step(net, opt, make_instance(cfg, 5), cfg, torch.Generator().manual_seed(0), 0.05)
    assert stats["net_calls"] > 0 and np.isfinite(stats["loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_shipped_policy_loads_and_the_evaluator_scores_its_schedule_feasible():
    import sysgym.solvers as solvers
    from sysgym.agents.pretrained_job_sched import pretrained
    from sysgym.registry import get_family

    pol = pretrained("job_sched")
    meta = pol.meta
    assert isinstance(meta["config"]["seed"], int) and meta["curve"] and meta["training"]["command"]
    ev = meta["evaluation"]  # the bench's table on the held-out seeds, as `ship` stored it
    assert ev["seeds"] == [1000, 1001, 1002, 1003, 1004] and set(ev["summary"]) >= {"agent", "uwfq", "fair"}
    inst = generate_v1(seed=11, preset="decima", num_jobs=3)
    sol = solvers.get("job_sched.agent").solve(inst)  # no path: the shipped policy, no training
    fam = get_family("job_sched")
    m = fam.evaluate(inst, sol)
    assert m["feasible"] and m[fam.objective] == pytest.approx(sol.objective, rel=1e-9)


def test_job_sched_agent_keeps_the_generic_path_and_names_bad_names():
    import sysgym.solvers as solvers
    from sysgym.agents.pretrained_job_sched import pretrained
    from sysgym.errors import UnknownNameError

    with pytest.raises(UnknownNameError):
        pretrained("nope")
    with pytest.raises(Exception, match="missing|exist|No such|not"):
        solvers.get("job_sched.agent", path="/nonexistent/model.zip")  # the generic loader, not Decima's


def test_the_package_level_pretrained_serves_both_shipped_families():
    import sysgym.agents
    from sysgym.errors import UnknownNameError

    assert type(sysgym.agents.pretrained("job_sched")).__name__ == "DecimaPolicy"
    assert type(sysgym.agents.pretrained("vm_resched")).__name__ == "ShippedPolicy"
    with pytest.raises(UnknownNameError):
        sysgym.agents.pretrained("nope")


def test_shipped_onnx_graph_is_the_shipped_net_and_runs_as_job_sched_agent(tmp_path):
    """The shipped ONNX export gives the torch net's scores (a stale export after retraining fails here), a fresh
    export of a random net too (dynamic stage/edge/job counts, several children per parent: a scatter-add), and
    `job_sched.agent path=<.onnx>` schedules with it, scored feasible by the evaluator."""
    import sysgym.solvers as solvers
    from sysgym.agents.decima import head_limits, limit_mode_of, make_env
    from sysgym.agents.decima_onnx import OnnxDecimaNet, export_onnx
    from sysgym.agents.pretrained_job_sched import PLAIN, SHIPPED, SHIPPED_ONNX, load_decima, pretrained
    from sysgym.registry import get_family

    torch.manual_seed(1)
    fresh = DecimaNet().eval()
    export_onnx(fresh, tmp_path / "fresh.onnx", 10)
    shipped = pretrained("job_sched")
    mode = limit_mode_of(shipped.meta)
    pairs = [(shipped.net, OnnxDecimaNet(SHIPPED_ONNX["job_sched"])), (fresh, OnnxDecimaNet(tmp_path / "fresh.onnx")),
             (load_decima(PLAIN).net, OnnxDecimaNet(PLAIN.with_suffix(".onnx")))]
    for pt in (SHIPPED["job_sched"], PLAIN):  # each export names the weights it was made from
        assert OnnxDecimaNet(pt.with_suffix(".onnx")).meta["source"] == pt.name
    for preset, jobs in (("decima", 3), ("tiny", 4)):
        inst = generate_v1(seed=5, preset=preset, num_jobs=jobs)
        env = make_env(inst, limit_mode=mode)  # the shipped net's env; its actor drives, the others score the states
        obs, _ = env.reset(options={"instance": inst})
        actor = DecimaActor(shipped.net, env, limit_mode=mode)
        for _ in range(25):
            hint = actor._hint(obs)  # the shipped net's hint here (None without one); asked once, act reuses it
            assert (obs["edge_mask"] > 0).sum() > 0
            for net, onnx_net in pairs:
                a_obs = augment(obs, env, hint if net.hint else None)
                width = head_limits(mode, env.num_limits) if net is shipped.net else 10
                with torch.no_grad():
                    ref = net(a_obs, width)
                got = onnx_net(a_obs, width)
                for r, g in zip(ref, got):
                    fin = torch.isfinite(r)
                    assert torch.equal(fin, torch.isfinite(g))
                    assert torch.allclose(r[fin], g[fin], rtol=1e-4, atol=1e-3)
            obs, _, done, _, _ = env.step(actor.act(obs))
            if done:
                break
    inst = generate_v1(seed=11, preset="decima", num_jobs=3)
    sol = solvers.get("job_sched.agent", path=str(SHIPPED_ONNX["job_sched"])).solve(inst)
    assert sol.stats["policy_format"] == "decima-onnx"
    fam = get_family("job_sched")
    m = fam.evaluate(inst, sol)
    assert m["feasible"] and m[fam.objective] == pytest.approx(sol.objective, rel=1e-9)
    torch_sol = solvers.get("job_sched.agent", path=str(SHIPPED["job_sched"])).solve(inst)
    assert sol.objective == pytest.approx(torch_sol.objective, rel=1e-6)  # the same greedy decisions


def test_dagger_labels_the_nets_own_states_with_the_teachers_choices_and_training_runs(tmp_path):
    from sysgym.agents.decima import LabelActor, collect, load_net, make_env, train_reinforce

    torch.manual_seed(0)
    net = DecimaNet()
    inst = generate_v1(seed=2, preset="tiny")
    actor = LabelActor(net, "fair", make_env(inst))
    actor.run(inst)
    # one label per net decision (the stay rule's decisions are not the net's), each allowed by the env's mask
    assert actor.samples and len(actor.samples) == actor.net_calls and all(m[a] for _, m, a, _ in actor.samples)
    data, jct, steps = collect("fair", [inst], net)
    assert len(data) == len(actor.samples) and steps > 0  # greedy: the same rollout again
    cfg = TrainConfig(preset="tiny", num_jobs=3, iterations=0, val_seeds=[900], pretrain="fair",
                      pretrain_instances=1, dagger_rounds=2, dagger_instances=1)
    train_reinforce(cfg, tmp_path / "a", log=lambda m: None)
    meta = __import__("json").loads((tmp_path / "a" / "decima.json").read_text())
    assert [c.get("dagger_round") for c in meta["curve"]] == [None, 1, 2]
    # init: a run starts from another's weights
    cfg2 = TrainConfig(preset="tiny", num_jobs=3, iterations=0, val_seeds=[900], init=str(tmp_path / "a"))
    net2 = train_reinforce(cfg2, tmp_path / "b", log=lambda m: None)
    best, _ = load_net(tmp_path / "a")
    assert all(torch.equal(p, q) for p, q in zip(net2.state_dict().values(), best.state_dict().values()))


def test_the_old_stay_rule_is_the_default_and_reproduces_the_shipped_policys_rollout():
    """Runs and exports that record no stay rule or parallelism levels (the first shipped policy) roll out under
    the old rule ("stage") with 10 levels: the same JCT and net calls as before the option existed (pinned: the
    code at f513680, shipped weights, decima seed 7, 6 jobs); another rule gives another rollout."""
    import sysgym.solvers as solvers
    from sysgym.agents.decima import limit_mode_of, limits_of, make_env, stay_of
    from sysgym.agents.pretrained_job_sched import PLAIN, load_decima

    pol = load_decima(PLAIN)  # the first shipped policy, which records none of the actor's options
    assert "stay" not in pol.meta and "num_limits" not in pol.meta["config"] and pol.net.hint is None
    assert stay_of(pol.meta) == "stage" and limits_of(pol.meta) == 10 and limit_mode_of(pol.meta) == "absolute"
    inst = generate_v1(seed=7, preset="decima", num_jobs=6)
    with torch.no_grad():
        old = DecimaActor(pol.net, make_env(inst), stay="stage").run(inst)
        default = DecimaActor(pol.net, make_env(inst)).run(inst)
        share = DecimaActor(pol.net, make_env(inst), stay="share").run(inst)
    assert old == default
    assert old["net_calls"] == 4442 and old["mean_jct_s"] == pytest.approx(32.59066666666704, rel=1e-12)
    sol = solvers.get("job_sched.agent", path=str(PLAIN)).solve(inst)
    assert sol.stats["net_calls"] == 4442 and sol.objective == pytest.approx(old["mean_jct_s"], rel=1e-12)
    assert share["net_calls"] > old["net_calls"]  # "share" asks the net whenever the job is over its share


def test_bad_stay_rules_and_limits_are_named_errors_before_any_work(tmp_path):
    from sysgym.agents.decima import TeacherActor, collect, main, make_env
    from sysgym.errors import InvalidArgumentError

    inst = generate_v1(seed=2, preset="tiny")
    env = make_env(inst)
    with pytest.raises(InvalidArgumentError, match="stay must be one of"):
        DecimaActor(DecimaNet(), env, stay="always")
    with pytest.raises(InvalidArgumentError, match="stay must be one of"):
        TeacherActor("uwfq", env, stay="")
    with pytest.raises(InvalidArgumentError, match="stay must be one of"):
        collect("uwfq", [inst], stay=None)
    with pytest.raises(InvalidArgumentError, match="stay must be one of"):
        main([str(tmp_path / "x"), 'stay="job"'])
    with pytest.raises(InvalidArgumentError, match="num_limits"):
        TrainConfig(num_limits=0)
    assert not (tmp_path / "x").exists()  # refused before the run folder is made


def test_a_run_records_its_actor_and_job_sched_agent_and_the_onnx_export_follow_it(tmp_path):
    """A run trained with stay="share" and 100 levels records both in decima.json; `job_sched.agent` on the run
    and on its ONNX export rolls out under them (the same decisions as the actor built by hand)."""
    import sysgym.solvers as solvers
    from sysgym.agents.decima import load_net, make_env, train_reinforce
    from sysgym.agents.decima_onnx import OnnxDecimaNet
    from sysgym.agents.decima_onnx import main as export_main

    cfg = TrainConfig(preset="tiny", num_jobs=3, iterations=1, rollouts=2, eval_every=1, val_seeds=[900],
                      stay="share", num_limits=100)
    train_reinforce(cfg, tmp_path / "r", log=lambda m: None)
    net, meta = load_net(tmp_path / "r")
    assert meta["stay"] == "share" and meta["num_limits"] == 100 and meta["config"]["stay"] == "share"
    inst = generate_v1(seed=4, preset="tiny", num_jobs=4)
    env = make_env(inst, 100)
    with torch.no_grad():
        ref = DecimaActor(net, env, stay="share").run(inst)
    assert env.num_limits == 100
    sol = solvers.get("job_sched.agent", path=str(tmp_path / "r")).solve(inst)
    assert sol.stats["net_calls"] == ref["net_calls"] and sol.objective == pytest.approx(ref["mean_jct_s"])
    export_main([str(tmp_path / "r" / "decima.pt"), str(tmp_path / "r.onnx")])
    onnx_meta = OnnxDecimaNet(tmp_path / "r.onnx").meta
    assert onnx_meta["stay"] == "share" and onnx_meta["num_limits"] == 100
    sol2 = solvers.get("job_sched.agent", path=str(tmp_path / "r.onnx")).solve(inst)
    assert sol2.stats["net_calls"] == ref["net_calls"] and sol2.objective == pytest.approx(ref["mean_jct_s"], rel=1e-6)


def _widest_runnable_node(env):
    """The node of the runnable stage with the most unlaunched tasks."""
    sim = env.sim
    return max((n for n, s in env._node_stage.items() if s in sim.ready),
               key=lambda n: (sim.end_task[env._node_stage[n]] - sim.next_task[env._node_stage[n]], -n))


def test_relative_limits_send_exactly_the_chosen_number_of_executors_and_mask_duplicates():
    """In "relative" mode choice k adds min(RELATIVE_CHOICES[k], free, unlaunched tasks) executors to the
    stage's job (ALL_FREE: every free one), through the env's one-level-per-executor action; choices that would
    send as many as a smaller one are masked; a teacher's count maps to the nearest allowed choice."""
    from sysgym.agents.decima import (
        ALL_FREE,
        RELATIVE_CHOICES,
        make_env,
        relative_action,
        relative_choice,
        relative_counts,
        relative_mask,
    )

    inst = generate_v1(seed=6, preset="decima", num_jobs=4)  # its widest runnable stage at t=0: 58 tasks
    env = make_env(inst, 10, "relative")
    assert env.num_limits == env.E == inst.num_executors  # one level per executor, whatever num_limits says
    env.reset()
    node = _widest_runnable_node(env)
    s = env._node_stage[node]
    free, unl = env.sim.free_count, env.sim.end_task[s] - env.sim.next_task[s]
    counts = relative_counts(env, s)
    expect = [min(free if c == ALL_FREE else c, free, unl) for c in RELATIVE_CHOICES]
    assert counts.tolist() == expect and expect[:4] == [1, 2, 3, 4] and unl < free  # a cap below the free E
    assert relative_mask(counts).tolist() == [c not in expect[:k] for k, c in enumerate(expect)]
    assert max(expect) == unl and sum(relative_mask(counts)) < len(RELATIVE_CHOICES)  # duplicates masked
    for k in range(len(RELATIVE_CHOICES)):
        env.reset()
        a = relative_action(env, node, k)
        assert env.action_masks()[a]
        _, _, _, _, info = env.step(a)
        assert info["executors_sent"] == expect[k] and info["stage"] == s
    # counts without a choice round to the nearest (ties: the smaller): 5 -> 4, 7 -> 6, 50 -> 48, 0 -> 1
    env.reset()
    for want, got in ((5, 4), (7, 6), (50, 48), (0, 1), (1, 1), (64, 64)):
        k, m = relative_choice(env, node, want)
        assert RELATIVE_CHOICES[k] == got and m[k]
    # after sending some, the job runs more executors: the next choice still adds (not caps) executors
    env.reset()
    env.step(relative_action(env, node, RELATIVE_CHOICES.index(8)))
    running = env.sim.job_running[env.sim.stage_job[s]]
    if s in env.sim.ready and env.sim.free_count >= 3:
        _, _, _, _, info = env.step(relative_action(env, node, RELATIVE_CHOICES.index(3)))
        assert info["executors_sent"] == 3 and env.sim.job_running[env.sim.stage_job[s]] == running + 3
    # a stage with few tasks left: choices above its task count are duplicates, masked
    env.reset()
    small = next((n for n, st in env._node_stage.items() if st in env.sim.ready
                  and 1 < env.sim.end_task[st] - env.sim.next_task[st] < 20), None)
    if small is not None:
        st = env._node_stage[small]
        c = relative_counts(env, st)
        m = relative_mask(c)
        assert c.max() == env.sim.end_task[st] - env.sim.next_task[st]
        assert sorted(set(c.tolist())) == c[m].tolist()  # one allowed choice per distinct count


def test_relative_actor_rolls_out_valid_actions_and_refuses_a_coarse_env():
    from sysgym.agents.decima import TeacherActor, make_env
    from sysgym.errors import InvalidArgumentError

    inst = generate_v1(seed=2, preset="tiny")
    with pytest.raises(InvalidArgumentError, match="one level per executor|num_limits = executors"):
        DecimaActor(DecimaNet(), JobSchedEnv(instance=inst, allow_wait=True, num_limits=10),  # E = 2 executors
                    limit_mode="relative")
    with pytest.raises(InvalidArgumentError, match="limit_mode must be one of"):
        TrainConfig(limit_mode="rel")
    torch.manual_seed(0)
    env = make_env(inst, limit_mode="relative")
    obs, _ = env.reset()
    actor = DecimaActor(DecimaNet(), env, greedy=False, generator=torch.Generator().manual_seed(0),
                        limit_mode="relative", stay="none")
    _steps_are_allowed(actor, env, obs, 40)
    teacher = TeacherActor("uwfq", make_env(inst, limit_mode="relative"), stay="share", limit_mode="relative")
    teacher.run(inst)
    assert teacher.samples
    for _, mask, a, rel in teacher.samples:  # every label is an allowed relative choice executed as such
        assert mask[a]
        if rel is not None:
            node, k, m = rel
            assert m[k] and a // teacher.env.num_limits == node


def test_absolute_limits_stay_the_default_everywhere():
    from sysgym.agents.decima import LEGACY_LIMIT_MODE, head_limits, limit_mode_of, make_env
    from sysgym.agents.pretrained_job_sched import PLAIN, load_decima

    assert LEGACY_LIMIT_MODE == "absolute" and TrainConfig().limit_mode == "absolute"
    inst = generate_v1(seed=2, preset="tiny")
    env = make_env(inst)
    assert env.num_limits == 10 and DecimaActor(DecimaNet(), env).limit_mode == "absolute"
    assert limit_mode_of({}) == "absolute" and limit_mode_of({"config": {"stay": "share"}}) == "absolute"
    assert head_limits("absolute", 10) == 10
    pol = load_decima(PLAIN)  # the first shipped policy records no mode
    assert "limit_mode" not in pol.meta and "limit_mode" not in pol.meta["config"]
    assert limit_mode_of(pol.meta) == "absolute"


def test_a_relative_run_records_its_limit_mode_and_job_sched_agent_and_onnx_follow_it(tmp_path):
    """A run trained (cloning uwfq, one REINFORCE step) in "relative" mode records it in decima.json and its
    ONNX export; `job_sched.agent` on the run and on the export rolls out as the hand-built relative actor."""
    import json

    import sysgym.solvers as solvers
    from sysgym.agents.decima import RELATIVE_CHOICES, load_net, make_env, train_reinforce
    from sysgym.agents.decima_onnx import OnnxDecimaNet
    from sysgym.agents.decima_onnx import main as export_main

    cfg = TrainConfig(preset="small", num_jobs=3, iterations=1, rollouts=2, eval_every=1, val_seeds=[900],
                      stay="share", limit_mode="relative", pretrain="uwfq", pretrain_instances=1)
    train_reinforce(cfg, tmp_path / "r", log=lambda m: None)
    net, meta = load_net(tmp_path / "r")
    assert meta["limit_mode"] == "relative" and meta["config"]["limit_mode"] == "relative"
    assert json.loads((tmp_path / "r" / "decima.json").read_text())["limit_mode"] == "relative"
    inst = generate_v1(seed=4, preset="small", num_jobs=4)  # 10 executors
    env = make_env(inst, limit_mode="relative")
    with torch.no_grad():
        ref = DecimaActor(net, env, stay="share", limit_mode="relative").run(inst)
    sol = solvers.get("job_sched.agent", path=str(tmp_path / "r")).solve(inst)
    assert sol.stats["net_calls"] == ref["net_calls"] and sol.objective == pytest.approx(ref["mean_jct_s"])
    export_main([str(tmp_path / "r" / "decima.pt"), str(tmp_path / "r.onnx")])
    onnx_net = OnnxDecimaNet(tmp_path / "r.onnx")
    assert onnx_net.meta["limit_mode"] == "relative" and onnx_net.num_limits == len(RELATIVE_CHOICES)
    sol2 = solvers.get("job_sched.agent", path=str(tmp_path / "r.onnx")).solve(inst)
    assert sol2.stats["net_calls"] == ref["net_calls"] and sol2.objective == pytest.approx(ref["mean_jct_s"], rel=1e-6)


def test_hint_columns_carry_the_heuristics_choice_asked_once_per_decision():
    """With hint="uwfq" each cloning sample's extra columns mark the node uwfq sends executors to (and how many
    / E), or the wait; uwfq, teacher and hint at once, is asked exactly once per decision."""
    from sysgym.agents.decima import HINT_NODE, NODE_IN, TeacherActor, make_env

    inst = generate_v1(seed=2, preset="small", num_jobs=4)
    env = make_env(inst, limit_mode="relative")
    actor = TeacherActor("uwfq", env, stay="none", limit_mode="relative", hint="uwfq")
    assert actor.hinter is actor.agent
    asked = []
    inner = actor.agent.agent.act
    actor.agent.agent.act = lambda obs: asked.append(1) or inner(obs)
    actor.run(inst)
    assert actor.samples and len(asked) == len(actor.samples)
    for obs, _, a, _ in actor.samples:
        nf = obs["node_features"]
        assert nf.shape[1] == NODE_IN + HINT_NODE
        marked = np.flatnonzero(nf[:, NODE_IN])
        if a == env.wait_action:
            assert obs["global"][-1] == 1.0 and len(marked) == 0
        else:  # the label is uwfq's node; the count column is uwfq's executors / E
            assert obs["global"][-1] == 0.0 and list(marked) == [a // env.num_limits]
            assert 0 < nf[marked[0], NODE_IN + 1] <= 1


def test_a_hinted_net_trains_records_its_hint_and_rolls_out_the_same_through_the_agent_and_onnx(tmp_path):
    import sysgym.solvers as solvers
    from sysgym.agents.decima import load_net, make_env, train_reinforce
    from sysgym.agents.decima_onnx import OnnxDecimaNet
    from sysgym.agents.decima_onnx import main as export_main

    cfg = TrainConfig(preset="tiny", num_jobs=3, iterations=1, rollouts=2, eval_every=1, val_seeds=[900],
                      stay="share", limit_mode="relative", pretrain="uwfq", pretrain_instances=1, hint="uwfq")
    train_reinforce(cfg, tmp_path / "r", log=lambda m: None)
    net, meta = load_net(tmp_path / "r")
    assert net.hint == "uwfq" and meta["net"]["hint"] == "uwfq"
    inst = generate_v1(seed=4, preset="tiny", num_jobs=4)
    env = make_env(inst, limit_mode="relative")
    with torch.no_grad():
        actor = DecimaActor(net, env, stay="share", limit_mode="relative")
        ref = actor.run(inst)
    assert actor.hinter is not None and ref["net_calls"] > 0
    sol = solvers.get("job_sched.agent", path=str(tmp_path / "r")).solve(inst)
    assert sol.stats["net_calls"] == ref["net_calls"] and sol.objective == pytest.approx(ref["mean_jct_s"])
    export_main([str(tmp_path / "r" / "decima.pt"), str(tmp_path / "r.onnx")])
    assert OnnxDecimaNet(tmp_path / "r.onnx").hint == "uwfq"
    # shipping it (to a temporary target): weights, the record computed from its curve, the ONNX export
    from sysgym.agents.pretrained_job_sched import load_decima, ship

    (tmp_path / "ev.json").write_text('{"seeds": [1000], "summary": {"agent": 1.0}}')
    target = ship(tmp_path / "r", tmp_path / "ev.json", "cmd", "here", target=tmp_path / "s" / "x_decima.pt")
    shipped = load_decima(target)
    kept = shipped.meta["training"]["run"]["kept"]
    assert kept["val_mean_jct_s"] == shipped.meta["best_val_mean_jct_s"] and shipped.meta["evaluation"]["seeds"]
    assert load_decima(target.with_suffix(".onnx")).net.hint == "uwfq"
    sol2 = solvers.get("job_sched.agent", path=str(tmp_path / "r.onnx")).solve(inst)
    assert sol2.stats["net_calls"] == ref["net_calls"] and sol2.objective == pytest.approx(ref["mean_jct_s"], rel=1e-6)


def test_a_dagger_labeller_shares_its_teacher_with_the_nets_hint():
    """LabelActor for a net hinted by its own teacher builds one uwfq shadow, the teacher's (no spare)."""
    from sysgym.agents.decima import DecimaNet, LabelActor, Shadow, make_env

    env = make_env(generate_v1(seed=2, preset="tiny", num_jobs=3), limit_mode="relative")
    built = []
    init = Shadow.__init__
    try:
        Shadow.__init__ = lambda self, *a: built.append(a[0]) or init(self, *a)
        actor = LabelActor(DecimaNet(hint="uwfq"), "uwfq", env, stay="share", limit_mode="relative")
    finally:
        Shadow.__init__ = init
    assert actor.hinter is actor.agent and built == ["uwfq"]


def test_ship_names_an_absolute_warm_start_relative_to_the_folder_holding_the_runs(tmp_path):
    from sysgym.agents.pretrained_job_sched import _portable

    (tmp_path / "runs" / "rl").mkdir(parents=True)
    meta = {"config": {"init": str(tmp_path / "runs" / "bc"), "lr": 1.0}, "curve": []}
    out = _portable(meta, tmp_path / "runs" / "rl")
    assert out["config"] == {"init": "runs/bc", "lr": 1.0} and meta["config"]["init"].startswith(str(tmp_path))
    for init in ("runs/bc", None):  # as given on a command line, or none: unchanged
        assert _portable({"config": {"init": init}}, tmp_path / "runs" / "rl")["config"]["init"] == init


@pytest.mark.parametrize("hint", ["cpsat", "agent", "nosuch", "job_sched.uwfq"])
def test_a_hint_that_is_not_a_heuristic_policy_is_refused(hint):
    from sysgym.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="uwfq"):  # the message lists the heuristics
        TrainConfig(hint=hint)


def test_a_fraction_of_decisions_keeps_its_graph_and_the_step_still_learns():
    """grad_fraction=0.3: about 30 % of the recorded decisions carry a log-probability (the rest only their
    rewards), and one REINFORCE step still changes the parameters; 0 and 1.5 are refused."""
    from sysgym.agents.decima import make_env
    from sysgym.errors import InvalidArgumentError

    inst = generate_v1(seed=3, preset="small", num_jobs=4)
    torch.manual_seed(0)
    net = DecimaNet()
    actor = DecimaActor(net, make_env(inst), greedy=False, generator=torch.Generator().manual_seed(1), record=True,
                        grad_fraction=0.3)
    actor.run(inst)
    kept = sum(d.logp is not None for d in actor.decisions)
    assert len(actor.decisions) > 100 and 0.15 < kept / len(actor.decisions) < 0.45
    assert all((d.logp is None) == (d.entropy is None) for d in actor.decisions)
    cfg = TrainConfig(preset="tiny", num_jobs=3, rollouts=2, grad_fraction=0.5)
    before = [p.detach().clone() for p in net.parameters()]
    stats = train_step(net, torch.optim.Adam(net.parameters(), lr=1e-3), make_instance(cfg, 5), cfg,
                       torch.Generator().manual_seed(0), 0.05)
    assert np.isfinite(stats["loss"]) and any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
    for bad in (0, 1.5, True):
        with pytest.raises(InvalidArgumentError):
            TrainConfig(grad_fraction=bad)


def test_the_readme_table_is_the_shipped_policies_evaluation():
    """The README's held-out rows for the shipped and the plain policy are their JSON's bench figures."""
    import json
    import re
    from pathlib import Path

    from sysgym.agents.pretrained_job_sched import PLAIN, SHIPPED

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for label, path in (("Decima GNN + uwfq hint (`job_sched.agent`, shipped)", SHIPPED["job_sched"]),
                        ("Decima GNN, Decima's inputs only (`job_sched_plain_decima.pt`)", PLAIN)):
        row = next(line for line in readme.splitlines() if line.startswith(f"| {label} |"))
        cells = [float(c) for c in re.findall(r"\| ([0-9.]+)", row)]
        ev = json.loads(path.with_suffix(".json").read_text())["evaluation"]
        per_seed = ev["per_seed"]["agent"] if "per_seed" in ev else ev["per_seed_jct_s"]["agent"]
        mean = ev["summary"]["agent"] if "summary" in ev else ev["mean_jct_s"]["agent"]
        assert cells == [round(v, 2) for v in per_seed + [mean]]


def test_ship_and_the_trainers_command_line_name_bad_input_before_writing_anything(tmp_path):
    """A folder that is not a Decima run, an evaluation file that is not JSON or not the bench's, a warm start
    that is no run: named errors, and the target is not created. The trainer's command line: a key that is no
    field, an argument without '=', an unquoted string: named errors before the output folder exists."""
    from sysgym.agents.decima import main
    from sysgym.agents.pretrained_job_sched import PLAIN, ship
    from sysgym.errors import InvalidArgumentError, UnknownNameError

    run = tmp_path / "run"
    run.mkdir()
    for f in ("pt", "json"):
        (run / f"decima.{f}").write_bytes(PLAIN.with_suffix(f".{f}").read_bytes())
    good = tmp_path / "ev.json"
    good.write_text('{"seeds": [1000], "summary": {}}')
    bad_json, other = tmp_path / "bad.json", tmp_path / "other.json"
    bad_json.write_text("{not json")
    other.write_text('{"x": 1}')
    target = tmp_path / "out" / "x_decima.pt"
    for kw, match in ((dict(run=tmp_path, evaluation=good), "not a Decima run"),
                      (dict(run=run, evaluation=bad_json), "not a readable JSON"),
                      (dict(run=run, evaluation=tmp_path / "missing.json"), "not a readable JSON"),
                      (dict(run=run, evaluation=other), "needs 'seeds' and 'summary'"),
                      (dict(run=run, evaluation=good, warm_start=tmp_path), "warm start")):
        with pytest.raises(InvalidArgumentError, match=match):
            ship(command="c", machine="m", target=target, **kw)
        assert not target.parent.exists()
    out = tmp_path / "train"
    for argv, err, match in (([str(out), "stays=1"], UnknownNameError, "grad_fraction"),
                             ([str(out), "stay"], InvalidArgumentError, "key=value"),
                             ([str(out), "stay=share"], InvalidArgumentError, "must be JSON"),
                             ([str(out), 'stay="always"'], InvalidArgumentError, "stay must be")):
        with pytest.raises(err, match=match):
            main(argv)
        assert not out.exists()


@pytest.mark.parametrize("mode", [dict(), dict(stay="share", limit_mode="relative", hint="uwfq")])
def test_a_replayed_decision_has_the_actors_own_log_probability_and_entropy(mode):
    """A worker's rollout keeps each kept decision's inputs (Replay) instead of its graph; recomputing it with
    the same net gives exactly what the actor computed live, decision by decision, waits included."""
    from sysgym.agents.decima import make_env, replayed

    inst = generate_v1(seed=3, preset="small", num_jobs=4)
    torch.manual_seed(0)
    net = DecimaNet(hint=mode.get("hint"))
    limit_mode = mode.get("limit_mode", "absolute")
    runs = []
    for replay in (False, True):
        actor = DecimaActor(net, make_env(inst, limit_mode=limit_mode), greedy=False,
                            generator=torch.Generator().manual_seed(1), record=True, grad_fraction=0.5,
                            stay=mode.get("stay", "stage"), limit_mode=limit_mode, replay=replay)
        with torch.set_grad_enabled(not replay):
            actor.run(inst)
        runs.append(actor.decisions)
    live, rep = runs
    assert len(live) == len(rep) > 50 and [d.time_s for d in live] == [d.time_s for d in rep]
    kept = [(a, b) for a, b in zip(live, rep) if a.logp is not None]
    assert kept and all(b.replay is not None and b.logp is None for _, b in kept)
    assert all((a.logp is None) == (b.replay is None) for a, b in zip(live, rep))
    assert any(b.replay.level is None for _, b in kept) or not net.hint  # a wait was kept too (hinted run)
    for a, b in kept:
        logp, ent = replayed(net, b.replay)
        assert logp.requires_grad and torch.equal(logp.detach(), a.logp.detach())
        assert torch.equal(ent.detach(), a.entropy.detach())


def test_reinforce_rollouts_in_worker_processes_give_the_same_update_as_in_one_process():
    """workers > 1: each rollout has its own seeded generator and is replayed here, so a step whose rollouts ran
    in two spawned processes changes the parameters exactly as the same step run in this process; and it still
    learns (the parameters move)."""
    from sysgym.agents.decima import _pool

    cfg = TrainConfig(preset="tiny", num_jobs=3, rollouts=2, workers=2, grad_fraction=0.5, stay="share",
                      limit_mode="relative", hint="uwfq")
    inst = make_instance(cfg, 5)
    after = []
    for parallel in (False, True):
        torch.manual_seed(0)
        net = DecimaNet(hint="uwfq")
        before = [p.detach().clone() for p in net.parameters()]
        pool = _pool(2, 2, "test") if parallel else None
        assert (pool is not None) == parallel
        try:
            stats = train_step(net, torch.optim.Adam(net.parameters(), lr=1e-3), inst, cfg,
                               torch.Generator().manual_seed(0), 0.05, pool)
        finally:
            if pool is not None:
                pool.shutdown()
        assert stats["net_calls"] > 0 and np.isfinite(stats["loss"])
        assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
        after.append([p.detach().clone() for p in net.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*after))


def test_the_nets_direct_mlp_calls_are_its_modules_numbers_and_gradients():
    """core calls each MLP's operations directly (`_run`, no nn.Module call overhead); on the shipped net's
    weights they give its modules' outputs and gradients bit for bit, for 2-D and 3-D inputs."""
    from sysgym.agents.decima import _run, load_net

    net, _ = load_net("agents/weights/job_sched_decima.pt")
    gen = torch.Generator().manual_seed(0)
    for name in ("prep", "f", "g", "job", "glob", "node_score", "limit_score", "wait_score"):
        mlp = getattr(net, name)
        for shape in ((7,), (5, 7), (3, 4, 7)):
            x = torch.randn(*shape[:-1], mlp[0].in_features, generator=gen, requires_grad=True)
            a, b = mlp(x), _run(mlp, x)
            assert torch.equal(a, b), name
            ga = torch.autograd.grad(a.sum(), [x, *mlp.parameters()])
            gb = torch.autograd.grad(b.sum(), [x, *mlp.parameters()])
            assert all(torch.equal(u, v) for u, v in zip(ga, gb)), name
