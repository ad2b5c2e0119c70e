"""The rollout-improved cloning teacher (sysgym.agents.decima_lookahead) and its TrainConfig options."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sysgym.agents.decima import (
    DecimaNet,
    LabelActor,
    TeacherActor,
    TrainConfig,
    _teacher_label,
    collect,
    load_net,
    make_env,
    train_reinforce,
)
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
                                 dict(lookahead_every=5, stay="none", pretrain="fair", limit_mode="relative")])
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


def test_dagger_with_the_lookahead_teacher_looks_wherever_the_net_departs_from_the_heuristic():
    """An untrained net departs from uwfq often; with periodic looks off (every 10**6), the teacher looks exactly at
    the departures (the net's choice rounded like uwfq's to the relative head differs), nowhere else, and each
    label is the best candidate of a look that included the net's own choice."""
    torch.manual_seed(0)
    inst = generate_v1(seed=4, preset="tiny", num_jobs=3)
    env = make_env(inst, limit_mode="relative")
    actor = LabelActor(DecimaNet(hint="uwfq"), "uwfq", env, "none", "relative", lookahead_every=10 ** 6)
    look, inner, seen = actor.agent, actor.agent.act, []
    values = []
    value = look.value
    look.value = lambda a: values.append(a) or value(a)

    def act(obs, also=None):
        a0 = look.base.act(obs)
        departs = also != _teacher_label(env, a0, "relative")[0]
        n, v = look.looks, len(values)
        a = inner(obs, also=also)
        seen.append((departs, look.looks > n, also in values[v:], a == also))
        return a

    look.act = act
    with torch.no_grad():
        actor.run(inst)
    assert len(seen) == len(actor.samples) == len(look.looked) == look.asked
    departures = sum(d for d, *_ in seen)
    assert departures > 0 and look.disagreed == departures == look.looks == sum(look.looked)
    for departs, looked, scored, _ in seen:
        assert looked == departs and scored == departs
    assert 0 <= look.upheld <= look.changed <= look.looks
    assert look.upheld <= sum(departs and same for departs, _, _, same in seen)


def test_dagger_samples_are_the_same_in_one_process_and_in_two():
    torch.manual_seed(1)
    net = DecimaNet(hint="uwfq")
    insts = [generate_v1(seed=s, preset="tiny", num_jobs=3) for s in (7, 8)]
    kw = dict(stay="none", limit_mode="relative", lookahead_every=4, lookahead_weight=2)
    stats1, stats2 = [], []
    one = collect("uwfq", insts, net, workers=1, teacher_stats=stats1, **kw)
    two = collect("uwfq", insts, net, workers=2, teacher_stats=stats2, **kw)
    assert one[1] == two[1] and one[2] == two[2] and stats1 == stats2
    assert len(one[0]) == sum(s["samples"] + s["looks"] for s in stats1)
    for x, y in zip(one[0], two[0]):
        assert x[2] == y[2] and all(np.array_equal(x[0][k], y[0][k]) for k in x[0])


def test_a_dagger_run_with_the_lookahead_teacher_records_its_rounds(tmp_path):
    cfg = TrainConfig(preset="tiny", num_jobs=3, iterations=0, val_seeds=[900], pretrain="uwfq", hint="uwfq",
                      stay="none", limit_mode="relative", lookahead_every=2, pretrain_instances=1, dagger_rounds=1,
                      dagger_instances=1)
    train_reinforce(cfg, tmp_path / "r", log=lambda m: None)
    meta = json.loads((tmp_path / "r" / "decima.json").read_text())
    ((rnd,),) = [[r for r in meta["dagger"]]]
    (ep,) = rnd["episodes"]
    assert rnd["round"] == 1 and ep["teacher"] == "uwfq+lookahead/2"
    assert ep["disagreed"] <= ep["looks"] <= ep["asked"] and ep["upheld"] <= ep["changed"] <= ep["looks"]
    assert [c.get("dagger_round") for c in meta["curve"]] == [None, 1]


def test_a_resampled_future_keeps_what_was_observed_and_leaves_the_instance_alone():
    import copy

    from sysgym.agents.decima_lookahead import _STATIC, resample_future
    from sysgym.envs.job_sched.simulator import Simulator, drive, make_policy

    inst = generate_v1(seed=11, preset="small", num_jobs=8)
    sim = Simulator(inst)
    pol = make_policy("uwfq")
    pol.reset(sim)
    sim.listeners.append(pol)
    while sim.next_arrival < 3 or not any(b - a > 1 for a, b in zip(sim.next_task, sim.end_task)):
        while sim.free_count and sim.ready and (c := pol.pick(sim)) is not None:
            sim.assign(*c)
        assert sim.step_event()
    dur0, arr0 = list(sim.dur), list(sim.arrival)
    s2, p2 = copy.deepcopy((sim, pol), {id(getattr(sim, k)): getattr(sim, k) for k in _STATIC})
    resample_future(s2, np.random.default_rng(0))
    assert sim.dur == dur0 and sim.arrival == arr0  # the original (and the shared lists) untouched
    moved = 0
    for a, b, e in zip(sim.next_task, sim.end_task, np.diff(inst.stage_task_ptr)):
        start = b - e
        assert s2.dur[start:a] == dur0[start:a]  # launched tasks keep their durations
        assert sorted(s2.dur[a:b]) == sorted(dur0[a:b])  # the rest: the same durations, another order
        moved += s2.dur[a:b] != dur0[a:b]
    assert moved > 0
    na = sim.next_arrival
    assert [s2.arrival[j] for j in sim.order[:na]] == [arr0[j] for j in sim.order[:na]]
    future = [s2.arrival[j] for j in sim.order[na:]]
    assert future and all(t >= sim.now for t in future) and future == sorted(future) and \
        future != [arr0[j] for j in sim.order[na:]]
    assert drive(s2, p2).finished  # the resampled copy runs to the end


def test_label_stability_counts_agreement_with_the_true_futures_label():
    from sysgym.agents.decima_lookahead import label_stability

    st = label_stability([(0, [0, 1]), (2, [2, 2])], [4, 4])
    assert st == {"looks": 2, "same_best": 0.75, "same_change": 0.75, "changed_true": 0.5,
                  "changed_resampled": 0.75, "chance": 0.25}


def test_a_probing_teacher_records_one_best_per_resampled_future_at_every_look():
    inst = generate_v1(seed=3, preset="small", num_jobs=4)
    env = make_env(inst, limit_mode="relative")
    actor = TeacherActor("uwfq", env, "none", "relative", hint="uwfq", lookahead_every=3)
    actor.agent.probe = 2
    actor.run(inst)
    look = actor.agent
    assert look.looks > 0 and len(look.probes) == len(look.sizes) == look.looks
    for (true, bests), n in zip(look.probes, look.sizes):
        assert len(bests) == 2 and 0 <= true < n and all(0 <= b < n for b in bests)


def test_a_teacher_scoring_resampled_futures_takes_the_candidate_with_the_least_mean():
    inst = generate_v1(seed=3, preset="small", num_jobs=4)
    env = make_env(inst, limit_mode="relative")
    actor = TeacherActor("uwfq", env, "none", "relative", hint="uwfq", lookahead_every=4)
    look = actor.agent
    look.futures = 2
    assert look.name == "uwfq+lookahead/4/futures2"
    inner, calls = look.value, []
    look.value = lambda a, future=None: calls.append((look.asked, a, future, v := inner(a, future))) or v
    actor.run(inst)
    assert look.looks > 0 and {f for *_, f, _ in calls} == {0, 1}  # never the instance's own future
    by_look: dict[int, dict[int, list[float]]] = {}
    for asked, a, _, v in calls:
        by_look.setdefault(asked, {}).setdefault(a, []).append(v)
    assert len(by_look) == look.looks
    changed = 0
    for cands in by_look.values():
        means = {a: float(np.mean(v)) for a, v in cands.items()}
        first = next(iter(means))  # uwfq's own action
        changed += min(means.values()) < means[first] - 1e-9
    assert changed == look.changed


def _children(pid: int) -> list[int]:
    """Live `collect` workers (multiprocessing spawn_main) whose parent is `pid`, from /proc."""
    import os

    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()
            cmd = open(f"/proc/{d}/cmdline", "rb").read()
        except OSError:
            continue
        if int(stat[1]) == pid and stat[0] != "Z" and b"spawn_main" in cmd:
            out.append(int(d))
    return out


def _alive(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self"), reason="reads /proc (Linux)")
def test_a_killed_run_takes_its_worker_processes_with_it(tmp_path):
    """collect's workers each hold a whole episode; when the run that started them is killed they exit too,
    instead of keeping the cores busy until their episodes end."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "run.py"
    script.write_text("from sysgym.agents.decima import collect\n"
                      "from sysgym.envs.job_sched.generator import generate_v1\n"
                      "if __name__ == '__main__':\n"
                      "    insts = [generate_v1(seed=s, preset='decima', num_jobs=20) for s in (1, 2)]\n"
                      "    collect('uwfq', insts, stay='none', limit_mode='relative', hint='uwfq', lookahead_every=1,"
                      " workers=2)\n")
    proc = subprocess.Popen([sys.executable, str(script)])
    workers: list[int] = []
    try:
        deadline = time.time() + 120
        while len(workers) < 2 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.5)
            workers = _children(proc.pid)
        assert len(workers) == 2, "the run did not start its two workers"
        time.sleep(3)  # inside their episodes
        assert all(_alive(w) for w in workers)
        proc.kill()
        proc.wait()
        deadline = time.time() + 20
        while any(_alive(w) for w in workers) and time.time() < deadline:
            time.sleep(0.2)
        assert not any(_alive(w) for w in workers)
    finally:
        if proc.poll() is None:
            proc.kill()
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)


@pytest.mark.parametrize("meta", [{}, {"mean_interarrival_s": 0.0}, {"mean_interarrival_s": float("nan")},
                                  {"mean_interarrival_s": "25"}])
def test_resampling_the_future_of_an_instance_without_its_arrival_rate_is_refused_by_name(meta):
    import dataclasses

    from sysgym.agents.decima_lookahead import resample_future
    from sysgym.envs.job_sched.simulator import Simulator
    from sysgym.errors import InvalidArgumentError

    inst = generate_v1(seed=11, preset="small", num_jobs=8)
    sim = Simulator(dataclasses.replace(inst, meta=meta))
    assert sim.next_arrival < len(sim.order)  # jobs still to come
    arrival = list(sim.arrival)
    with pytest.raises(InvalidArgumentError, match="mean_interarrival_s"):
        resample_future(sim, np.random.default_rng(0))
    assert sim.arrival == arrival


def test_workers_from_a_script_read_on_standard_input_run_in_process_with_a_warning():
    """spawn re-runs the main script from its file; `python - < script` has none ('<stdin>'), which broke every
    worker (BrokenProcessPool) before. collect now warns and runs the episodes itself: the same samples."""
    import subprocess
    import sys

    script = ("import json\n"
              "from sysgym.agents.decima import collect\n"
              "from sysgym.envs.job_sched.generator import generate_v1\n"
              "insts = [generate_v1(seed=s, preset='tiny', num_jobs=3) for s in (1, 2)]\n"
              "data, jct, steps = collect('uwfq', insts, workers=2)\n"
              "print(json.dumps([len(data), jct, steps]))\n")
    out = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "RuntimeWarning" in out.stderr and "'<stdin>'" in out.stderr
    insts = [generate_v1(seed=s, preset="tiny", num_jobs=3) for s in (1, 2)]
    data, jct, steps = collect("uwfq", insts, workers=1)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [len(data), jct, steps]
