"""Gymnasium envs over the serving simulator.

`sysgym/LlmServing-v0` -- one replica; at every iteration boundary the agent builds the next batch one
decision at a time. Action (Discrete(1 + W + P)): 0 = run the iteration with the batch as it stands;
1 + i = admit waiting slot i (the W oldest waiting requests, FCFS order; the admitted request's prefill
joins this iteration, as in Orca's iteration-level batching); 1 + W + j = preempt running slot j (the P
first running requests in admission order; recompute preemption). `action_masks()`: admit i where the
request exists, the batch cap is not reached, and its blocks fit above the watermark; preempt j where the
request was running before this iteration; run where there is something to run and every decode has a KV
slot (when a decode lacks a block, only preemptions are valid). Reward per iteration: -(requests in the
system x iteration time) / number of requests, so an episode's return is minus the mean end-to-end
latency (Little's law). Observation (Dict, in [0, 1]): `waiting` (W, 6): present, arrival rank,
prompt / max_tokens, predicted output / max_tokens (``predictor="oracle"``: true lengths; ``"none"``: 0),
generated / max_tokens, client's weighted service share; `running` (P, 6): present, arrival rank, prompt,
generated, KV blocks / pool, in prefill; `global` (4,): free blocks share, waiting / W, running / P, time
share of the trace; `mask` (the action mask).

`sysgym/LlmRouting-v0` -- `num_replicas` vLLM replicas; each step routes the next arriving request
(Discrete(num_replicas), all valid). Observation: per replica (outstanding, waiting, running) / 64 and KV
use, plus the request's prompt and (oracle) output length; reward: -(integral of requests in the system
since the previous arrival) / number of requests (return = minus mean latency).

Invalid actions: ``invalid_action="raise"`` (default) raises InvalidActionError naming the action;
``"penalise"`` makes it a no-op with reward -1 (for Gymnasium's checker, which samples unmasked actions).
"""
from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sysgym import kernels
from sysgym.envs.llm_serving.instance import PRESETS, ServingInstance, generate
from sysgym.envs.llm_serving.latency import BatchLatency
from sysgym.envs.llm_serving.memory import plan_memory
from sysgym.envs.llm_serving.schedulers import Scheduler, make_scheduler
from sysgym.envs.llm_serving.simulator import Replica, RequestState, request_arrays
from sysgym.errors import InvalidActionError, UnknownNameError

W_FEAT, R_FEAT, G_FEAT = 6, 6, 4


def _instance(instance, preset, generator_params, rng) -> ServingInstance:
    if instance is not None:
        return instance
    return generate(seed=int(rng.integers(2 ** 31)), preset=preset, **generator_params)


def _build(inst: ServingInstance, scheduler: Scheduler, num_replicas: int = 1):
    spec = kernels.models.get(inst.model)
    max_tokens = int(inst.max_tokens or spec.max_seq_len)
    plan = plan_memory(spec, inst.gpu, tp=inst.tp, pp=inst.pp, block_size=inst.block_size, max_tokens=max_tokens,
                       semantics=inst.memory_semantics)
    if inst.num_blocks is not None:
        from dataclasses import replace

        plan = replace(plan, num_blocks=int(inst.num_blocks))
    prompt, output, _ = request_arrays(inst.trace, max_tokens)
    st = RequestState(inst.trace, prompt, output)
    lat = BatchLatency(spec, inst.gpu, tp=inst.tp, pp=inst.pp, block_size=inst.block_size,
                       max_batch_tokens=max(max_tokens, 4096) + plan.max_batch_size)
    return st, plan, lat, max_tokens


class LlmServingEnv(gym.Env):
    metadata = {"render_modes": ["ansi"]}

    def __init__(self, instance: ServingInstance | None = None, preset: str = "small", max_waiting: int = 16,
                 max_running: int = 64, predictor: str = "oracle", invalid_action: str = "raise",
                 generator_params: dict | None = None, render_mode: str | None = None):
        if instance is None and preset not in PRESETS:
            raise UnknownNameError("llm_serving preset", preset, PRESETS)
        if invalid_action not in ("raise", "penalise"):
            raise ValueError(f"invalid_action must be 'raise' or 'penalise', got {invalid_action!r}")
        if predictor not in ("oracle", "none"):
            raise UnknownNameError("predictor", predictor, ("oracle", "none"))
        self.fixed, self.preset, self.gen_params = instance, preset, dict(generator_params or {})
        self.W, self.P = int(max_waiting), int(max_running)
        self.predictor, self.invalid_action, self.render_mode = predictor, invalid_action, render_mode
        self.action_space = spaces.Discrete(1 + self.W + self.P)
        self.observation_space = spaces.Dict({
            "waiting": spaces.Box(0.0, 1.0, (self.W, W_FEAT), np.float32),
            "running": spaces.Box(0.0, 1.0, (self.P, R_FEAT), np.float32),
            "global": spaces.Box(0.0, 1.0, (G_FEAT,), np.float32),
            "mask": spaces.MultiBinary(1 + self.W + self.P),
        })
        self.rep: Replica | None = None

    # -- episode --------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        inst = options.get("instance") or _instance(self.fixed, self.preset, self.gen_params, self.np_random)
        self.instance = inst
        st, plan, lat, self.max_tokens = _build(inst, None)
        sched = make_scheduler("vllm", max_num_seqs=min(plan.max_batch_size, self.P, inst.max_num_seqs or self.P))
        self.rep = Replica(0, st, plan, lat, sched)
        self.st = st
        for i in range(len(inst.trace)):
            self.rep.add(i)
        self.n = len(inst.trace)
        self.t_end = float(inst.trace.arrival[-1]) + 1e-9
        self.pending: list[tuple[int, int]] = []  # prefills admitted for the coming iteration
        self.before: set[int] = set()
        self.finished = 0
        self.steps = 0
        self._settle()
        return self._obs(), self._info()

    def _settle(self) -> None:
        """Ingest arrivals; when nothing is in the system, jump to the next arrival."""
        rep = self.rep
        rep._ingest()
        while rep.idle() and rep.ptr < len(rep.arrivals):
            rep.now = max(rep.now, rep._next_arrival())
            rep._ingest()
        self.before = set(rep.running)
        self._mask = self._compute_mask()

    def _waiting(self) -> list[int]:
        return list(self.rep.sched.queue)[: self.W]

    def _running(self) -> list[int]:
        return self.rep.running[: self.P]

    def _decode_shortfall(self) -> int:
        st, rep, bs = self.st, self.rep, self.rep.block_size
        dec = [r for r in rep.running if r in self.before]
        if not dec:
            return 0
        d = np.asarray(dec)
        return int(np.maximum(-(-(st.kv[d] + 1) // bs) - st.blocks[d], 0).sum()) - rep.free_blocks

    def _compute_mask(self) -> np.ndarray:
        rep, st = self.rep, self.st
        mask = np.zeros(1 + self.W + self.P, bool)
        short = self._decode_shortfall()
        mask[0] = (bool(self.pending) or bool(self.before)) and short <= 0
        if short <= 0:
            budget = rep.token_budget - sum(c for _, c in self.pending)
            for i, r in enumerate(self._waiting()):
                need = rep.sched.admit_blocks(r)
                tokens = int(st.prompt[r] + st.generated[r])
                fits = rep.free_blocks - need >= rep.sched.watermark_blocks
                mask[1 + i] = (len(rep.running) < rep.max_num_seqs and fits
                               and (tokens <= budget or not self.pending))
        for j, r in enumerate(self._running()):
            mask[1 + self.W + j] = r in self.before
        if not mask.any():  # cannot happen with a consistent state; guard against silent dead ends
            raise RuntimeError("LlmServing: no valid action")
        return mask

    def action_masks(self) -> np.ndarray:
        if self.rep is None:
            raise RuntimeError("call reset() before action_masks()")
        return self._mask.copy()

    def step(self, action):
        if self.rep is None:
            raise RuntimeError("call reset() before step()")
        a = int(action)
        if not 0 <= a < self.action_space.n or not self._mask[a]:
            return self._invalid(a)
        rep, st = self.rep, self.st
        self.steps += 1
        reward = 0.0
        if 1 <= a <= self.W:
            r = self._waiting()[a - 1]
            need = rep.sched.admit_blocks(r)
            rep.sched.pop(r)
            st.blocks[r] = need
            rep.used += need
            st.kv[r] = 0
            st.in_prefill[r] = True
            if math.isnan(st.first_scheduled[r]):
                st.first_scheduled[r] = rep.now
            rep.running.append(r)
            self.pending.append((r, int(st.prompt[r] + st.generated[r])))
        elif a > self.W:
            r = self._running()[a - 1 - self.W]
            rep._preempt(r)
            self.before.discard(r)
        else:
            reward = self._run_iteration()
        if a != 0:
            self._mask = self._compute_mask()
        done = self.finished >= self.n
        return self._obs(), float(reward), done, False, self._info()

    def _run_iteration(self) -> float:
        rep, st = self.rep, self.st
        dec = np.asarray([r for r in rep.running if r in self.before], np.int64)
        if len(dec):
            new = np.maximum(-(-(st.kv[dec] + 1) // rep.block_size), st.blocks[dec])
            rep.used += int((new - st.blocks[dec]).sum())
            st.blocks[dec] = new
        t0 = rep.now
        rep._execute(self.pending, dec, 0.0)
        t1 = rep.now
        self.pending = []
        # requests in the system during [t0, t1], counting arrivals that land inside the iteration
        hi = int(np.searchsorted(st.arrival, t1, side="left"))
        f = np.where(np.isnan(st.finish[:hi]), np.inf, st.finish[:hi])
        area = float(np.clip(np.minimum(f, t1) - np.maximum(st.arrival[:hi], t0), 0, None).sum())
        self.finished = int(np.sum(~np.isnan(st.finish)))
        if self.finished < self.n:
            self._settle()
        else:
            self._mask = np.zeros(self.action_space.n, bool)
            self._mask[0] = True
        return -area / self.n

    def _invalid(self, a: int):
        reason = f"action {a} is not valid now (mask has {int(self._mask.sum())} valid actions)"
        if 0 <= a < self.action_space.n:
            kind = "run" if a == 0 else ("admit waiting slot" if a <= self.W else "preempt running slot")
            reason = f"action {a} ({kind}) is masked"
        if self.invalid_action == "raise":
            raise InvalidActionError(f"LlmServing: {reason}")
        self.steps += 1
        return self._obs(), -1.0, self.finished >= self.n, False, {**self._info(), "invalid_action": reason}

    def _obs(self) -> dict[str, np.ndarray]:
        rep, st = self.rep, self.st
        mt = float(self.max_tokens)
        w = np.zeros((self.W, W_FEAT), np.float32)
        n = max(self.n, 1)
        for i, r in enumerate(self._waiting()):
            w[i] = (1.0, r / n, min(st.prompt[r] / mt, 1.0),
                    min(st.output[r] / mt, 1.0) if self.predictor == "oracle" else 0.0,
                    min(st.generated[r] / mt, 1.0), 0.0)
        if self.W and len(self._waiting()):  # client service share (VTC's measure) for fairness-aware agents
            served = np.bincount(st.client, weights=(st.prompt * (st.generated > 0) + 2 * st.generated),
                                 minlength=int(st.client.max()) + 1)
            tot = max(served.sum(), 1.0)
            for i, r in enumerate(self._waiting()):
                w[i, 5] = served[st.client[r]] / tot
        p = np.zeros((self.P, R_FEAT), np.float32)
        for j, r in enumerate(self._running()):
            p[j] = (1.0, r / n, min(st.prompt[r] / mt, 1.0), min(st.generated[r] / mt, 1.0),
                    min(st.blocks[r] / rep.num_blocks, 1.0), float(st.in_prefill[r]))
        g = np.array([rep.free_blocks / rep.num_blocks, min(len(rep.sched) / max(self.W, 1), 1.0),
                      min(len(rep.running) / max(self.P, 1), 1.0), min(rep.now / self.t_end, 1.0)], np.float32)
        return {"waiting": w, "running": p, "global": np.clip(g, 0, 1), "mask": self._mask.astype(np.int8)}

    def _info(self) -> dict[str, Any]:
        rep = self.rep
        return {"time": rep.now, "finished": self.finished, "waiting": len(rep.sched), "running": len(rep.running),
                "free_blocks": rep.free_blocks, "instance": self.instance.name}

    def records(self) -> dict[str, Any]:
        """The episode's per-request records (for `evaluate`), once the episode is over."""
        rep, st = self.rep, self.st
        return {"arrival": st.arrival.copy(), "prompt": st.prompt, "output": st.output,
                "first_scheduled": st.first_scheduled, "first_token": st.token_time[st.offsets[:-1]],
                "finish": st.finish, "num_preemptions": st.preemptions, "replica": np.zeros(self.n, np.int64),
                "token_time": st.token_time, "token_offsets": st.offsets,
                "iterations": {**rep.log.arrays(), "replica": np.zeros(len(rep.log.start), np.int64)},
                "kv_area": rep.kv_area, "tokens_processed": rep.tokens_processed, "num_replicas": 1}

    def render(self):
        if self.rep is None:
            return ""
        return (f"t={self.rep.now:.3f}s waiting {len(self.rep.sched)} running {len(self.rep.running)} "
                f"free blocks {self.rep.free_blocks} finished {self.finished}/{self.n}")


class LlmRoutingEnv(gym.Env):
    metadata = {"render_modes": ["ansi"]}

    def __init__(self, instance: ServingInstance | None = None, preset: str = "cluster",
                 num_replicas: int | None = None,
                 num_requests: int | None = 400, scheduler: str = "vllm", invalid_action: str = "raise",
                 generator_params: dict | None = None, render_mode: str | None = None):
        if instance is None and preset not in PRESETS:
            raise UnknownNameError("llm_serving preset", preset, PRESETS)
        self.fixed, self.preset = instance, preset
        self.gen_params = dict(generator_params or {})
        if num_requests is not None and instance is None:
            self.gen_params.setdefault("num_requests", int(num_requests))
        r = num_replicas or (instance.num_replicas if instance is not None else
                             self.gen_params.get("num_replicas", PRESETS[preset].get("num_replicas", 1)))
        self.gen_params["num_replicas"] = int(r)
        self.R = int(r)
        self.scheduler, self.invalid_action, self.render_mode = scheduler, invalid_action, render_mode
        self.action_space = spaces.Discrete(self.R)
        self.observation_space = spaces.Dict({
            "replicas": spaces.Box(0.0, 1.0, (self.R, 4), np.float32),
            "request": spaces.Box(0.0, 1.0, (2,), np.float32),
        })
        self.reps = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        inst = options.get("instance") or _instance(self.fixed, self.preset, self.gen_params, self.np_random)
        if self.fixed is not None and inst.num_replicas != self.R:
            inst = inst.with_(num_replicas=self.R)
        self.instance = inst
        st, plan, lat, self.max_tokens = _build(inst, None)
        self.st = st
        self.reps = [Replica(i, st, plan, lat, make_scheduler(self.scheduler)) for i in range(self.R)]
        self.n = len(inst.trace)
        self.i = 0
        self.t_prev = float(inst.trace.arrival[0])
        self._advance_to(self.t_prev)
        return self._obs(), {}

    def _advance_to(self, t: float) -> None:
        for r in self.reps:
            r.run(until=t)
            r._ingest()

    def _area(self, t0: float, t1: float) -> float:
        """Integral over [t0, t1] of the number of routed requests in the system."""
        st = self.st
        a = st.arrival[: self.i]
        f = np.where(np.isnan(st.finish[: self.i]), np.inf, st.finish[: self.i])
        return float(np.clip(np.minimum(f, t1) - np.maximum(a, t0), 0, None).sum())

    def action_masks(self) -> np.ndarray:
        return np.ones(self.R, bool)

    def step(self, action):
        if self.reps is None:
            raise RuntimeError("call reset() before step()")
        a = int(action)
        if not 0 <= a < self.R:
            if self.invalid_action == "raise":
                raise InvalidActionError(f"LlmRouting: replica {a} does not exist ({self.R} replicas)")
            return self._obs(), -1.0, False, False, {"invalid_action": f"replica {a}"}
        self.reps[a].add(self.i)
        self.reps[a]._ingest()
        self.i += 1
        if self.i < self.n:
            t = float(self.st.arrival[self.i])
            self._advance_to(t)
            reward = -self._area(self.t_prev, t) / self.n
            self.t_prev = t
            return self._obs(), reward, False, False, {"time": t}
        for r in self.reps:
            r.run()
        reward = -self._area(self.t_prev, math.inf) / self.n
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

    def render(self):
        return "" if self.reps is None else " | ".join(f"r{k}: {r.outstanding()}" for k, r in enumerate(self.reps))
