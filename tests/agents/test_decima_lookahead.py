"""The rollout-improved cloning teacher (sysgym.agents.decima_lookahead) and its TrainConfig options."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sysgym.agents.decima import TeacherActor, TrainConfig, collect, load_net, make_env, train_reinforce
from sysgym.envs.job_sched.generator import generate_v1
from sysgym.envs.job_sched.simulator import simulate

torch.set_num_threads(1)


def test_a_look_scores_the_heuristics_own_action_as_the_heuristic_run_and_never_picks_a_worse_one():
    """At the first decision nothing has happened yet, so the rollout of uwfq's own action from the copied state is
    uwfq's whole run (its job-time integral); at every look the action taken is the best candidate, uwfq's on a
    tie, and the copies leave the real episode untouched (its samples match the looks one to one)."""
    inst = generate_v1(seed=3, preset="small", num_jobs=4)
    env = make_env(inst, limit_mode="relative")
    actor = TeacherActor("uwfq", env, "none", "relative", hint="uwfq", lookahead_every=2)
    look = actor.agent
    values = []
    inner = look.value

    def value(a):
        v = inner(a)
        values.append((look.asked, a, v))
        return v

    look.value = value
    obs, _ = env.reset(options={"instance": inst})
    look.every = 1
    a0 = look.base.act(obs)
    assert look.value(a0) == pytest.approx(simulate(inst, "uwfq").extra["area"], rel=1e-12)
    look.every = 2
    values.clear()
    done = False
    while not done:
        a = actor.act(obs)
        obs, _, done, _, _ = env.step(a)
    assert look.looks > 0 and len(look.looked) == len(actor.samples) == look.asked and sum(look.looked) == look.looks
    by_look: dict[int, list] = {}
    for asked, a, v in values:
        by_look.setdefault(asked, []).append((a, v))
    assert len(by_look) == look.looks
    changed = 0
    for cands in by_look.values():  # the first candidate is uwfq's action
        best = min(v for _, v in cands)
        changed += best < cands[0][1] - 1e-9
        assert len({a for a, _ in cands}) == len(cands) > 1  # each candidate once
    assert changed == look.changed and look.gain_s >= 0
    assert actor.hinter is look.base  # the net's hint stays uwfq's own choice


def test_teacher_samples_are_the_same_in_one_process_and_in_two():
    insts = [generate_v1(seed=s, preset="small", num_jobs=3) for s in (5, 6)]
    kw = dict(stay="none", limit_mode="relative", hint="uwfq", lookahead_every=3, lookahead_weight=2)
    stats1, stats2 = [], []
    one = collect("uwfq", insts, workers=1, teacher_stats=stats1, **kw)
    two = collect("uwfq", insts, workers=2, teacher_stats=stats2, **kw)
    assert one[1] == two[1] and one[2] == two[2] and stats1 == stats2
    assert len(one[0]) == len(two[0]) == sum(s["samples"] + s["looks"] for s in stats1)  # looked ones twice
    for x, y in zip(one[0], two[0]):
        assert x[2] == y[2] and all(np.array_equal(x[0][k], y[0][k]) for k in x[0])


@pytest.mark.parametrize("bad", [dict(lookahead_every=5, stay="share", pretrain="uwfq", limit_mode="relative"),
                                 dict(lookahead_every=5, stay="none", limit_mode="relative"),
                                 dict(lookahead_every=5, stay="none", pretrain="uwfq"),
                                 dict(lookahead_every=-1), dict(lookahead_every=True), dict(lookahead_weight=0),
                                 dict(workers=0), dict(workers=1.5),
                                 dict(lookahead_every=5, stay="none", pretrain="fair", limit_mode="relative"),
                                 dict(lookahead_every=5, stay="none", pretrain="uwfq", limit_mode="relative",
                                      dagger_rounds=1)])
def test_lookahead_options_that_cannot_work_are_refused(bad):
    from sysgym.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError):
        TrainConfig(**bad)


def test_a_run_with_the_lookahead_teacher_records_what_the_teacher_did(tmp_path):
    cfg = TrainConfig(preset="tiny", num_jobs=3, iterations=0, val_seeds=[900], pretrain="uwfq", hint="uwfq",
                      stay="none", limit_mode="relative", lookahead_every=2, lookahead_weight=3, pretrain_instances=1)
    train_reinforce(cfg, tmp_path / "r", log=lambda m: None)
    meta = json.loads((tmp_path / "r" / "decima.json").read_text())
    (ep,) = meta["pretrain"]["teacher_episodes"]
    assert ep["teacher"] == "uwfq+lookahead/2" and 0 < ep["looks"] <= ep["asked"] // 2 and ep["changed"] <= ep["looks"]
    assert meta["pretrain"]["samples"] == ep["samples"] + 2 * ep["looks"]  # looked samples count 3 times
    net, _ = load_net(tmp_path / "r")
    assert net.hint == "uwfq"
