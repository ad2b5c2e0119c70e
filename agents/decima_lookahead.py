"""A cloning teacher that improves on its heuristic by rollouts (`TrainConfig.lookahead_every`).

Bertsekas's rollout algorithm (Bertsekas, Tsitsiklis & Wu, J. Heuristics 1997; "Rollout, Policy Iteration and
Distributed RL", 2020): at a state, try each candidate action once, follow the base heuristic to the end of the
episode from each, and take the action whose rollout ends with the least total job time. In a deterministic
simulator every rollout of a candidate shares the same future arrivals and task durations (common random
numbers), so the comparison is exact for that training instance and one rollout per candidate suffices; taking
the best candidate and then the base policy is never worse than the base policy from that state. It is the
Monte-Carlo policy-improvement step of approximate policy iteration, and the teacher is only ever run on
training instances: the net it teaches sees Decima's observation (and the hint) and nothing of the future.

`Lookahead` wraps the teacher's `Shadow` (the heuristic beside the actor): every `every`-th time it is asked
(deterministic, so a run is reproducible), it copies the simulator and the heuristic's state and scores:

* the heuristic's own action;
* the wait (when the env allows it now);
* the heuristic's stage with each other executor count the net's relative head can express;
* the three other runnable stages the heuristic ranks first (its `key`), with one executor and with every free
  one.

Each copy continues with the heuristic at simulator level (`finish`), which is what the actor executes when the
stay rule is "none" (the net, hence the teacher, decides every decision; under "share" or "stage" the actor's
own stay decisions follow, which the rollout does not model, and the measured teacher was worse than uwfq
through the same actor on seeds 101 and 102, below, so `TrainConfig` requires stay "none" with it).

Measured (Decima preset, 20 jobs, relative limits, stay "none", every 50th decision, one core per episode):
* training seeds 100 and 101: uwfq 48.91 and 81.19 s mean JCT, uwfq through the actor 49.08 and 80.76 s, this
  teacher 47.86 and 79.47 s; `python
  benchmarks/job_sched_agent_bench.py --teacher uwfq --limit-mode relative --stay none --lookahead 50 --seeds 100`
  (and 101; 392 and 529 s with three runs sharing 2 cores; without `--lookahead`: the actor's figures, 29 s).
  Under stay "share" (the rollouts not modelling the actor's stay decisions) the same teacher scored 84.59 s on
  seed 101 and 68.89 s on 102, against 83.01 and 67.67 s through the actor without looks: worse, hence the
  requirement (the same command with `--stay share --seeds 101-102`; 228 and 364 s);
* the run `python -m sysgym.agents.decima runs/look50 'pretrain="uwfq"' 'hint="uwfq"' 'limit_mode="relative"'
  'stay="none"' lookahead_every=50 lookahead_weight=10 workers=2 pretrain_instances=4 pretrain_epochs=2
  iterations=0 'val_seeds=[900,901,902,903,904]'` (its training seeds 680, 509, 408, 215): teacher 61.77,
  50.13, 74.80, 48.48 s against uwfq's 63.68, 51.21, 76.79, 49.31 s (1.7-3.0 % lower; 60-77 changed actions of
  523-626 looks per episode); the net cloned from it (134,750 weighted samples, 2 epochs; 1,955 s on 2 cores)
  scored 39.14 s greedy on validation 900-904, where uwfq scores 37.09 s and the shipped clone 37.72 s: the
  teacher beats uwfq, its clone does not (README, Decima section);
* why: the labels are mostly the instance's own future. `Lookahead(probe=F)` (the bench's `--probe`) scores each
  look again under F resampled futures (`resample_future`); on training seeds 100 and 101 (every 100th decision,
  3 futures) a resampled future picked the true future's label 35.1 and 24.4 % of the time (chance 18.7 and
  18.9 %), and the keep-or-change verdict agreed 56.1 and 47.5 % of the time. Scoring by the mean over 3
  resampled futures instead (`futures=3`, the bench's `--futures`) no longer beats uwfq through the actor
  (README). DAgger with this teacher (`decima.LabelActor`, which also looks wherever the net departs from the
  heuristic) made the clone worse on validation (43.41 s from 39.14 s): the net's departures were the best
  candidate at 15 of 781 looks.
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np

# the simulator's fields that no step changes: shared by the copies instead of copied (the copy is per candidate)
_STATIC = ("inst", "children", "stage_job", "job_user", "arrival", "dur", "warm", "end_task", "ntasks",
           "_task_stage", "order")
OTHER_STAGES = 3  # runnable stages besides the heuristic's that each look tries (its first-ranked ones)


def finish(sim, policy) -> float:
    """Run `policy` (a simulator-level policy object, already reset and listening) on `sim` to the end; returns
    the job-time integral (the sum of the jobs' response times, `Simulator.area`)."""
    from sysgym.envs.job_sched.simulator import drive

    return drive(sim, policy).area


def ranking_teachers() -> list[str]:
    """The heuristics a look can use: those that rank stages (`key(sim, stage)`, for the candidates' other stages)."""
    from sysgym.envs.job_sched.simulator import make_policy, policy_names

    return [n for n in policy_names() if hasattr(make_policy(n), "key")]


def check_teacher(name: str) -> str:
    """`name` if the rollouts can improve it (a heuristic that ranks stages), else a named error before any work."""
    from sysgym.errors import InvalidArgumentError

    ok = ranking_teachers()
    if name not in ok:
        raise InvalidArgumentError(f"the lookahead teacher must be a heuristic that ranks stages ({', '.join(ok)}), "
                                   f"got {name!r}")
    return name


def resample_future(sim, rng: np.random.Generator) -> None:
    """Give the copy `sim` another future that is consistent with everything observed so far: the not yet
    launched tasks of each stage get that stage's remaining durations in a random order (so every stage's, and
    every job's, remaining work is unchanged), and the jobs yet to arrive arrive at new Poisson times (the
    instance's mean inter-arrival, `meta["mean_interarrival_s"]`) after now, in the same order. Those jobs stay
    the same jobs (queries, DAGs, work), which an online scheduler cannot know: the resampled future hides the
    arrival times and the task order, not which jobs will come. The copy's
    `dur` and `arrival` are replaced, not changed in place (they are shared with the original, `_STATIC`)."""
    dur = list(sim.dur)
    for a, b in zip(sim.next_task, sim.end_task):
        if b - a > 1:
            dur[a:b] = [dur[a + int(i)] for i in rng.permutation(b - a)]
    sim.dur = dur
    arrival, t = list(sim.arrival), sim.now
    to_come = sim.order[sim.next_arrival:]
    mean = (sim.inst.meta or {}).get("mean_interarrival_s")
    if to_come and (isinstance(mean, bool) or not isinstance(mean, (int, float)) or not mean > 0):
        from sysgym.errors import InvalidArgumentError

        # without it every job still to come would arrive now: a different workload, not another future
        raise InvalidArgumentError("resampling the future needs the instance's mean inter-arrival time "
                                   f"(meta['mean_interarrival_s'] > 0, as generate_v1 records it), got {mean!r}")
    for j in to_come:
        t += float(rng.exponential(mean))
        arrival[j] = t
    sim.arrival = arrival


class Lookahead:
    """The teacher `base` (a `decima.Shadow`), improved by one-step rollouts every `every`-th question (module
    doc). `looks`, `changed`, `gain_s` (the rollouts' total job time saved, summed over the changed actions),
    `disagreed` (DAgger: looks forced by the net departing from the heuristic) and `upheld` (of those, how often
    the net's departure was the best candidate) count what it did; `looked` marks, per question, whether it
    looked (for weighting the cloning samples)."""

    def __init__(self, base, env, every: int, probe: int = 0, seed: int = 0, futures: int = 0):
        self.base, self.env, self.every = base, env, int(every)
        # `futures` > 0: score each candidate by its mean over that many resampled futures instead of the
        # instance's own future, so the label no longer depends on the true arrival times and task order (it
        # still knows which jobs will come: `resample_future`)
        self.futures = int(futures)
        # `probe` > 0 (a diagnostic, `label_stability`): at each look also score the candidates under that many
        # resampled futures (`resample_future`, the same futures for every candidate) and record the best of each
        self.probe, self.seed = int(probe), int(seed)
        self.probes: list[tuple[int, list[int]]] = []  # per look: (best under the true future, best under each)
        self.asked = self.looks = self.changed = self.disagreed = self.upheld = 0
        self.gain_s = 0.0
        self.looked: list[bool] = []
        self.sizes: list[int] = []  # candidates per look
        self._last: tuple[Any, int] | None = None

    @property
    def name(self) -> str:
        return f"{self.base.name}+lookahead/{self.every}" + (f"/futures{self.futures}" if self.futures else "")

    def candidates(self, a0: int, also: int | None = None) -> list[int]:
        from sysgym.agents.decima import relative_action, relative_counts, relative_mask

        env, sim = self.env, self.env.sim
        mask, L = env.action_masks(), env.num_limits
        cands = [a0] if also is None else [a0, also]
        if env.wait_action is not None and mask[env.wait_action]:
            cands.append(env.wait_action)
        nodes = {n: s for n, s in env._node_stage.items() if s in sim.ready and mask[n * L:(n + 1) * L].any()}
        n0 = None if a0 == env.wait_action else a0 // L
        if n0 is not None:
            for k in np.flatnonzero(relative_mask(relative_counts(env, env._node_stage[n0]))):
                cands.append(relative_action(env, n0, int(k)))
        key = self.base.agent.policy.key
        for n in sorted((n for n in nodes if n != n0), key=lambda n: key(sim, nodes[n]))[:OTHER_STAGES]:
            allowed = np.flatnonzero(relative_mask(relative_counts(env, nodes[n])))
            for k in sorted({int(allowed[0]), int(allowed[-1])}):
                cands.append(relative_action(env, n, k))
        out: list[int] = []
        for a in cands:
            if a not in out and mask[a]:
                out.append(a)
        return out

    def value(self, a: int, future: int | None = None) -> float:
        """The job-time integral at the end when `a` is taken now and the heuristic decides from then on; with
        `future` (an index), in that resampled future of this look instead of the instance's own."""
        env, sim = self.env, self.env.sim
        memo = {id(getattr(sim, k)): getattr(sim, k) for k in _STATIC}
        s2, p2 = copy.deepcopy((sim, self.base.agent.policy), memo)
        if future is not None:  # common random numbers: every candidate of a look meets the same sampled futures
            resample_future(s2, np.random.default_rng([self.seed, self.asked, future]))
        if a == env.wait_action:
            s2.step_event()
        else:
            stage, count, _ = env.executors_for(a)
            s2.assign(stage, count)
        return finish(s2, p2)

    def act(self, obs, also: int | None = None) -> int:
        """The teacher's action in this state. `also` (DAgger: the net's own choice here): when it differs from
        the heuristic's, it is a candidate and the teacher looks now whatever the count, so every departure the
        net makes from the heuristic is labelled by rollouts (kept if it is the best, corrected if not)."""
        if self._last is not None and self._last[0] is obs:  # asked again in the same state: the same answer
            return self._last[1]
        a0 = self.base.act(obs)
        self.asked += 1
        a, looked = a0, False
        if also is not None:  # the same choice as the heuristic's once rounded to the net's relative head: agrees
            from sysgym.agents.decima import _teacher_label

            also = None if also == _teacher_label(self.env, a0, "relative")[0] else also
        if also is not None:
            self.disagreed += 1
        if self.asked % self.every == 0 or also is not None:
            cands = self.candidates(a0, also)
            if len(cands) > 1:
                looked = True
                self.looks += 1
                self.sizes.append(len(cands))
                vals = [float(np.mean([self.value(c, f) for f in range(self.futures)])) if self.futures
                        else self.value(c) for c in cands]
                best = int(np.argmin(vals))
                if self.probe:
                    self.probes.append((best, [int(np.argmin([self.value(c, f) for c in cands]))
                                               for f in range(self.probe)]))
                if vals[best] < vals[0] - 1e-9:  # strictly better only: ties keep the heuristic's action
                    self.changed += 1
                    self.gain_s += vals[0] - vals[best]
                    a = cands[best]
                    self.upheld += also is not None and a == also
        self.looked.append(looked)
        self._last = (obs, a)
        return a

    def stats(self) -> dict[str, Any]:
        return {"teacher": self.name, "asked": self.asked, "looks": self.looks, "changed": self.changed,
                "disagreed": self.disagreed, "upheld": self.upheld, "rollout_gain_s": round(self.gain_s, 4)}


def label_stability(probes: list[tuple[int, list[int]]], candidates: list[int]) -> dict[str, float]:
    """How much of a look's label is the instance's own future (`Lookahead(probe=F)`'s records): the share of
    resampled futures whose best candidate is the one the true future picked, whether they agree on changing the
    heuristic's action at all (index 0), and the chance level (1 / candidates, averaged over the looks)."""
    same = [b == t for t, bs in probes for b in bs]
    change = [(b != 0) == (t != 0) for t, bs in probes for b in bs]
    return {"looks": len(probes), "same_best": float(np.mean(same)) if same else float("nan"),
            "same_change": float(np.mean(change)) if change else float("nan"),
            "changed_true": float(np.mean([t != 0 for t, _ in probes])) if probes else float("nan"),
            "changed_resampled": float(np.mean([b != 0 for _, bs in probes for b in bs])) if probes else float("nan"),
            "chance": float(np.mean([1 / n for n in candidates])) if candidates else float("nan")}
