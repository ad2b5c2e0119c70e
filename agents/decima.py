"""Decima's learned job scheduler (Mao et al., SIGCOMM'19) on `sysgym/JobSched-v0`'s graph observation.

* `DecimaNet`: a graph neural network, torch only, whose parameters do not depend on the number of jobs or
  stages. Per-node embeddings by message passing along the DAG edges from children to parents (`depth` rounds
  of h_v = e_v + g(sum over children f(h_c)), Decima's Eq. 1 with shared f, g), a per-job summary (sum of its
  nodes' embeddings), a global summary (sum of the job summaries); a score for every runnable stage, then a
  parallelism-limit head conditioned on the chosen stage's job summary (Decima's two-stage action).
* `DecimaActor`: rolls the net out in the env. Like Decima's simulator (decima-sim `spark_env/env.py`: an
  executor that finishes a task keeps serving its stage while the stage has tasks left), a decision where every
  free executor belongs to one job whose last chosen stage is still runnable sends them back to that stage
  without asking the net (they never leave their job, so no moving delay is paid); every other decision (fresh
  or foreign executors, the stage drained, an arrival) is the net's. This cuts the net's decisions from one per
  task to about one per stage. That is `stay="stage"` (the first shipped policy's); `stay="share"` stays only
  while the job runs at most its equal share of the executors, `stay="none"` asks the net every time
  (`STAY_RULES`). `num_limits` sets the env's parallelism levels (10, JobSched-v0's default, moves executors in
  steps of E / 10). A run records both in decima.json, its ONNX export in its metadata, and `job_sched.agent`
  rolls out under them (runs that record neither: "stage", 10). `limit_mode="relative"` makes the limit head
  choose how many executors to add to the job (`RELATIVE_CHOICES`) instead of an absolute level (`LIMIT_MODES`;
  runs that record none: "absolute").
* `train_reinforce`: Decima's training: REINFORCE on K rollouts of the same arrival sequence, reward = minus the
  job-time integral since the previous decision (the env's `jct` reward), advantage = return-to-go minus a
  time-based baseline (at each decision's time, the mean return-to-go of the K rollouts at that time), entropy
  bonus; learning curve = the evaluator-scored mean JCT of greedy rollouts on validation seeds. `pretrain=<heuristic>`
  first clones that heuristic at the net's decisions (`behaviour_clone`; the shipped policy cloned `uwfq`);
  `dagger_rounds=<n>` then relabels the net's own greedy states with it (`LabelActor`, DAgger); `init=<run>`
  starts from a checkpoint. `grad_fraction` < 1 keeps the graph of only that share of the sampled decisions
  (`Decision`), so long episodes fit in memory.
* `hint=<heuristic>` (`HINT_NODE`): the net also takes that heuristic's choice in the current state as input (a
  `Shadow` of it runs beside the actor); off by default (Decima's inputs only).
* `lookahead_every=<k>`: the cloning teacher is the heuristic improved by one-step rollouts at every k-th decision
  on the training instances (`decima_lookahead`, Bertsekas's rollout algorithm); off by default. DAgger rounds
  then label with it as well, and it also looks at every decision where the net departs from the heuristic (the
  net's choice among the candidates), so each departure is kept or corrected by rollouts.
* `python -m sysgym.agents.decima OUT_DIR key=value ...` trains into OUT_DIR (`decima.pt` + `decima.json`).
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sysgym.envs.job_sched.env import GLOBAL_FEATURES, JOB_FEATURES, NODE_FEATURES, JobSchedEnv

# Decima's node features include where the free executors are (decima-sim `msg_passing`/`actor_agent.py`: the
# "executor is local to this job" input): the env's observation does not, so the actor adds, per node, the free
# executors idle in its job / E, and globally the free executors that belong to no job (fresh) / E.
NODE_IN, GLOBAL_IN = NODE_FEATURES + 1, GLOBAL_FEATURES + 1


# A heuristic's choice as an input (`TrainConfig.hint`, e.g. "uwfq"; None: Decima's inputs only). The net then
# sees, per node, whether the heuristic would send executors to it now and how many (/ E), and globally whether it
# would wait: a learned policy informed by a heuristic, as learned branching policies take strong branching's
# scores as inputs. Cloning the heuristic then only has to learn to follow the hint (plain Decima inputs could not
# represent uwfq's virtual deadlines, which depend on the arrival history), and RL learns where to depart from it.
HINT_NODE, HINT_GLOBAL = 2, 1


def hint_columns(env: JobSchedEnv, a: int) -> tuple[np.ndarray, float]:
    """(per node: [heuristic sends here, executors it sends / E] (N, 2), 1.0 if it waits) for env action `a`."""
    cols = np.zeros((env.N, HINT_NODE), np.float32)
    if a == env.wait_action:
        return cols, 1.0
    cols[int(a) // env.num_limits] = (1.0, env.executors_for(a)[1] / env.E)
    return cols, 0.0


def augment(obs: dict[str, np.ndarray], env: JobSchedEnv, hint: int | None = None) -> dict[str, np.ndarray]:
    """The env's observation plus the free executors' locality (see NODE_IN), and, when `hint` (a heuristic's env
    action in this state) is given, its columns (`hint_columns`)."""
    sim, E = env.sim, env.E
    local = np.zeros(env.max_jobs + 1, np.float32)
    for slot, j in enumerate(env._slots):
        local[slot] = len(sim.free_by_job.get(j) or ()) / E
    nf = np.concatenate([obs["node_features"], local[obs["node_job"]][:, None]], 1)
    glob = np.append(obs["global"], len(sim.free_by_job.get(-1) or ()) / E).astype(np.float32)
    if hint is not None:
        cols, waits = hint_columns(env, hint)
        nf = np.concatenate([nf, cols], 1)
        glob = np.append(glob, waits).astype(np.float32)
    return {**obs, "node_features": nf, "global": glob}


def _mlp(i: int, h: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, h), nn.LeakyReLU(0.2), nn.Linear(h, h // 2), nn.LeakyReLU(0.2),
                         nn.Linear(h // 2, o))


def _run(mlp: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """`mlp(x)` for an `_mlp`, calling its operations directly: the same operations on the same parameters, so
    the same numbers (and gradients), without nn.Module's per-call overhead, which dominates on these few-row
    inputs (a decision calls 14 MLPs; the held-out bench's learned-policy time fell from 139.7 to 108.0 s with
    this and the greedy path below, `python benchmarks/job_sched_agent_bench.py`)."""
    l0, a0, l1, a1, l2 = mlp
    x = F.leaky_relu(F.linear(x, l0.weight, l0.bias), a0.negative_slope)
    x = F.leaky_relu(F.linear(x, l1.weight, l1.bias), a1.negative_slope)
    return F.linear(x, l2.weight, l2.bias)


class DecimaNet(nn.Module):
    """Decima's GNN + two policy heads. `forward(obs, num_limits)` -> (stage logits over the env's nodes with
    -inf where not a real node, limit logits (N, num_limits) per node's job, wait logit). Only real nodes are
    embedded, so the cost follows the graph, not the padding."""

    def __init__(self, hidden: int = 32, embed: int = 16, depth: int = 4, hint: str | None = None):
        super().__init__()
        self.depth = depth
        self.hint = hint  # the heuristic whose choice is an input (HINT_NODE), or None
        ni = NODE_IN + (HINT_NODE if hint else 0)
        gi = GLOBAL_IN + (HINT_GLOBAL if hint else 0)
        self.prep = _mlp(ni, hidden, embed)
        self.f = _mlp(embed, hidden, embed)  # message from a child
        self.g = _mlp(embed, hidden, embed)  # aggregate of the messages
        self.job = _mlp(ni + embed, hidden, embed)
        self.glob = _mlp(embed + JOB_FEATURES, hidden, embed)
        self.node_score = _mlp(ni + 3 * embed + gi, hidden, 1)
        self.limit_score = _mlp(2 * embed + JOB_FEATURES + gi + 1, hidden, 1)
        # Decima's "no node" choice (the env's wait action, `allow_wait=True`): leave the free executors idle
        # until the next event, e.g. rather than pay the moving delay for little work
        self.wait_score = _mlp(embed + gi, hidden, 1)

    def forward(self, obs: dict[str, np.ndarray], num_limits: int
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.from_graph(graph_inputs(obs), num_limits)

    def from_graph(self, g: dict[str, np.ndarray], num_limits: int
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`forward` on an observation already reduced by `graph_inputs`."""
        node_scores, job_limits, wait = self.core(*(torch.as_tensor(g[k]) for k in CORE_INPUTS), num_limits)
        scores = torch.full((len(g["node_job"]),), -float("inf"))
        scores[torch.as_tensor(g["real"])] = node_scores
        node_jobs = torch.as_tensor(g["node_job"]).clamp(max=job_limits.shape[0] - 1)
        return scores, job_limits[node_jobs], wait

    def core(self, x, par, chi, jobs_of, jf, jmask, glob, num_limits: int
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The net on the real nodes (`graph_inputs`): (their stage scores, limit logits (J, num_limits) per job
        slot, wait logit). Tensors only, so `agents/decima_onnx.py` exports exactly this."""
        J = jf.shape[0]
        e0 = _run(self.prep, x)
        h = e0
        for _ in range(self.depth):  # children -> parents: a stage's embedding sees its whole sub-DAG
            msg = _sum_into(torch.zeros_like(h), par, _run(self.f, h)[chi])
            h = e0 + _run(self.g, msg)
        job_sum = _sum_into(torch.zeros(J, h.shape[1]), jobs_of, _run(self.job, torch.cat([x, h], 1)))
        jm = jmask[:, None]
        g_sum = (_run(self.glob, torch.cat([job_sum, jf], 1)) * jm).sum(0)
        n = x.shape[0]
        n_in = torch.cat([x, h, job_sum[jobs_of], g_sum.expand(n, -1), glob.expand(n, -1)], 1)
        node_scores = _run(self.node_score, n_in).squeeze(1)
        levels = (torch.arange(num_limits, dtype=torch.float32)[:, None] + 1) / num_limits
        j_in = torch.cat([job_sum, g_sum.expand(J, -1), jf, glob.expand(J, -1)], 1)  # (J, .)
        L_in = torch.cat([j_in[:, None, :].expand(J, num_limits, -1), levels[None].expand(J, -1, -1)], 2)
        job_limits = _run(self.limit_score, L_in).squeeze(2)  # (J, L)
        return node_scores, job_limits, _run(self.wait_score, torch.cat([g_sum, glob])).squeeze(0)


def _sum_into(out: torch.Tensor, index: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """out[index[i]] += rows[i]. `index_add` in torch; in an ONNX export a scatter-add (ScatterElements with
    reduction "add"), since torch's ONNX exporter writes `index_add` as a plain scatter, which keeps one row
    where several share an index (a stage with several children)."""
    if torch.onnx.is_in_onnx_export():
        return out.scatter_add(0, index[:, None].expand(-1, rows.shape[1]), rows)
    return out.index_add(0, index, rows)


CORE_INPUTS = ("x", "par", "chi", "jobs_of", "jf", "jmask", "glob")


def graph_inputs(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The padded observation reduced to its real nodes and edges (numpy): `CORE_INPUTS` for `DecimaNet.core`,
    plus `real` (the real nodes' indices) and `node_job` (every node's job slot) to map the scores back."""
    nmask = np.asarray(obs["node_mask"]) > 0
    real = np.flatnonzero(nmask)
    remap = np.full(len(nmask), -1, np.int64)
    remap[real] = np.arange(len(real))
    e = np.asarray(obs["edges"])[np.asarray(obs["edge_mask"]) > 0]
    node_job = np.asarray(obs["node_job"]).astype(np.int64)
    return {"x": np.asarray(obs["node_features"], np.float32)[real], "par": remap[e[:, 0]], "chi": remap[e[:, 1]],
            "jobs_of": node_job[real], "jf": np.asarray(obs["job_features"], np.float32),
            "jmask": (np.asarray(obs["job_mask"]) > 0).astype(np.float32),
            "glob": np.asarray(obs["global"], np.float32), "real": real, "node_job": node_job}


@dataclass
class Decision:
    """One net decision of a recorded rollout. `logp` and `entropy` are None for a decision drawn out of the
    gradient (`TrainConfig.grad_fraction` < 1): its reward still counts in every return, but its graph is not
    kept, so an episode of ~17,000 decisions (stay "share") does not hold ~17,000 graphs in memory; the policy
    gradient's sum over decisions is then estimated from the kept ones, each weighted 1 / grad_fraction."""
    logp: torch.Tensor | None
    entropy: torch.Tensor | None
    time_s: float
    reward: float = 0.0  # the env's reward from this decision to the net's next one
    # a kept decision of a rollout run in a worker process (`DecimaActor(replay=True)`): what the net saw and
    # chose, so the process that updates the net recomputes `logp` and `entropy` with their graph (`replayed`)
    replay: Replay | None = None


@dataclass
class Replay:
    """A kept decision's inputs and choice: the augmented observation reduced to its graph (`graph_inputs`, a
    few KB rather than the padded ~27 KB), which nodes and whether the wait could be chosen, the limit head's
    width, the chosen node (env.N: the wait) and, unless it waited, the allowed limit choices and the chosen
    one."""
    graph: dict[str, np.ndarray]
    node_ok: np.ndarray
    wait_ok: bool | None  # None: the env has no wait action
    head: int
    node: int
    lim_mask: np.ndarray | None = None
    level: int | None = None


def _policy(net_out, node_ok: torch.Tensor, wait_ok: bool | None):
    """The stage distribution's logits (the net's scores, masked; the wait appended when the env has one)."""
    scores, limits, wait = net_out
    scores = scores.masked_fill(~node_ok, -float("inf"))
    if wait_ok is not None:  # the last entry: wait (masked when no event is pending)
        scores = torch.cat([scores, wait[None] if wait_ok else torch.full((1,), -float("inf"))])
    return scores, limits


def _log_prob(d_node, node: int, limits: torch.Tensor | None = None, lim_mask=None, level: int | None = None):
    """(log-probability, entropy) of a decision: the stage's, plus the limit's unless it waited."""
    logp, ent = d_node.log_prob(torch.tensor(node)), d_node.entropy()
    if level is not None:
        d_lim = torch.distributions.Categorical(logits=limits[node].masked_fill(~torch.as_tensor(lim_mask),
                                                                                -float("inf")))
        logp, ent = logp + d_lim.log_prob(torch.tensor(level)), ent + d_lim.entropy()
    return logp, ent


def replayed(net: DecimaNet, r: Replay) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-probability, entropy) of a replayed decision under `net`, with their graph: the same computation as
    the actor's (`_policy`, `_log_prob`), so with the net that acted it gives the actor's own values."""
    scores, limits = _policy(net.from_graph(r.graph, r.head), torch.as_tensor(r.node_ok), r.wait_ok)
    return _log_prob(torch.distributions.Categorical(logits=scores), r.node, limits, r.lim_mask, r.level)


# The stay rules (`DecimaActor(stay=...)`, module doc), which decisions go back to the job's last chosen stage
# without asking the net: "stage" (the first shipped policy's rule): whenever every free executor belongs to one
# job whose last chosen stage is runnable; "share": the same, but only while that job runs at most its equal
# share of the executors (ceil(E / active jobs); a job over it asks the net, which may move executors to a job
# below its share, as fair and uwfq do on a task's end); "none": every decision is the net's.
STAY_RULES = ("stage", "share", "none")
LEGACY_STAY = "stage"  # runs and exports that record no rule were trained with this one


def check_stay(stay: str) -> str:
    from sysgym.errors import InvalidArgumentError

    if stay not in STAY_RULES:
        raise InvalidArgumentError(f"stay must be one of {STAY_RULES}, got {stay!r}")
    return stay


def stay_of(meta: dict[str, Any]) -> str:
    """The stay rule a trained run (its decima.json) or ONNX export (its metadata) was trained with."""
    return check_stay(meta.get("stay") or (meta.get("config") or {}).get("stay") or LEGACY_STAY)


LEGACY_LIMITS = 10  # JobSched-v0's default num_limits, which runs that record none were trained with


def limits_of(meta: dict[str, Any]) -> int:
    """The env's parallelism levels a trained run or ONNX export was trained with (`TrainConfig.num_limits`)."""
    return int(meta.get("num_limits") or (meta.get("config") or {}).get("num_limits") or LEGACY_LIMITS)


# The limit head's meaning (`DecimaActor(limit_mode=...)`, `TrainConfig.limit_mode`). "absolute" (the first
# shipped policy's): the head picks one of the env's `num_limits` levels, a cap on the job's executors in steps of
# E / num_limits, so the executors sent are `level's cap - the job's executors` (at least one). "relative": the
# head picks how many free executors to ADD to the chosen stage's job, one of `RELATIVE_CHOICES` (the last,
# `ALL_FREE`, sends every free executor); the actor runs the env with one level per executor (num_limits = E, so
# every count is exact) and translates the choice into that level. uwfq mostly moves one executor at a time
# (validation seed 900, asked at every decision with one level per executor: 16,044 of its 16,235 sends are of
# one executor, beside 8,948 waits), which a 10-level absolute head cannot express. Choices that would send the
# same number of executors as a smaller one (the stage has fewer unlaunched tasks, or fewer executors are free)
# are masked, so each allowed choice is a distinct action.
LIMIT_MODES = ("absolute", "relative")
LEGACY_LIMIT_MODE = "absolute"  # runs and exports that record no mode were trained with this one
ALL_FREE = -1
RELATIVE_CHOICES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, ALL_FREE)


def check_hint(hint: str | None) -> str | None:
    """None or a job_sched heuristic policy's name (`policy_names()`: fifo, fair, uwfq, ...)."""
    if hint is not None:
        from sysgym.envs.job_sched import policy_names
        from sysgym.errors import UnknownNameError

        if hint not in policy_names():
            raise UnknownNameError("heuristic to take as a hint (hint)", hint, policy_names())
    return hint


def check_limit_mode(mode: str) -> str:
    from sysgym.errors import InvalidArgumentError

    if mode not in LIMIT_MODES:
        raise InvalidArgumentError(f"limit_mode must be one of {LIMIT_MODES}, got {mode!r}")
    return mode


def limit_mode_of(meta: dict[str, Any]) -> str:
    """The limit head's mode a trained run (decima.json) or ONNX export (metadata) was trained with."""
    return check_limit_mode(meta.get("limit_mode") or (meta.get("config") or {}).get("limit_mode")
                            or LEGACY_LIMIT_MODE)


def head_limits(limit_mode: str, env_limits: int) -> int:
    """The width of the limit head: the env's levels ("absolute") or `len(RELATIVE_CHOICES)` ("relative")."""
    return env_limits if check_limit_mode(limit_mode) == "absolute" else len(RELATIVE_CHOICES)


def relative_counts(env: JobSchedEnv, stage: int) -> np.ndarray:
    """The executors each of `RELATIVE_CHOICES` sends to `stage` now: min(choice, free, unlaunched tasks)."""
    sim = env.sim
    free = sim.free_count
    cap = min(free, sim.end_task[stage] - sim.next_task[stage])
    c = np.array([free if k == ALL_FREE else k for k in RELATIVE_CHOICES])
    return np.maximum(1, np.minimum(c, cap))


def relative_mask(counts: np.ndarray) -> np.ndarray:
    """Allowed relative choices: each the first to send its number of executors (duplicates masked)."""
    return np.concatenate([[True], counts[1:] > counts[:-1]])


def relative_action(env: JobSchedEnv, node: int, choice: int) -> int:
    """The env action (one level per executor, `make_env(..., "relative")`) that sends the count of
    `RELATIVE_CHOICES[choice]` to the stage at `node`: the level whose cap is the job's executors plus it."""
    s = env._node_stage[node]
    sim = env.sim
    count = int(relative_counts(env, s)[choice])
    L = env.num_limits
    if L != env.E:
        from sysgym.errors import InvalidArgumentError

        raise InvalidArgumentError(f"relative limits need one env level per executor (num_limits={env.E}), "
                                   f"the env has {L}")
    return node * L + min(sim.job_running[sim.stage_job[s]] + count, L) - 1


def relative_choice(env: JobSchedEnv, node: int, count: int) -> tuple[int, np.ndarray]:
    """(the allowed relative choice that sends the number of executors nearest `count` (ties: the smaller),
    the allowed choices' mask) for the stage at `node`: how a teacher's (stage, count) is expressed."""
    counts = relative_counts(env, env._node_stage[node])
    m = relative_mask(counts)
    sim = env.sim
    want = max(1, min(count, sim.free_count))
    dist = np.where(m, np.abs(counts - want), np.iinfo(np.int64).max)
    return int(np.argmin(dist)), m


class DecimaActor:
    """The net behind an env (module doc): `act(obs)` -> action; `decisions` records the net's choices; `stay`
    one of `STAY_RULES`."""

    def __init__(self, net: DecimaNet, env: JobSchedEnv, *, greedy: bool = True, generator: torch.Generator | None
                 = None, record: bool = False, stay: str = LEGACY_STAY, limit_mode: str = LEGACY_LIMIT_MODE,
                 grad_fraction: float = 1.0, hinter: Shadow | None = None, replay: bool = False):
        self.stay = check_stay(stay)
        self.limit_mode = check_limit_mode(limit_mode)
        if limit_mode == "relative" and env.num_limits != env.E:
            from sysgym.errors import InvalidArgumentError

            raise InvalidArgumentError(f"limit_mode='relative' needs an env with num_limits = executors ({env.E}), "
                                       f"got {env.num_limits} (make_env(instance, limit_mode='relative'))")
        self.net, self.env, self.greedy, self.gen, self.record = net, env, greedy, generator, record
        self.grad_fraction = grad_fraction  # with `record`: the share of decisions whose graph is kept (see Decision)
        self.replay = replay  # with `record`: keep a kept decision's inputs (Replay) instead of its graph
        self.last_stage: dict[int, int] = {}  # job -> the stage the net last sent executors to
        self.decisions: list[Decision] = []
        self.net_calls = 0
        hint = getattr(net, "hint", None)
        # the heuristic whose choice the net takes as input (`hinter`: one a subclass already shares with its teacher)
        self.hinter = hinter if hinter is not None else Shadow(hint, env) if hint else None

    def _hint(self, obs) -> int | None:
        return None if self.hinter is None else self.hinter.act(obs)

    def _stay(self) -> int | None:
        if self.stay == "none":
            return None
        sim = self.env.sim
        owners = [j for j, lst in sim.free_by_job.items() if lst]
        if len(owners) != 1 or owners[0] < 0:
            return None
        j = owners[0]
        s = self.last_stage.get(j)
        if s is None or s not in sim.ready or s not in self.env.visible_stages():
            return None
        if self.stay == "share" and sim.job_running[j] > -(-sim.E // len(sim.active_jobs)):
            return None
        return self.env.action_for(s, sim.free_count)

    def act(self, obs: dict[str, np.ndarray]) -> int:
        a = self._stay()
        if a is not None:
            return a
        env = self.env
        L = env.num_limits
        rel = self.limit_mode == "relative"
        obs = augment(obs, env, self._hint(obs))
        full = env.action_masks()
        mask = torch.as_tensor(full[:env.N * L].reshape(env.N, L))
        keep = self.record and (self.grad_fraction >= 1.0 or
                                float(torch.rand((), generator=self.gen)) < self.grad_fraction)
        grad = keep and not self.replay
        head = head_limits(self.limit_mode, L)
        node_ok, wait_ok = mask.any(1), (bool(full[-1]) if env.allow_wait else None)
        level = lim_mask = None
        g = graph_inputs(obs)
        with torch.set_grad_enabled(grad):
            scores, limits = _policy(self.net.from_graph(g, head), node_ok, wait_ok)
            # a greedy choice needs no distribution (building one validates its arguments, every decision)
            d_node = torch.distributions.Categorical(logits=scores) if grad or not self.greedy else None
            node = int(scores.argmax()) if self.greedy else int(torch.multinomial(d_node.probs, 1, generator=self.gen))
            waits = node == env.N
            if not waits:
                lim_mask = torch.as_tensor(relative_mask(relative_counts(env, env._node_stage[node]))) if rel \
                    else mask[node]
                lim = limits[node].masked_fill(~lim_mask, -float("inf"))
                level = int(lim.argmax()) if self.greedy else \
                    int(torch.multinomial(torch.distributions.Categorical(logits=lim).probs, 1, generator=self.gen))
            logp, ent = _log_prob(d_node, node, limits, lim_mask, level) if grad else (None, None)
        self.net_calls += 1
        if self.record:
            # copies: the env may reuse its observation and mask buffers at the next step
            r = Replay({k: np.array(v) for k, v in g.items()}, node_ok.numpy().copy(), wait_ok, head, node,
                       None if waits else lim_mask.numpy().copy(), level) if keep and self.replay else None
            self.decisions.append(Decision(logp, ent, env.sim.now, replay=r))
        if waits:
            return env.wait_action
        self.last_stage[env.sim.stage_job[env._node_stage[node]]] = env._node_stage[node]
        return relative_action(env, node, level) if rel else node * L + level

    def run(self, instance) -> dict[str, Any]:
        """One episode on `instance`; returns {'mean_jct_s', 'env_steps', 'net_calls'} (claimed by the env)."""
        obs, _ = self.env.reset(options={"instance": instance})
        done, total, steps = False, 0.0, 0
        while not done:
            obs, r, done, _, _ = self.env.step(self.act(obs))
            total += r
            steps += 1
            if self.decisions:
                self.decisions[-1].reward += r
        return {"mean_jct_s": -total / instance.num_jobs, "env_steps": steps, "net_calls": self.net_calls}


def _teacher_label(env: JobSchedEnv, a: int, limit_mode: str) -> tuple[int, Any]:
    """A teacher's env action as the net's label: (the action, None) in "absolute" mode; in "relative" mode
    (the action the nearest relative choice takes, (node, choice, allowed choices' mask)), wait: (it, None)."""
    if limit_mode == "absolute" or a == env.wait_action:
        return a, None
    node = a // env.num_limits
    k, m = relative_choice(env, node, env.executors_for(a)[1])
    return relative_action(env, node, k), (node, k, m)


class Shadow:
    """A heuristic (`job_sched.<name>`) run beside the actor in the same env (`PolicyAgent`), asked once per state:
    `act(obs)` answers again for the same observation object without asking the policy twice (its move budget
    counts the questions), so a teacher that is also the net's hint is asked once per decision."""

    def __init__(self, name: str, env: JobSchedEnv):
        import sysgym.solvers as solvers
        from sysgym.solvers.job_sched.policies import PolicyAgent

        self.name = name
        self.agent = PolicyAgent(solvers.get(f"job_sched.{name}").policy(), env)
        self._last: tuple[Any, int] | None = None

    def act(self, obs) -> int:
        if self._last is None or self._last[0] is not obs:
            self._last = (obs, self.agent.act(obs))
        return self._last[1]


def _shadows(teacher: str, hint: str | None, env: JobSchedEnv) -> tuple[Shadow, Shadow | None]:
    """The teacher's shadow and the hint's (the same object when they are one heuristic)."""
    t = Shadow(teacher, env)
    return t, (t if hint == teacher else Shadow(hint, env) if hint else None)


def _teacher_agent(shadow: Shadow, env: JobSchedEnv, lookahead_every: int):
    """The labelling teacher: the heuristic's shadow, or with `lookahead_every` > 0 that heuristic improved by
    rollouts (`decima_lookahead.Lookahead`; the net's hint stays the plain heuristic's shadow)."""
    if not lookahead_every:
        return shadow
    from sysgym.agents.decima_lookahead import Lookahead, check_teacher

    check_teacher(shadow.name)
    return Lookahead(shadow, env, lookahead_every)


class TeacherActor(DecimaActor):
    """A heuristic (`job_sched.<name>`) in the net's place at the net's decisions (the stay rule unchanged, so
    the states are those the net meets); `samples` holds (observation, mask, action, relative label) for
    behaviour cloning. In "relative" mode the teacher's count becomes the nearest relative choice (`relative_choice`)
    and that is what is executed, so the rollout's JCT is the teacher's as the net could act it."""

    def __init__(self, teacher: str, env: JobSchedEnv, stay: str = LEGACY_STAY, limit_mode: str = LEGACY_LIMIT_MODE,
                 hint: str | None = None, lookahead_every: int = 0):
        super().__init__(None, env, stay=stay, limit_mode=limit_mode)
        shadow, self.hinter = _shadows(teacher, hint, env)  # samples carry `hint`'s columns when it is set
        self.agent = _teacher_agent(shadow, env, lookahead_every)
        self.samples: list[tuple[dict[str, np.ndarray], np.ndarray, int, Any]] = []

    def act(self, obs: dict[str, np.ndarray]) -> int:
        a = self._stay()
        if a is not None:
            return a
        mask = self.env.action_masks().copy()
        a, rel = _teacher_label(self.env, self.agent.act(obs), self.limit_mode)
        self.samples.append((augment(obs, self.env, self._hint(obs)), mask, a, rel))
        if a == self.env.wait_action:
            return a
        node = a // self.env.num_limits
        s = self.env._node_stage[node]
        self.last_stage[self.env.sim.stage_job[s]] = s
        return a


class LabelActor(DecimaActor):
    """DAgger (Ross et al., AISTATS'11): the net acts (greedy), and at each of its decisions the teacher's
    choice in the same state is recorded in `samples`, so cloning also sees the states the net's own mistakes
    lead to (plain cloning only sees the teacher's states). `lookahead_every` > 0: the teacher is improved by
    rollouts (`decima_lookahead.Lookahead`) every `lookahead_every`-th decision and at every decision where the
    net departs from the heuristic (its choice is then a candidate); its `looked` marks those samples."""

    def __init__(self, net: DecimaNet, teacher: str, env: JobSchedEnv, stay: str = LEGACY_STAY,
                 limit_mode: str = LEGACY_LIMIT_MODE, lookahead_every: int = 0):
        shadow, hinter = _shadows(teacher, getattr(net, "hint", None), env)
        super().__init__(net, env, stay=stay, limit_mode=limit_mode, hinter=hinter)
        self.agent = _teacher_agent(shadow, env, lookahead_every)
        self.samples: list[tuple[dict[str, np.ndarray], np.ndarray, int, Any]] = []

    def act(self, obs: dict[str, np.ndarray]) -> int:
        if self._stay() is not None:
            return super().act(obs)
        mask = self.env.action_masks().copy()
        aug = augment(obs, self.env, self._hint(obs))
        a = super().act(obs)  # the net's choice, taken; the teacher labels the same (not yet stepped) state
        label = self.agent.act(obs) if isinstance(self.agent, Shadow) else self.agent.act(obs, also=a)
        self.samples.append((aug, mask, *_teacher_label(self.env, label, self.limit_mode)))
        return a


def _worker_init(parent: int) -> None:
    """A `collect` worker: one torch thread (one core each), and it exits as soon as its parent is gone. A worker
    holds a whole episode (tens of minutes with rollouts), and one whose run was killed (SIGTERM, SIGKILL) would
    otherwise keep a core busy until that episode ends."""
    import threading

    torch.set_num_threads(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def _main_file() -> str | None:
    return getattr(sys.modules.get("__main__"), "__file__", None)


def _spawnable() -> bool:
    """Whether spawn can start workers: it re-runs the main module from its file, so a main script without one
    on disk (`python - < script.py` sets `__file__` to '<stdin>') breaks every worker before it starts."""
    main = _main_file()
    return main is None or os.path.isfile(main)


def _pool(workers: int, tasks: int, who: str):
    """A process pool of min(workers, tasks) spawned workers (`_worker_init`), or None when one process will do:
    one worker or task, or a main script spawn cannot re-run (`_spawnable`; then a warning, and the caller runs
    its tasks itself, which gives the same results)."""
    if workers <= 1 or tasks <= 1:
        return None
    if not _spawnable():
        import warnings

        warnings.warn(f"{who}(workers={workers}): worker processes are started by spawn, which re-runs the main "
                      f"script from its file, and this one has none ({_main_file()!r}, e.g. a script read on "
                      "standard input); running in this process instead (the same results)",
                      RuntimeWarning, stacklevel=3)
        return None
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn: a forked copy of a process whose torch already started threads can hang
    return ProcessPoolExecutor(min(workers, tasks), multiprocessing.get_context("spawn"),
                               initializer=_worker_init, initargs=(os.getpid(),))


def _episode(actor: DecimaActor, inst, lookahead_every: int) -> tuple[list, list[bool], dict[str, Any],
                                                                       dict[str, Any]]:
    """Run a labelling actor (`TeacherActor`, `LabelActor`) for one episode: (samples, per sample whether the
    teacher looked ahead, run stats, teacher stats)."""
    with torch.no_grad():
        res = actor.run(inst)
    look = actor.agent if lookahead_every else None
    return (actor.samples, list(look.looked) if look else [False] * len(actor.samples), res,
            look.stats() if look else {})


def _teacher_rollout(inst, teacher: str, stay: str, num_limits: int, limit_mode: str, hint: str | None,
                     lookahead_every: int) -> tuple[list, list[bool], dict[str, Any], dict[str, Any]]:
    """One teacher episode (`_episode`)."""
    env = make_env(inst, num_limits, limit_mode)
    return _episode(TeacherActor(teacher, env, stay, limit_mode, hint, lookahead_every), inst, lookahead_every)


def _label_rollout(inst, net: DecimaNet, teacher: str, stay: str, num_limits: int, limit_mode: str,
                   lookahead_every: int) -> tuple[list, list[bool], dict[str, Any], dict[str, Any]]:
    """One DAgger episode, the net greedy and the teacher labelling (`_episode`)."""
    env = make_env(inst, num_limits, limit_mode)
    return _episode(LabelActor(net, teacher, env, stay, limit_mode, lookahead_every), inst, lookahead_every)


def collect(teacher: str, instances: list, net: DecimaNet | None = None, stay: str = LEGACY_STAY,
            num_limits: int = LEGACY_LIMITS, limit_mode: str = LEGACY_LIMIT_MODE,
            hint: str | None = None, lookahead_every: int = 0, lookahead_weight: int = 1, workers: int = 1,
            teacher_stats: list | None = None) -> tuple[list, list[float], int]:
    """(samples, episode mean JCTs, env steps): the teacher's own rollouts (net None) or, for DAgger, the net's
    greedy rollouts labelled by the teacher, under the stay rule `stay` in an env of `num_limits` levels (in
    "relative" `limit_mode`: one level per executor). `lookahead_every` > 0: the teacher improved by rollouts
    (`decima_lookahead.Lookahead`; under DAgger it also looks wherever the net departs from the heuristic), whose
    looked-ahead samples count `lookahead_weight` times; `workers` > 1 runs the episodes in that many processes
    (the samples are the same, in the same order); each episode's teacher statistics are appended to
    `teacher_stats`."""
    check_stay(stay)
    check_limit_mode(limit_mode)
    if net is None:
        fn, args = _teacher_rollout, [(inst, teacher, stay, num_limits, limit_mode, hint, lookahead_every)
                                      for inst in instances]
    else:
        fn, args = _label_rollout, [(inst, net, teacher, stay, num_limits, limit_mode, lookahead_every)
                                    for inst in instances]
    pool = _pool(workers, len(instances), "collect")
    if pool is not None:
        with pool:
            runs = list(pool.map(fn, *zip(*args)))
    else:
        runs = [fn(*a) for a in args]
    data, jct, steps = [], [], 0
    for samples, looked, res, st in runs:
        jct.append(res["mean_jct_s"])
        steps += res["env_steps"]
        for sample, seen in zip(samples, looked):
            data += [sample] * (lookahead_weight if seen else 1)
        if teacher_stats is not None:
            teacher_stats.append({**st, "mean_jct_s": res["mean_jct_s"], "samples": len(samples)})
    return data, jct, steps


def behaviour_clone(net: DecimaNet, teacher: str, instances: list, epochs: int, lr: float,
                    num_limits: int = LEGACY_LIMITS,
                    log=print, data: list | None = None, stay: str = LEGACY_STAY,
                    limit_mode: str = LEGACY_LIMIT_MODE, hint: str | None = None, lookahead_every: int = 0,
                    lookahead_weight: int = 1, workers: int = 1) -> dict[str, Any]:
    """Imitation warm start: cross-entropy of the net's (stage, limit) on the teacher's choices (on `data`, e.g.
    DAgger's aggregate, when given; else on the teacher's rollouts of `instances`, improved by rollouts every
    `lookahead_every`-th decision when > 0, see `collect`). `num_limits`: the env's levels in "absolute" mode
    (unused in "relative" mode, whose samples carry their choice)."""
    teacher_stats: list[dict[str, Any]] = []
    if data is None:
        data, jct, steps = collect(teacher, instances, stay=stay, num_limits=num_limits, limit_mode=limit_mode,
                                   hint=hint, lookahead_every=lookahead_every, lookahead_weight=lookahead_weight,
                                   workers=workers, teacher_stats=teacher_stats)
    else:
        jct, steps = [float("nan")], 0
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    rng = np.random.default_rng(0)
    K = len(RELATIVE_CHOICES)
    losses = []
    who = f"{teacher}+lookahead/{lookahead_every}" if lookahead_every else teacher
    for ep in range(epochs):
        total = 0.0
        for i in rng.permutation(len(data)):
            obs, mask, a, rel = data[i]
            n = len(obs["node_job"])
            L = len(mask) // n  # the env's levels (its mask: n * L entries, then the wait action's)
            node, level = divmod(a, L)
            m = torch.as_tensor(mask[:n * L].reshape(n, L))
            scores, limits, wait = net(obs, L if limit_mode == "absolute" else K)
            scores = scores.masked_fill(~m.any(1), -float("inf"))
            if len(mask) > n * L:  # the env's wait action
                scores = torch.cat([scores, wait[None] if mask[-1] else torch.full((1,), -float("inf"))])
            loss = -torch.log_softmax(scores, 0)[node]
            if node < n:
                if rel is not None:
                    _, level, lm = rel
                    lim = limits[node].masked_fill(~torch.as_tensor(lm), -float("inf"))
                else:
                    lim = limits[node].masked_fill(~m[node], -float("inf"))
                loss = loss - torch.log_softmax(lim, 0)[level]
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach())
        losses.append(total / len(data))
        log(f"[decima] imitation of {who}: epoch {ep + 1} mean loss {total / len(data):.3f} "
            f"({len(data)} decisions, teacher JCT {np.mean(jct):.2f})")
    return {"teacher_mean_jct_s": float(np.mean(jct)), "samples": len(data), "env_steps": steps,
            "epoch_losses": losses, "teacher_episodes": teacher_stats}


def time_baseline(times: list[np.ndarray], returns: list[np.ndarray]) -> list[np.ndarray]:
    """Decima's time-based baseline: for each rollout's decision at time t, the mean over the rollouts of the
    return-to-go at t (each rollout's return-to-go of its first decision at or after t; 0 past its end)."""
    out = []
    for t in times:
        vals = []
        for tk, gk in zip(times, returns):
            i = np.searchsorted(tk, t, side="left")
            vals.append(np.where(i < len(gk), gk[np.minimum(i, len(gk) - 1)], 0.0))
        out.append(np.mean(vals, axis=0))
    return out


@dataclass
class TrainConfig:
    preset: str = "decima"
    num_jobs: int = 20  # 10 jobs at t=0 + 10 Poisson arrivals: several concurrent jobs, episodes short on 2 cores
    rollouts: int = 4  # K rollouts of one arrival sequence per iteration (Decima: 16 workers)
    iterations: int = 60
    lr: float = 1e-3
    entropy: float = 0.05
    entropy_decay: float = 0.97  # per iteration (Decima decays its entropy weight too)
    reward_scale: float = 1e-3  # returns are job-seconds; scaled so the gradient has a sane size
    eval_every: int = 5
    val_seeds: list[int] = field(default_factory=lambda: [900, 901])
    seed: int = 0
    hidden: int = 32
    embed: int = 16
    depth: int = 4
    max_wall_s: float = 1800.0
    # imitation warm start (issue 17 item 2): behaviour cloning of this heuristic at the net's decisions on
    # `pretrain_instances` training instances before REINFORCE (None: REINFORCE from a random init, as Decima)
    pretrain: str | None = None
    pretrain_instances: int = 3
    pretrain_epochs: int = 1
    pretrain_lr: float = 1e-3
    # DAgger rounds after cloning: each rolls the net out greedily on `dagger_instances` new training instances,
    # labels its decisions with the `pretrain` teacher, adds them to the data and fits `dagger_epochs` on it all
    # (then a validation, keeping the best). Plain cloning of fair scored far worse greedy than fair (val 60 vs 32)
    dagger_rounds: int = 0
    dagger_instances: int = 2
    dagger_epochs: int = 1
    init: str | None = None  # start from this Decima checkpoint's weights (decima.pt or its run folder)
    # the actor's stay rule (STAY_RULES) in training, validation and, recorded in decima.json, every later rollout
    stay: str = LEGACY_STAY
    # the env's parallelism levels (JobSched-v0's num_limits): 10 (its default, the first shipped policy's) can
    # only send executors in steps of E / 10, so uwfq acting through it at every decision (stay "none") scored
    # 39.80 s on validation seeds 900-904 against its own 37.09; with 100 (= the Decima preset's E) 37.09
    num_limits: int = LEGACY_LIMITS
    # the limit head's mode (LIMIT_MODES): "absolute" picks one of the env's num_limits levels (the first shipped
    # policy's); "relative" picks how many executors to add to the job (RELATIVE_CHOICES), in an env of one level
    # per executor (num_limits is then unused); recorded in decima.json and the ONNX metadata like `stay`
    limit_mode: str = LEGACY_LIMIT_MODE
    # a heuristic whose choice the net takes as an input (HINT_NODE; e.g. "uwfq"), or None (Decima's inputs);
    # recorded in decima.json's "net" and the ONNX metadata, and run beside the net in every later rollout
    hint: str | None = None
    # the share of sampled decisions whose graph REINFORCE keeps (Decision; 1: all, Decima's)
    grad_fraction: float = 1.0
    # > 0: the cloning teacher (`pretrain`) is improved by one-step rollouts at every lookahead_every-th decision
    # (`decima_lookahead`, Bertsekas's rollout algorithm, on training instances only); needs stay "none", relative
    # limits and a teacher that ranks stages (fifo, uwfq); DAgger rounds then label with it too, looking also
    # wherever the net departs from the heuristic; looked-ahead samples count lookahead_weight times in the loss
    lookahead_every: int = 0
    lookahead_weight: int = 1
    # processes for the cloning teacher's and DAgger's episodes (the same samples as one process, in order) and
    # for REINFORCE's rollouts (> 1: each rollout draws from its own seeded generator, so the updates differ from
    # one worker's but not between 2 or more workers or a run that falls back to one process; train_step)
    workers: int = 1

    def __post_init__(self):
        check_stay(self.stay)
        check_limit_mode(self.limit_mode)
        check_hint(self.hint)
        if isinstance(self.grad_fraction, bool) or not isinstance(self.grad_fraction, (int, float)) or \
                not 0 < self.grad_fraction <= 1:
            from sysgym.errors import InvalidArgumentError

            raise InvalidArgumentError(f"grad_fraction must be in (0, 1], got {self.grad_fraction!r}")
        from sysgym.errors import InvalidArgumentError

        for name, low in (("num_limits", 1), ("lookahead_every", 0), ("lookahead_weight", 1), ("workers", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise InvalidArgumentError(f"{name} must be an integer >= {low}, got {v!r}")
        if self.lookahead_every and (self.pretrain is None or self.stay != "none" or self.limit_mode != "relative"):
            raise InvalidArgumentError("lookahead_every > 0 improves the cloning teacher: it needs "
                                       "pretrain=<heuristic>, stay='none' and limit_mode='relative' "
                                       "(decima_lookahead's module doc), got "
                                       f"pretrain={self.pretrain!r}, stay={self.stay!r}, "
                                       f"limit_mode={self.limit_mode!r}")
        if self.lookahead_every:
            from sysgym.agents.decima_lookahead import check_teacher

            check_teacher(self.pretrain)


def make_instance(cfg: TrainConfig | dict, seed: int):
    from sysgym.envs.job_sched.generator import generate_v1

    c = cfg if isinstance(cfg, dict) else asdict(cfg)
    return generate_v1(seed=seed, preset=c["preset"], num_jobs=c["num_jobs"])


def make_env(instance, num_limits: int = LEGACY_LIMITS, limit_mode: str = LEGACY_LIMIT_MODE) -> JobSchedEnv:
    """The env the policy runs in: JobSched-v0's defaults plus the wait action (Decima's "no node"), with
    `num_limits` parallelism levels (`TrainConfig.num_limits`), or in "relative" `limit_mode` one level per
    executor (so every count of executors to add is one level)."""
    if check_limit_mode(limit_mode) == "relative":
        num_limits = int(instance.num_executors)
    return JobSchedEnv(instance=instance, allow_wait=True, num_limits=num_limits)


def evaluate_greedy(net: DecimaNet, instances: list, stay: str = LEGACY_STAY, num_limits: int = LEGACY_LIMITS,
                    limit_mode: str = LEGACY_LIMIT_MODE) -> list[float]:
    """Greedy rollouts (stay rule `stay`, `num_limits` levels, `limit_mode`) scored by the job_sched evaluator
    (the one scorer)."""
    from sysgym.registry import get_family
    from sysgym.solution import Solution

    fam = get_family("job_sched")
    out = []
    for inst in instances:
        env = make_env(inst, num_limits, limit_mode)
        DecimaActor(net, env, stay=stay, limit_mode=limit_mode).run(inst)
        out.append(float(fam.evaluate(inst, Solution(env.decisions(), np.nan, "feasible", 0.0))[fam.objective]))
    return out


def _sample_rollout(state: dict[str, torch.Tensor], instance, cfg: TrainConfig, seed: int
                    ) -> tuple[list[Decision], dict[str, Any]]:
    """One sampled REINFORCE rollout of `instance` by the net with weights `state`, drawing from a generator
    seeded `seed` (a worker's task, `train_step` with workers > 1): its decisions, the kept ones with their
    `Replay` instead of a graph, and the run's stats."""
    net = DecimaNet(cfg.hidden, cfg.embed, cfg.depth, cfg.hint)
    net.load_state_dict(state)
    actor = DecimaActor(net, make_env(instance, cfg.num_limits, cfg.limit_mode), greedy=False,
                        generator=torch.Generator().manual_seed(seed), record=True, stay=cfg.stay,
                        limit_mode=cfg.limit_mode, grad_fraction=cfg.grad_fraction, replay=True)
    with torch.no_grad():
        res = actor.run(instance)
    return actor.decisions, res


def train_step(net: DecimaNet, opt: torch.optim.Optimizer, instance, cfg: TrainConfig, gen: torch.Generator,
               entropy_w: float, pool=None) -> dict[str, float]:
    """One REINFORCE update from cfg.rollouts sampled rollouts of `instance` (module doc). With cfg.workers > 1
    each rollout draws from its own generator (seeded from `gen`) and runs as a task of `pool` (in this process
    when None: the same update), and its kept decisions' log-probabilities are recomputed here with their graph
    (`replayed`), as Decima's agents send their experience to one learner; with 1 worker the rollouts share
    `gen` and keep their graphs (the earlier runs' scheme, reproduced bit for bit)."""
    if cfg.workers > 1:
        seeds = [int(x) for x in torch.randint(0, 2 ** 62, (cfg.rollouts,), generator=gen)]
        state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        args = [(state, instance, cfg, sd) for sd in seeds]
        runs = list(pool.map(_sample_rollout, *zip(*args))) if pool is not None else \
            [_sample_rollout(*a) for a in args]
        for ds, _ in runs:
            for d in ds:
                if d.replay is not None:
                    d.logp, d.entropy = replayed(net, d.replay)
                    d.replay = None
    else:
        runs = []
        for _ in range(cfg.rollouts):
            actor = DecimaActor(net, make_env(instance, cfg.num_limits, cfg.limit_mode), greedy=False,
                                generator=gen, record=True, stay=cfg.stay, limit_mode=cfg.limit_mode,
                                grad_fraction=cfg.grad_fraction)
            res = actor.run(instance)
            runs.append((actor.decisions, res))
    times = [np.array([d.time_s for d in ds]) for ds, _ in runs]
    rets = [np.cumsum([d.reward * cfg.reward_scale for d in ds][::-1])[::-1].copy() for ds, _ in runs]
    base = time_baseline(times, rets)
    loss = torch.zeros(())
    n = sum(len(ds) for ds, _ in runs)
    w = 1.0 / min(cfg.grad_fraction, 1.0)  # each kept decision stands for 1 / grad_fraction decisions
    for (ds, _), g, b in zip(runs, rets, base):
        keep = [i for i, d in enumerate(ds) if d.logp is not None]
        if not keep:
            continue
        adv = torch.as_tensor((g - b)[keep], dtype=torch.float32)
        logp = torch.stack([ds[i].logp for i in keep])
        ent = torch.stack([ds[i].entropy for i in keep])
        loss = loss - w * (adv * logp).sum() / n - w * entropy_w * ent.sum() / n
    if loss.requires_grad:  # else no decision was kept (a short episode at a small grad_fraction): no update
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
    return {"loss": float(loss.detach()), "mean_jct_s": float(np.mean([r["mean_jct_s"] for _, r in runs])),
            "env_steps": sum(r["env_steps"] for _, r in runs), "net_calls": n}


def train_reinforce(cfg: TrainConfig, out_dir: str | Path, log=print) -> DecimaNet:
    """Train, writing `out_dir/decima.pt` (state dict), `decima.json` (config, curve) and a checkpoint each
    evaluation, so an interrupted run keeps its best-so-far policy."""
    torch.manual_seed(cfg.seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net = DecimaNet(cfg.hidden, cfg.embed, cfg.depth, cfg.hint)
    if cfg.init:
        net.load_state_dict(load_net(cfg.init)[0].state_dict())
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    val = [make_instance(cfg, s) for s in cfg.val_seeds]
    curve: list[dict[str, float]] = []
    t0, steps, calls, best = time.perf_counter(), 0, 0, float("inf")
    rng = np.random.default_rng(cfg.seed)
    pretrained: dict[str, Any] = {}  # the cloning step's record (teacher, samples, losses), once it ran
    rounds: list[dict[str, Any]] = []  # DAgger rounds' teacher statistics, once they ran

    def evaluate(it: int, **extra):
        nonlocal best
        jct = float(np.mean(evaluate_greedy(net, val, cfg.stay, cfg.num_limits, cfg.limit_mode)))
        curve.append({"iteration": it, **extra, "env_steps": steps, "net_calls": calls,
                      "wall_s": round(time.perf_counter() - t0, 1), "val_mean_jct_s": jct})
        log(f"[decima] it {it} env_steps {steps} net_calls {calls} wall {curve[-1]['wall_s']} s val JCT {jct:.2f}")
        if jct < best:  # keep the best validated policy (validation seeds are disjoint from the benchmark's)
            best = jct
            torch.save(net.state_dict(), out / "decima.pt")
        meta = {"config": asdict(cfg), "stay": cfg.stay, "num_limits": cfg.num_limits, "limit_mode": cfg.limit_mode,
                "curve": curve, "best_val_mean_jct_s": best,
                "net": {"hidden": cfg.hidden, "embed": cfg.embed, "depth": cfg.depth, "hint": cfg.hint}}
        if pretrained:
            meta["pretrain"] = pretrained
        if rounds:
            meta["dagger"] = rounds
        (out / "decima.json").write_text(json.dumps(meta, indent=1))

    if cfg.pretrain and cfg.pretrain_instances:
        bc = behaviour_clone(net, cfg.pretrain, [make_instance(cfg, int(s)) for s in rng.integers(0, 800,
                             cfg.pretrain_instances)], cfg.pretrain_epochs, cfg.pretrain_lr, log=log, stay=cfg.stay,
                             num_limits=cfg.num_limits, limit_mode=cfg.limit_mode, hint=cfg.hint,
                             lookahead_every=cfg.lookahead_every, lookahead_weight=cfg.lookahead_weight,
                             workers=cfg.workers)
        steps += bc["env_steps"]
        pretrained.update({k: bc[k] for k in ("teacher_mean_jct_s", "samples", "env_steps", "epoch_losses",
                                              "teacher_episodes")}, wall_s=round(time.perf_counter() - t0, 1))
    evaluate(0)
    data: list = []
    for r in range(1, cfg.dagger_rounds + 1):
        stats: list[dict[str, Any]] = []
        new, jct, n = collect(cfg.pretrain, [make_instance(cfg, int(s)) for s in rng.integers(0, 800,
                              cfg.dagger_instances)], net, cfg.stay, cfg.num_limits, cfg.limit_mode,
                              lookahead_every=cfg.lookahead_every, lookahead_weight=cfg.lookahead_weight,
                              workers=cfg.workers, teacher_stats=stats)
        data += new
        steps += n
        rounds.append({"round": r, "episodes": stats, "wall_s": round(time.perf_counter() - t0, 1)})
        log(f"[decima] DAgger round {r}: net JCT {np.mean(jct):.2f}, {len(new)} labelled decisions"
            + (f", teacher looks {sum(e['looks'] for e in stats)} (at {sum(e['disagreed'] for e in stats)} "
               f"departures from {cfg.pretrain}), changed {sum(e['changed'] for e in stats)}"
               if cfg.lookahead_every else ""))
        behaviour_clone(net, cfg.pretrain, [], cfg.dagger_epochs, cfg.pretrain_lr, cfg.num_limits, log=log, data=data,
                        limit_mode=cfg.limit_mode, lookahead_every=cfg.lookahead_every)  # (the log's teacher name)
        evaluate(0, dagger_round=r)
    # the rollouts' workers live for the whole run (spawning one costs seconds: torch's import)
    pool = _pool(cfg.workers, cfg.rollouts, "train_reinforce") if cfg.iterations else None
    try:
        for it in range(1, cfg.iterations + 1):
            inst = make_instance(cfg, int(rng.integers(0, 800)))  # training seeds 0-799; validation 900+
            stats = train_step(net, opt, inst, cfg, gen, cfg.entropy * cfg.entropy_decay ** it, pool)
            steps += stats["env_steps"]
            calls += stats["net_calls"]
            log(f"[decima] it {it} train JCT {stats['mean_jct_s']:.2f} loss {stats['loss']:.4f}")
            over = time.perf_counter() - t0 > cfg.max_wall_s
            if it % cfg.eval_every == 0 or it == cfg.iterations or over:
                evaluate(it)
            if over:
                break
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return net


def load_net(path: str | Path) -> tuple[DecimaNet, dict[str, Any]]:
    """A trained net from `decima.pt` (its `decima.json` beside it) or a folder holding both."""
    p = Path(path)
    if p.is_dir():
        p = p / "decima.pt"
    meta = json.loads(p.with_suffix(".json").read_text())
    net = DecimaNet(**meta["net"])
    net.load_state_dict(torch.load(p, map_location="cpu", weights_only=True))
    net.eval()
    return net, meta


def main(argv: list[str] | None = None) -> None:
    """`python -m sysgym.agents.decima OUT_DIR [key=value ...]` trains into OUT_DIR (TrainConfig's fields)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if not args:
        raise SystemExit("usage: python -m sysgym.agents.decima OUT_DIR [key=value ...]")
    from dataclasses import fields

    from sysgym.errors import InvalidArgumentError, UnknownNameError

    known = [f.name for f in fields(TrainConfig)]
    kw: dict[str, Any] = {}
    for a in args[1:]:  # every argument is checked before training starts
        k, eq, v = a.partition("=")
        if not eq:
            raise InvalidArgumentError(f"{a!r}: arguments are key=value (TrainConfig's fields)")
        if k not in known:
            raise UnknownNameError("TrainConfig field", k, known)
        try:
            kw[k] = json.loads(v)
        except ValueError:
            raise InvalidArgumentError(f"{a!r}: the value must be JSON (quote strings: {k}='\"{v}\"')") from None
    cfg = TrainConfig(**kw)
    torch.set_num_threads(1)
    train_reinforce(cfg, args[0], log=lambda m: print(m, flush=True))


if __name__ == "__main__":
    main()
