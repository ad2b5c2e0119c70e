"""Gymnasium envs over the serving simulator (the same `replica.Replica` that `simulate` runs).

`sysgym/LlmServing-v0` -- one replica; the agent takes the decisions a scheduler takes at every iteration
boundary. The engine's batching style, KV reservation, token budget, watermark and preemption mode are
those of `scheduler=` (a registered scheduler's name, default ``"vllm"``, with `scheduler_params`, or a
scheduler object); the boundary runs as in `Replica.step`:

* prefill-first engines (vllm, past_future, vtc, sjf): the agent admits waiting requests (their prefills
  then make the iteration) or runs; with nothing admitted, every running request decodes, and when a decode
  lacks a KV block the agent must first preempt (phase ``"preempt"``: only preemptions are valid);
* mixed engines (orca, sarathi): the agent first preempts until every decode has its block, ongoing chunked
  prefills continue, then the agent admits under the iteration's token budget or runs.

Action (Discrete(1 + W + P)): 0 = run the iteration; 1 + i = admit waiting slot i (the W first waiting
requests in the engine's scheduler's order: FCFS for vllm); 1 + W + j = preempt running slot j (admission
order; the batch cap is at most P, so every running request has a slot). `action_masks()`: admit i where the
engine may admit it (batch cap, token budget, the scheduler's memory rule); preempt j for a request that ran
in the previous iteration (any running request in phase ``"preempt"``); run where something would run.
Reward: -(requests in the system x elapsed time) / number of requests, so an episode's return is minus the
mean end-to-end latency (Little's law). Observation (Dict, in [0, 1]): `waiting` (W, 6): present, arrival
rank, prompt / max_tokens, predicted output / max_tokens (``predictor="oracle"``: true lengths; ``"none"``:
0), generated / max_tokens, client's weighted service share; `running` (P, 6): present, arrival rank,
prompt, generated, KV blocks / pool, in prefill; `global` (4,): free blocks share, waiting / W, running / P,
time share of the trace; `mask` (the action mask).
An instance with pp > 1 runs one batch at a time through the whole pipeline (`simulate(..., pipeline=
"sequential")`): the agent decides at each whole-pipeline iteration boundary, so its throughput is below
`simulate`'s default micro-batched pipeline (several batches in flight; `envs/llm_serving/pipeline.py`).

A registered scheduler drives this env as its policy: `pol = sysgym.solvers.get("llm_serving.vtc").policy(inst)`,
`env = sysgym.make("LlmServing-v0", instance=inst, scheduler=pol, max_running=256)`, then
`pol.act(obs, mask)` each step; the episode is exactly the simulator's run of that scheduler (a test checks it)
when `max_running` is at least the batch cap.

`sysgym/LlmRouting-v0` -- `num_replicas` replicas (each running `scheduler=`, default vllm); each step routes
the next arriving request (Discrete(num_replicas), all valid). Observation: per replica (outstanding,
waiting, running) / 64 and KV use, plus the request's prompt and (oracle) output length; reward:
-(integral of requests in the system since the previous arrival) / number of requests (return = minus mean
latency). Its episodes are `simulate(..., routes=...)` of the routes taken.

Invalid actions (the kit's vocabulary, `sysgym.env`): ``invalid_action="penalise"`` (default) makes the step
a no-op with reward -1 and `info["invalid_action"]` naming the action; ``"raise"`` raises
InvalidActionError. `decisions()` is the per-request records `llm_serving.evaluate` scores.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

from sysgym.env import SysgymEnv
from sysgym.envs.llm_serving.generator import GENERATOR, PRESETS
from sysgym.envs.llm_serving.instance import ServingInstance
from sysgym.envs.llm_serving.replica import DecisionPoint, Replica, RequestState, Scheduler, make_scheduler
from sysgym.envs.llm_serving.simulator import build_replicas, records_of
from sysgym.errors import InvalidArgumentError, UnknownNameError

W_FEAT, R_FEAT, G_FEAT = 6, 6, 4
PREDICTORS = ("oracle", "none")


def _checked_scheduler(scheduler: str | Scheduler, params: dict | None) -> tuple[str | Scheduler, dict]:
    params = dict(params or {})
    make_scheduler(scheduler, **params)  # unknown names and parameters: named errors before any work
    return scheduler, params


def _scheduler_for(scheduler: str | Scheduler, params: dict, inst: ServingInstance, seed: int = 0) -> Scheduler:
    """A fresh scheduler of `scheduler` (a name) with the instance's batch cap unless `params` set one; an
    object is used as it is (bound again at every reset)."""
    if not isinstance(scheduler, str):
        return scheduler
    params = dict(params)
    if params.get("max_num_seqs") is None and inst.max_num_seqs is not None:
        params["max_num_seqs"] = inst.max_num_seqs
    if scheduler == "sjf" and params.get("predictor") == "noisy":
        params.setdefault("seed", seed)
    return make_scheduler(scheduler, **params)


def _deploy(inst: ServingInstance, schedulers: list[Scheduler]) -> tuple[RequestState, list[Replica]]:
    st, reps, _plan, _ = build_replicas(inst.trace, model=inst.model, gpu=inst.gpu, tp=inst.tp, pp=inst.pp,
                                        block_size=inst.block_size, max_tokens=inst.max_tokens,
                                        memory_semantics=inst.memory_semantics, num_blocks=inst.num_blocks,
                                        schedulers=schedulers)
    return st, reps


def _area(st: RequestState, t0: float, t1: float, upto: int | None = None) -> float:
    """Integral over [t0, t1] of the number of requests in the system (the first `upto` requests)."""
    hi = int(np.searchsorted(st.arrival, t1, side="left")) if upto is None else upto
    f = np.where(np.isnan(st.finish[:hi]), np.inf, st.finish[:hi])
    return float(np.clip(np.minimum(f, t1) - np.maximum(st.arrival[:hi], t0), 0, None).sum())


class LlmServingEnv(SysgymEnv):
    family = "llm_serving"

    def __init__(self, instance: ServingInstance | None = None, preset: str = "small", max_waiting: int = 16,
                 max_running: int = 64, predictor: str = "oracle", scheduler: str | Scheduler = "vllm",
                 scheduler_params: dict | None = None, invalid_action: str = "penalise",
                 generator_params: dict | None = None, render_mode: str | None = None):
        super().__init__(instance=instance, preset=None if instance is not None else preset,
                         generator_params=generator_params, invalid_action=invalid_action, render_mode=render_mode)
        if predictor not in PREDICTORS:
            raise UnknownNameError("predictor", predictor, PREDICTORS)
        if int(max_waiting) < 1 or int(max_running) < 1:
            raise InvalidArgumentError(f"max_waiting and max_running must be >= 1, got {max_waiting}, {max_running}")
        self.scheduler, self.scheduler_params = _checked_scheduler(scheduler, scheduler_params)
        self.W, self.P = int(max_waiting), int(max_running)
        self.predictor = predictor
        self.action_space = spaces.Discrete(1 + self.W + self.P)
        self.observation_space = spaces.Dict({
            "waiting": spaces.Box(0.0, 1.0, (self.W, W_FEAT), np.float32),
            "running": spaces.Box(0.0, 1.0, (self.P, R_FEAT), np.float32),
            "global": spaces.Box(0.0, 1.0, (G_FEAT,), np.float32),
            "mask": spaces.MultiBinary(1 + self.W + self.P),
        })
        self.rep: Replica | None = None

    # -- episode --------------------------------------------------------------------------------------
    def start(self, inst: ServingInstance, options: dict[str, Any]):
        sched = _scheduler_for(self.scheduler, self.scheduler_params, inst)
        st, (rep,) = _deploy(inst, [sched])
        rep.max_num_seqs = min(int(sched.max_num_seqs or inst.max_num_seqs or rep.max_num_seqs), self.P)
        for i in range(len(inst.trace)):
            rep.add(i)
        self.rep, self.st, self.sched = rep, st, sched
        self.n = len(inst.trace)
        self.max_tokens = rep.max_tokens
        self.t_end = float(inst.trace.arrival[-1]) + 1e-9
        self.stage = "boundary"  # boundary -> [reserve] -> admit -> [reserve] -> run -> boundary
        self.pending: list[tuple[int, int]] = []  # prefills (request, tokens) of the coming iteration
        self.budget = 0
        self.extra = 0.0  # swap seconds the coming iteration pays
        self.before: set[int] = set()  # requests that ran in the previous iteration
        self.done = False
        self.steps = 0
        self._carry = self._to_decision()  # latency accrued before the first decision joins the first reward
        return self._obs(), self._info()

    def decisions(self) -> dict[str, Any]:
        return records_of(self.st, [self.rep])

    def layout_kwargs(self) -> dict[str, Any]:
        return {"max_waiting": self.W, "max_running": self.P}

    def step(self, action):
        if self.rep is None:
            raise RuntimeError("call reset() before step()")
        if self.done:
            raise RuntimeError("the episode is over (every request finished); call reset()")
        a, why = self.discrete_action(action)  # the kit's check: an integer inside the space (1.5 is refused)
        if why:
            return self.invalid(why, self._obs(), self._info())
        point = self.rep.decision
        if not point.mask[a]:
            kind = "run" if a == 0 else ("admit waiting slot" if a <= self.W else "preempt running slot")
            return self.invalid(f"action {a} ({kind}) is masked in phase {point.phase!r} "
                                f"({int(point.mask.sum())} valid actions)", self._obs(), self._info())
        rep = self.rep
        self.steps += 1
        if 1 <= a <= self.W:
            rid = point.waiting[a - 1]
            _, need = rep.admissible(rid, self.pending, self.budget)
            self.budget = rep.admit(rid, need, self.pending, self.budget)
        elif a > self.W:
            rid = point.running[a - 1 - self.W]
            self.extra += rep.preempt(rid)
            self.before.discard(rid)
        else:
            self.stage = "run" if (self.sched.mixed or self.pending) else "reserve"
        reward = self._carry + self._to_decision()
        self._carry = 0.0
        return self._obs(), -reward / self.n, self.done, False, self._info()

    # -- the boundary, as Replica.step runs it, stopping where a decision is the agent's ----------------
    def _to_decision(self) -> float:
        """Advance until the agent has a choice (or the episode ends); returns the latency area accrued."""
        rep, sched = self.rep, self.sched
        rep.decision = None
        area = 0.0
        while True:
            if self.stage == "boundary":
                rep.ingest()
                while rep.idle() and rep.ptr < len(rep.arrivals):
                    rep.now = max(rep.now, rep.next_arrival())
                    rep.ingest()
                if rep.idle():
                    self.done = True
                    rep.decision = DecisionPoint("done", [], [], self.W, self._run_only_mask())
                    return area
                self.before = set(rep.running)
                self.pending, self.extra = [], 0.0
                self.budget = rep.token_budget
                self.stage = "reserve" if sched.mixed else "admit"
            if self.stage == "reserve":
                if rep.decode_shortfall() > 0:
                    return area + self._decide("preempt")
                rep.allocate_decodes()
                self.extra += rep.swap_in()
                if sched.mixed:
                    self.budget = rep.chunk_continuations(self.pending)
                    self.stage = "admit"
                else:
                    self.stage = "run"
            if self.stage == "admit":
                mask = self._admit_mask()
                if mask[1:].any():
                    return area + self._decide("admit", mask)
                if not mask[0]:
                    raise rep.never_admitted()
                self.stage = "run" if (sched.mixed or self.pending) else "reserve"
                continue
            if self.stage == "run":
                area += self._execute()
                self.stage = "boundary"

    def _decide(self, phase: str, mask: np.ndarray | None = None) -> float:
        if mask is None:
            mask = self._preempt_mask()
        self.rep.decision = DecisionPoint(phase, self._waiting(), list(self.rep.running[: self.P]), self.W, mask)
        return 0.0

    def _waiting(self) -> list[int]:
        return self.sched.waiting()[: self.W] if len(self.sched) else []

    def _run_only_mask(self) -> np.ndarray:
        mask = np.zeros(self.action_space.n, bool)
        mask[0] = True
        return mask

    def _would_run(self) -> bool:
        rep = self.rep
        return bool(self.pending or rep.running or rep.swapped or self.extra > 0)

    def _admit_mask(self) -> np.ndarray:
        rep = self.rep
        mask = np.zeros(self.action_space.n, bool)
        mask[0] = self._would_run()
        if not rep.swapped:
            for i, rid in enumerate(self._waiting()):
                mask[1 + i] = rep.admissible(rid, self.pending, self.budget)[0]
        chunking = {r for r, _ in self.pending}
        for j, rid in enumerate(rep.running[: self.P]):
            mask[1 + self.W + j] = rid in self.before and rid not in chunking
        return mask

    def _preempt_mask(self) -> np.ndarray:
        mask = np.zeros(self.action_space.n, bool)
        mask[1 + self.W: 1 + self.W + min(len(self.rep.running), self.P)] = True
        return mask

    def _execute(self) -> float:
        rep, st = self.rep, self.st
        R = rep.running_array()
        if self.sched.mixed:
            dec = R[~st.in_prefill[R]]
        else:
            dec = R if not self.pending else np.zeros(0, np.int64)
        t0 = rep.now
        if not self.pending and not len(dec):
            if self.extra <= 0:
                raise rep.never_admitted()
            rep.advance(self.extra, 0, 0)  # only swaps happened
        else:
            rep.execute(self.pending, dec, self.extra)
        self.pending, self.extra = [], 0.0
        return _area(st, t0, rep.now)

    def action_masks(self) -> np.ndarray:
        if self.rep is None:
            raise RuntimeError("call reset() before action_masks()")
        return self.rep.decision.mask.copy()

    # -- observation ----------------------------------------------------------------------------------
    def _obs(self) -> dict[str, np.ndarray]:
        rep, st, point = self.rep, self.st, self.rep.decision
        mt = float(self.max_tokens)
        n = max(self.n, 1)
        w = np.zeros((self.W, W_FEAT), np.float32)
        if point.waiting:
            served = np.bincount(st.client, weights=(st.prompt * (st.generated > 0) + 2 * st.generated),
                                 minlength=int(st.client.max()) + 1)  # VTC's service measure
            tot = max(served.sum(), 1.0)
            for i, r in enumerate(point.waiting):
                w[i] = (1.0, r / n, min(st.prompt[r] / mt, 1.0),
                        min(st.output[r] / mt, 1.0) if self.predictor == "oracle" else 0.0,
                        min(st.generated[r] / mt, 1.0), served[st.client[r]] / tot)
        p = np.zeros((self.P, R_FEAT), np.float32)
        for j, r in enumerate(point.running):
            p[j] = (1.0, r / n, min(st.prompt[r] / mt, 1.0), min(st.generated[r] / mt, 1.0),
                    min(st.blocks[r] / rep.num_blocks, 1.0), float(st.in_prefill[r]))
        g = np.array([rep.free_blocks / rep.num_blocks, min(len(self.sched) / self.W, 1.0),
                      min(len(rep.running) / self.P, 1.0), min(rep.now / self.t_end, 1.0)], np.float32)
        return {"waiting": w, "running": p, "global": np.clip(g, 0, 1), "mask": point.mask.astype(np.int8)}

    def _info(self) -> dict[str, Any]:
        rep = self.rep
        return {"time": rep.now, "phase": rep.decision.phase, "finished": int(np.sum(~np.isnan(self.st.finish))),
                "waiting": len(self.sched), "running": len(rep.running), "free_blocks": rep.free_blocks,
                "instance": self.instance.name}

    def snapshot(self) -> dict[str, np.ndarray]:
        rep, st = self.rep, self.st
        return {"mask": rep.decision.mask.copy(), "generated": st.generated.copy(), "kv": st.kv.copy(),
                "blocks": st.blocks.copy(), "in_prefill": st.in_prefill.copy(),
                "running": np.array(rep.running, np.int64), "waiting": np.array(self.sched.waiting(), np.int64),
                "pending": np.array(self.pending, np.int64).reshape(-1, 2),
                "scalars": np.array([rep.used, rep.now, self.budget, self.extra, len(rep.log.start)], float)}

    def render(self):
        if self.rep is None:
            return ""
        return (f"t={self.rep.now:.3f}s {self.rep.decision.phase}: waiting {len(self.sched)} running "
                f"{len(self.rep.running)} free blocks {self.rep.free_blocks} "
                f"finished {int(np.sum(~np.isnan(self.st.finish)))}/{self.n}")


class LlmRoutingEnv(SysgymEnv):
    family = "llm_serving"

    def __init__(self, instance: ServingInstance | None = None, preset: str = "cluster",
                 num_replicas: int | None = None, num_requests: int | None = 400, scheduler: str = "vllm",
                 scheduler_params: dict | None = None, invalid_action: str = "penalise",
                 generator_params: dict | None = None, render_mode: str | None = None):
        gen = dict(generator_params or {})
        if instance is not None:
            if num_replicas is not None and int(num_replicas) != instance.num_replicas:
                instance = instance.with_(num_replicas=int(num_replicas))  # the replicas asked for
            r = instance.num_replicas
        else:
            GENERATOR.check(preset=preset)
            if num_requests is not None:
                gen.setdefault("num_requests", int(num_requests))
            r = int(num_replicas or gen.get("num_replicas", PRESETS[preset].get("num_replicas", 1)))
            gen["num_replicas"] = r
        if r < 1:
            raise InvalidArgumentError(f"num_replicas must be >= 1, got {r}")
        super().__init__(instance=instance, preset=None if instance is not None else preset, generator_params=gen,
                         invalid_action=invalid_action, render_mode=render_mode)
        if not isinstance(scheduler, str):
            raise InvalidArgumentError("LlmRouting-v0 takes a scheduler name (each replica gets its own scheduler)")
        self.scheduler, self.scheduler_params = _checked_scheduler(scheduler, scheduler_params)
        self.R = int(r)
        self.action_space = spaces.Discrete(self.R)
        self.observation_space = spaces.Dict({
            "replicas": spaces.Box(0.0, 1.0, (self.R, 4), np.float32),
            "request": spaces.Box(0.0, 1.0, (2,), np.float32),
        })
        self.reps: list[Replica] | None = None

    def start(self, inst: ServingInstance, options: dict[str, Any]):
        if inst.num_replicas != self.R:
            raise InvalidArgumentError(f"instance {inst.name} has {inst.num_replicas} replicas; this env routes to "
                                       f"{self.R} (make it with num_replicas={inst.num_replicas})")
        scheds = [_scheduler_for(self.scheduler, self.scheduler_params, inst) for _ in range(self.R)]
        self.st, self.reps = _deploy(inst, scheds)
        self.max_tokens = self.reps[0].max_tokens
        self.n = len(inst.trace)
        self.i = 0
        self.t_prev = float(inst.trace.arrival[0])
        self._advance_to(self.t_prev)
        return self._obs(), {}

    def decisions(self) -> dict[str, Any]:
        return records_of(self.st, self.reps)

    def layout_kwargs(self) -> dict[str, Any]:
        return {"num_replicas": self.R}

    def _advance_to(self, t: float) -> None:
        for r in self.reps:
            r.run(until=t)
            r.ingest()

    def action_masks(self) -> np.ndarray:
        return np.ones(self.R, bool)

    def step(self, action):
        if self.reps is None:
            raise RuntimeError("call reset() before step()")
        if self.i >= self.n:
            raise RuntimeError("the episode is over (every request routed); call reset()")
        a, why = self.discrete_action(action)  # the kit's check: an integer inside the space (1.5 is refused)
        if why:
            return self.invalid(f"{why} (replicas 0-{self.R - 1})", self._obs(), {})
        self.reps[a].add(self.i)
        self.reps[a].ingest()
        self.i += 1
        if self.i < self.n:
            t = float(self.st.arrival[self.i])
            self._advance_to(t)
            reward = -_area(self.st, self.t_prev, t, upto=self.i) / self.n
            self.t_prev = t
            return self._obs(), reward, False, False, {"time": t}
        for r in self.reps:
            r.run()
        reward = -_area(self.st, self.t_prev, math.inf, upto=self.i) / self.n
        return self._obs(), reward, True, False, {"mean_latency": float(np.mean(self.st.finish - self.st.arrival))}

    def _obs(self) -> dict[str, np.ndarray]:
        rep = np.zeros((self.R, 4), np.float32)
        for k, r in enumerate(self.reps):
            rep[k] = (min(r.outstanding() / 64, 1), min(r.num_waiting / 64, 1), min(len(r.running) / 64, 1),
                      r.used / r.num_blocks)
        i = min(self.i, self.n - 1)
        mt = float(self.max_tokens)
        req = np.array([min(self.st.prompt[i] / mt, 1), min(self.st.output[i] / mt, 1)], np.float32)
        return {"replicas": rep, "request": req}

    def snapshot(self) -> dict[str, np.ndarray]:
        return {"routed": np.array([self.i]), "replica": self.st.replica.copy(),
                "clock": np.array([r.now for r in self.reps]), "finish": self.st.finish.copy()}

    def render(self):
        return "" if self.reps is None else " | ".join(f"r{k}: {r.outstanding()}" for k, r in enumerate(self.reps))
