"""`sysgym/JobSched-v0`: Decima's decision, one (stage, parallelism limit) per step.

A step happens at every scheduling event where executors are free and some stage is runnable. The agent
picks a runnable stage and a parallelism limit for its job; `max(1, min(free, limit - executors the job already
has, unlaunched tasks))` free executors go to that stage. While executors stay free and stages runnable, the
next step happens at the same instant (reward 0); otherwise the simulator runs to the next such event.

Action: `Discrete(max_jobs * max_stages * num_limits)`, `a = node * num_limits + level`, where node =
`job_slot * max_stages + stage index inside the job` and the limit is `ceil((level + 1) * executors /
num_limits)`. `action_masks()` (for MaskablePPO) allows every level of every runnable stage of a visible job.
Visible jobs: the arrived, unfinished jobs, those with a runnable stage first, then by arrival, at most
`max_jobs` (later ones wait, still accruing response time, until a slot frees). With `allow_wait=True` one more
action, the last (`env.wait_action`), leaves the free executors idle until the next event (an arrival or a task
completion; Decima's "no node" choice, which its fair-cap heuristic takes at its caps); it is masked when no
event is pending.

Observation (`observation="graph"`, a Dict of padded arrays SB3 can consume; N = max_jobs * max_stages nodes):
* `node_features` (N, 12) float32: unlaunched tasks / 100, running tasks / E, mean task duration / 10 s,
  unlaunched stage work / (10 s x E), runnable flag, finished flag, job unlaunched work / (10 s x E), job's
  executors / E, job's waiting time / 100 s, its user's executors / E, its user's jobs in the system /
  max_jobs, the stage's fresh-executor warm-up (s);
* `node_mask` (N,) 1 for a real stage; `node_job` (N,) job slot of each node (max_jobs for padding);
* `edges` (max_jobs * max_edges, 2) int64 node pairs (parent, child); `edge_mask` (max_jobs * max_edges,);
* `job_features` (max_jobs, 5): unlaunched work / (10 s x E), executors / E, waiting / 100 s, user / users,
  stages left / max_stages; `job_mask` (max_jobs,);
* `global` (4,): free executors / E, jobs in system / max_jobs, moving delay / 10 s, time / 1000 s.
A GNN extractor (Decima's) runs message passing over `edges` within each job, pools per `node_job`, and scores
nodes; `observation="flat"` gives one Box vector (node features, masks, global) for MLP policies. Nothing is cut
from the observation: an instance with a job of more than `max_stages` stages or `max_edges` DAG edges is refused
at reset (`InvalidArgumentError` naming the job).

Reward: `reward="jct"` (default): minus the integral of (jobs in the system) over the time a step advances,
so minus the episode return divided by the number of jobs equals the mean job completion time exactly
(Decima's reward). `reward="user_fair"`: each user's jobs-in-system weighted by 1 / (users x that user's
jobs), so minus the return is the mean over users of each user's mean response time. `reward_scale`
multiplies rewards (1 by default, keeping the identity exact).

Invalid actions (the kit's vocabulary, `sysgym.env`): `invalid_action="penalise"` (default) makes the step a
no-op with reward -1 and `info["invalid_action"]` naming the node and why; `"raise"` raises `InvalidActionError`
with that message, leaving the state untouched.

`decisions()` is the executed schedule (per task: executor, start, end) that `job_sched.evaluate` re-checks;
`layout_kwargs()` the keywords that fix the spaces (`max_jobs`, `max_stages`, `max_edges`, `num_limits`,
`allow_wait`, `observation`). Heuristic policies act in the env through
`sysgym.solvers.job_sched.policies.PolicyAgent`.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

from sysgym.env import SysgymEnv
from sysgym.envs.job_sched.generator import PRESETS
from sysgym.envs.job_sched.instance import JobInstance
from sysgym.envs.job_sched.simulator import Simulator
from sysgym.errors import InvalidArgumentError, UnknownNameError

NODE_FEATURES = 12
JOB_FEATURES = 5
GLOBAL_FEATURES = 4
OBS_HIGH = 1e6  # features are normalised; this only bounds the Box (waiting 1e8 s would clip)
REWARDS = ("jct", "user_fair")
OBSERVATIONS = ("graph", "flat")


class JobSchedEnv(SysgymEnv):
    family = "job_sched"

    def __init__(self, instance: JobInstance | None = None, preset: str = "small", num_executors: int | None = None,
                 num_users: int | None = None, num_jobs: int | None = None, generator_params: dict | None = None,
                 max_jobs: int = 16, max_stages: int = 20, max_edges: int = 24, num_limits: int = 10,
                 allow_wait: bool = False, reward: str = "jct", reward_scale: float = 1.0, observation: str = "graph",
                 invalid_action: str = "penalise", render_mode: str | None = None):
        if reward not in REWARDS:
            raise UnknownNameError("JobSched reward", reward, REWARDS)
        if observation not in OBSERVATIONS:
            raise UnknownNameError("JobSched observation", observation, OBSERVATIONS)
        for key, value in (("max_jobs", max_jobs), ("max_stages", max_stages), ("max_edges", max_edges),
                           ("num_limits", num_limits)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InvalidArgumentError(f"JobSched {key} must be a positive integer, got {value!r}")
        shape = {k: v for k, v in {"num_executors": num_executors, "num_users": num_users,
                                   "num_jobs": num_jobs}.items() if v is not None}
        super().__init__(instance=instance, preset=None if instance is not None else preset,
                         generator_params={**(generator_params or {}), **shape},
                         invalid_action=invalid_action, render_mode=render_mode)
        if instance is None:
            dims = {**PRESETS.get(preset, {}), **self.gen_params}
            if "num_executors" not in dims:
                raise InvalidArgumentError(f"JobSched preset {preset!r} fixes no executor count: pass num_executors")
            self.E = int(dims["num_executors"])
        else:
            self.E = instance.num_executors
        self.max_jobs, self.max_stages, self.max_edges = int(max_jobs), int(max_stages), int(max_edges)
        self.num_limits = int(num_limits)
        self.allow_wait = bool(allow_wait)
        self.N = self.max_jobs * self.max_stages
        self.reward_mode, self.reward_scale = reward, float(reward_scale)
        self.obs_mode = observation
        self.action_space = spaces.Discrete(self.N * self.num_limits + int(self.allow_wait))
        graph = {
            "node_features": spaces.Box(0.0, OBS_HIGH, (self.N, NODE_FEATURES), np.float32),
            "node_mask": spaces.Box(0.0, 1.0, (self.N,), np.float32),
            "node_job": spaces.Box(0, self.max_jobs, (self.N,), np.int64),
            "edges": spaces.Box(0, self.N - 1, (self.max_jobs * self.max_edges, 2), np.int64),
            "edge_mask": spaces.Box(0.0, 1.0, (self.max_jobs * self.max_edges,), np.float32),
            "job_features": spaces.Box(0.0, OBS_HIGH, (self.max_jobs, JOB_FEATURES), np.float32),
            "job_mask": spaces.Box(0.0, 1.0, (self.max_jobs,), np.float32),
            "global": spaces.Box(0.0, OBS_HIGH, (GLOBAL_FEATURES,), np.float32),
        }
        if observation == "graph":
            self.observation_space = spaces.Dict(graph)
        else:
            n = self.N * NODE_FEATURES + self.N + GLOBAL_FEATURES
            self.observation_space = spaces.Box(0.0, OBS_HIGH, (n,), np.float32)
        self.sim: Simulator | None = None

    @property
    def wait_action(self) -> int | None:
        """The action that leaves the free executors idle until the next event (None without `allow_wait`)."""
        return self.N * self.num_limits if self.allow_wait else None

    # -- episode -----------------------------------------------------------------------------------
    def start(self, inst: JobInstance, options: dict[str, Any]):
        if inst.num_executors != self.E:
            raise InvalidArgumentError(f"instance {inst.name} has {inst.num_executors} executors; this env is sized "
                                       f"for {self.E}")
        big = [j for j in range(inst.num_jobs) if len(inst.job_stages(j)) > self.max_stages]
        if big:
            raise InvalidArgumentError(f"job {big[0]} of {inst.name} has {len(inst.job_stages(big[0]))} stages > "
                                       f"max_stages={self.max_stages}")
        # every edge must reach the observation (a job's edges beyond max_edges would be dropped from it)
        edges = np.bincount(inst.stage_job[inst.edges[:, 0]], minlength=inst.num_jobs) if len(inst.edges) else \
            np.zeros(inst.num_jobs, np.int64)
        over = np.flatnonzero(edges > self.max_edges)
        if len(over):
            j = int(over[0])
            raise InvalidArgumentError(f"job {j} ({inst.job_label[j]}) of {inst.name} has {int(edges[j])} DAG edges > "
                                       f"max_edges={self.max_edges}: the observation would drop "
                                       f"{int(edges[j]) - self.max_edges} of them; build the env with "
                                       f"max_edges>={int(edges.max())}")
        self.sim = Simulator(inst)
        counts = np.bincount(inst.job_user, minlength=inst.num_users)
        users = int((counts > 0).sum())
        self._user_w = [1.0 / (users * c) if c else 0.0 for c in counts]
        self._reported = 0.0
        self.steps = 0
        self._job_edges: list[list[tuple[int, int]]] = [[] for _ in range(inst.num_jobs)]
        for a, b in inst.edges.tolist():
            self._job_edges[int(inst.stage_job[a])].append((a, b))
        self._mean_dur = (inst.stage_work_s / np.diff(inst.stage_task_ptr)).tolist()
        self.sim.run_to_decision()
        self._refresh()
        return self._obs(), self._info()

    def decisions(self) -> dict[str, list]:
        """The executed schedule (per task: executor, start, end) that `job_sched.evaluate` re-checks."""
        if self.sim is None:
            raise RuntimeError("call reset() before decisions()")
        return self.sim.schedule()

    def layout_kwargs(self) -> dict[str, Any]:
        return {"max_jobs": self.max_jobs, "max_stages": self.max_stages, "max_edges": self.max_edges,
                "num_limits": self.num_limits, "allow_wait": self.allow_wait, "observation": self.obs_mode}

    def _cost(self) -> float:
        sim = self.sim
        if self.reward_mode == "jct":
            return sim.area
        return sum(w * a for w, a in zip(self._user_w, sim.user_area))

    def step(self, action):
        if self.sim is None:
            raise RuntimeError("call reset() before step()")
        if self.sim.finished:
            raise RuntimeError("episode is over (every job finished); call reset()")
        a, why = self.discrete_action(action)
        if why is not None:
            return self._invalid(why)
        if not self._mask[a]:
            return self._invalid(self._explain(a))
        sim = self.sim
        if a == self.wait_action:
            sim.step_event()
            extra: dict[str, Any] = {"waited": True}
        else:
            s, count, limit = self.executors_for(a)
            sent = sim.assign(s, count)
            extra = {"executors_sent": sent, "stage": int(s), "job": int(sim.stage_job[s]), "limit": int(limit)}
        sim.run_to_decision()
        cost = self._cost()
        reward = -(cost - self._reported) * self.reward_scale
        self._reported = cost
        self.steps += 1
        self._refresh()
        return self._obs(), float(reward), bool(sim.finished), False, {**self._info(), **extra}

    def action_masks(self) -> np.ndarray:
        if self.sim is None:
            raise RuntimeError("call reset() before action_masks()")
        return self._mask

    def visible_stages(self) -> set[int]:
        """The stages of the visible jobs (those the actions can name)."""
        return set(self._node_stage.values())

    def snapshot(self) -> dict[str, np.ndarray]:
        sim = self.sim
        return {"mask": self._mask.copy(), "now": np.array(sim.now), "free": np.array(sim.free_count),
                "steps": np.array(self.steps), "reported": np.array(self._reported),
                "next_task": np.array(sim.next_task), "running": np.array(sim.running), "done": np.array(sim.done),
                "task_executor": np.array(sim.task_exec), "task_start": np.array(sim.task_start),
                "job_finish": np.array(sim.job_finish), "events": np.array(sim.events)}

    def render(self):
        if self.sim is None:
            return ""
        s = self.sim
        return (f"t={s.now:.1f}s jobs in system {s.jobs_in_system} done {s.jobs_done}/{self.instance.num_jobs} "
                f"free executors {s.free_count}/{self.E}")

    # -- internals ---------------------------------------------------------------------------------
    def _invalid(self, reason: str):
        return self.invalid(reason, self._obs(), self._info(), terminated=bool(self.sim.finished))

    def _explain(self, a: int) -> str:
        if a == self.wait_action:
            return (f"action {a} (wait) is masked: no task is running and no job is yet to arrive, so the free "
                    "executors would idle for ever")
        node = a // self.num_limits
        slot, local = divmod(node, self.max_stages)
        if slot >= len(self._slots):
            return f"node {node} is in job slot {slot}, which is empty ({len(self._slots)} visible jobs)"
        j = self._slots[slot]
        stages = self.instance.job_stages(j)
        if local >= len(stages):
            return f"node {node}: job {j} has only {len(stages)} stages (asked for stage {local})"
        s = stages[local]
        sim = self.sim
        why = ("finished or fully launched" if sim.unlaunched(s) == 0 else
               f"waiting for {sim.parents_left[s]} parent stage(s)")
        if sim.free_count == 0:
            why = "no executor is free"
        return f"node {node} (job {j} stage {local}) is not runnable: {why}"

    def _refresh(self) -> None:
        """Visible jobs, node <-> stage maps, mask, observation arrays."""
        sim, inst = self.sim, self.instance
        active = list(sim.active_jobs)
        ready_jobs = {sim.stage_job[s] for s in sim.ready}
        active.sort(key=lambda j: (j not in ready_jobs, sim.arrival[j], j))
        self._slots = active[:self.max_jobs]
        L, M, E = self.num_limits, self.max_stages, self.E
        mask = np.zeros(self.N * L, bool)
        nf = np.zeros((self.N, NODE_FEATURES), np.float32)
        nmask = np.zeros(self.N, np.float32)
        njob = np.full(self.N, self.max_jobs, np.int64)
        edges = np.zeros((self.max_jobs * self.max_edges, 2), np.int64)
        emask = np.zeros(self.max_jobs * self.max_edges, np.float32)
        jf = np.zeros((self.max_jobs, JOB_FEATURES), np.float32)
        jmask = np.zeros(self.max_jobs, np.float32)
        self._node_stage: dict[int, int] = {}
        now = sim.now
        for slot, j in enumerate(self._slots):
            base = int(inst.job_stage_ptr[j])
            u = sim.job_user[j]
            wait = (now - sim.arrival[j]) / 100.0
            jw = sim.job_unlaunched_work[j] / (10.0 * E)
            jf[slot] = (max(jw, 0.0), sim.job_running[j] / E, wait, u / max(inst.num_users, 1),
                        sim.job_stages_left[j] / M)
            jmask[slot] = 1.0
            for s in inst.job_stages(j):
                node = slot * M + (s - base)
                self._node_stage[node] = s
                unl = sim.unlaunched(s)
                ready = s in sim.ready
                nf[node] = (unl / 100.0, sim.running[s] / E, self._mean_dur[s] / 10.0,
                            unl * self._mean_dur[s] / (10.0 * E), float(ready),
                            float(sim.done[s] == sim.ntasks[s]), max(jw, 0.0), sim.job_running[j] / E, wait,
                            sim.user_running[u] / E, sim.user_active_jobs[u] / self.max_jobs,
                            float(inst.stage_warmup_s[s]))
                nmask[node] = 1.0
                njob[node] = slot
                if ready and sim.free_count > 0:
                    mask[node * L:(node + 1) * L] = True
            k = slot * self.max_edges
            for a, b in self._job_edges[j]:  # at most max_edges: start() refuses jobs with more
                edges[k] = (slot * M + a - base, slot * M + b - base)
                emask[k] = 1.0
                k += 1
        if self.allow_wait:
            mask = np.append(mask, bool(sim.heap) or sim.next_arrival < len(sim.order))
        self._mask = mask
        glob = np.array([sim.free_count / E, sim.jobs_in_system / self.max_jobs,
                         inst.moving_delay_s / 10.0, now / 1000.0], np.float32)
        self._graph = {"node_features": nf, "node_mask": nmask, "node_job": njob, "edges": edges,
                       "edge_mask": emask, "job_features": jf, "job_mask": jmask, "global": glob}

    def _obs(self):
        g = self._graph
        if self.obs_mode == "graph":
            return {k: v.copy() for k, v in g.items()}
        return np.concatenate([g["node_features"].ravel(), g["node_mask"], g["global"]]).astype(np.float32)

    def _info(self) -> dict[str, Any]:
        sim = self.sim
        return {"time_s": sim.now, "jobs_in_system": sim.jobs_in_system, "jobs_done": sim.jobs_done,
                "free_executors": sim.free_count, "instance": self.instance.name, "step": self.steps}

    def executors_for(self, action: int) -> tuple[int, int, int]:
        """(stage, executors sent, the level's limit) of an allowed stage action: the level's cap on the job's
        executors minus those it runs, at least one, at most the free ones."""
        node, level = divmod(int(action), self.num_limits)
        s = self._node_stage[node]
        limit = math.ceil((level + 1) * self.E / self.num_limits)
        return s, max(1, min(self.sim.free_count, limit - self.sim.job_running[self.sim.stage_job[s]])), limit

    def action_for(self, stage: int, count: int) -> int:
        """The action that sends `count` executors to `stage` (the smallest limit level that allows it)."""
        node = next((n for n, s in self._node_stage.items() if s == stage), None)
        if node is None:
            raise InvalidArgumentError(f"stage {stage} is not in a visible job")
        jr = self.sim.job_running[self.sim.stage_job[stage]]
        for level in range(self.num_limits):
            if math.ceil((level + 1) * self.E / self.num_limits) - jr >= count:
                return node * self.num_limits + level
        return node * self.num_limits + self.num_limits - 1
