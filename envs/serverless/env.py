"""`sysgym/ServerlessKeepAlive-v0`: the warm-pool decisions of `sysgym.envs.serverless.simulator`, one per step.

A step answers the simulator's pending request:
* **plan** (after an invocation leaves its function's instance idle): action `a < N_PLANS` picks
  `(PREWARM_MIN[a // len(KEEP_ALIVE_MIN)], KEEP_ALIVE_MIN[a % len(KEEP_ALIVE_MIN)])` minutes (see the
  simulator's doc for the meaning). Masked: a pre-warm with a zero keep-alive (it would unload on arrival).
* **evict** (a load needs memory): action `N_PLANS + g` unloads function g's idle instance. Masked to the
  evictable instances.
The episode is one instance, to the end of its invocations.

Observation (Dict, every entry in [0, 1]):
* `decision` (12,): phase (plan, evict), then for the function deciding (or needing memory): log memory, log
  cold-start time, log invocations so far, log last idle time, log mean idle time, idle-time CV / 10, share of
  idle times over 10 and over 60 minutes, time since its last arrival (log), elapsed share of the horizon.
* `pool` (4,): loaded and busy memory / capacity, the memory still needed / capacity, loaded instances / functions.
* `functions` (max_functions, 7): per function: present, loaded, evictable, memory / capacity, log idle-for,
  log invocations so far, the one deciding. Padding rows are zero.
Logs are log10(1 + x) over a fixed scale, clipped to 1.

Reward: minus the cost accrued since the previous step (cold-start seconds + memory_weight x wasted GB-s), so the
return is minus the evaluator's `cost`. `decisions()` are the instance lifetimes the evaluator scores.
Invalid actions follow the kit (`invalid_action="penalise"` by default, or `"raise"`).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

from sysgym.env import SysgymEnv
from sysgym.envs.serverless.generator import PRESETS
from sysgym.envs.serverless.instance import ServerlessInstance
from sysgym.envs.serverless.simulator import KEEP_ALIVE_S, PREWARM_S, Request, Simulator
from sysgym.errors import InvalidArgumentError

N_KEEP, N_PREWARM = len(KEEP_ALIVE_S), len(PREWARM_S)
N_PLANS = N_KEEP * N_PREWARM
DECISION_FEATURES, POOL_FEATURES, FUNCTION_FEATURES = 12, 4, 7
_PLAN_MASK = np.array([not (p > 0 and k == 0) for p in PREWARM_S for k in KEEP_ALIVE_S], bool)


def _log(x: float, decades: float) -> float:
    return min(1.0, math.log10(1.0 + max(0.0, x)) / decades)


class ServerlessKeepAliveEnv(SysgymEnv):
    family = "serverless"

    def __init__(self, instance: ServerlessInstance | None = None, preset: str = "tiny",
                 max_functions: int | None = None, generator_params: dict | None = None,
                 invalid_action: str = "penalise", render_mode: str | None = None):
        super().__init__(instance=instance, preset=None if instance is not None else preset,
                         generator_params=generator_params, invalid_action=invalid_action, render_mode=render_mode)
        if instance is not None:
            default_f = instance.num_functions
        else:
            default_f = int({**PRESETS[preset], **self.gen_params}["num_functions"])
        self.max_functions = int(max_functions or default_f)
        if self.max_functions <= 0:
            raise InvalidArgumentError(f"max_functions must be positive, got {self.max_functions}")
        self.action_space = spaces.Discrete(N_PLANS + self.max_functions)
        self.observation_space = spaces.Dict({
            "decision": spaces.Box(0.0, 1.0, (DECISION_FEATURES,), np.float32),
            "pool": spaces.Box(0.0, 1.0, (POOL_FEATURES,), np.float32),
            "functions": spaces.Box(0.0, 1.0, (self.max_functions, FUNCTION_FEATURES), np.float32),
        })
        self.sim: Simulator | None = None
        self.request: Request | None = None
        self._gen = None
        self._mask = np.zeros(self.action_space.n, bool)

    # -- episode ------------------------------------------------------------------------------------------
    def start(self, inst: ServerlessInstance, options: dict[str, Any]):
        if inst.num_functions > self.max_functions:
            raise InvalidArgumentError(f"instance {inst.name} has {inst.num_functions} functions; this env is sized "
                                       f"for at most {self.max_functions} (max_functions=)")
        self.sim = Simulator(inst)
        self._gen = self.sim.run()
        self._cost_seen = 0.0
        self.steps = 0
        self._advance(None)
        return self._obs(), self._info()

    def step(self, action):
        if self.sim is None:
            raise RuntimeError("call reset() before step()")
        if self.request is None:
            raise RuntimeError("the episode is over; call reset()")
        a, why = self.discrete_action(action)
        if why is not None:
            return self.invalid(why, self._obs(), self._info())
        if not self._mask[a]:
            return self.invalid(self._explain(a), self._obs(), self._info())
        self._advance(self.decode(a))
        self.steps += 1
        reward = -(self.sim.cost - self._cost_seen)
        self._cost_seen = self.sim.cost
        terminated = self.request is None
        return self._obs(), float(reward), terminated, False, self._info()

    def _advance(self, answer: Any) -> None:
        try:
            self.request = next(self._gen) if answer is None else self._gen.send(answer)
        except StopIteration:
            self.request = None
        self._update_mask()

    # -- actions ------------------------------------------------------------------------------------------
    def decode(self, a: int) -> tuple[float, float] | int:
        """The simulator answer an action stands for: a (prewarm_s, keep_alive_s) plan or a function to evict."""
        if a < N_PLANS:
            return PREWARM_S[a // N_KEEP], KEEP_ALIVE_S[a % N_KEEP]
        return a - N_PLANS

    @staticmethod
    def encode_plan(prewarm_s: float, keep_alive_s: float) -> int:
        """The action of a plan on the decision grid (a plan off the grid is a named error)."""
        try:
            return PREWARM_S.index(prewarm_s) * N_KEEP + KEEP_ALIVE_S.index(keep_alive_s)
        except ValueError:
            raise InvalidArgumentError(f"plan ({prewarm_s}, {keep_alive_s}) s is not on the decision grid "
                                       "(KEEP_ALIVE_MIN x PREWARM_MIN)") from None

    @staticmethod
    def encode_eviction(function: int) -> int:
        return N_PLANS + int(function)

    def action_masks(self) -> np.ndarray:
        if self.sim is None:
            raise RuntimeError("call reset() before action_masks()")
        return self._mask

    def _update_mask(self) -> None:
        mask = np.zeros(self.action_space.n, bool)
        req = self.request
        if req is not None and req.kind == "plan":
            mask[:N_PLANS] = _PLAN_MASK
        elif req is not None:
            mask[[N_PLANS + g for g in req.candidates]] = True
        self._mask = mask

    def _explain(self, a: int) -> str:
        req = self.request
        if req.kind == "plan":
            if a >= N_PLANS:
                return (f"action {a} evicts function {a - N_PLANS}, but function {req.function} needs a plan "
                        f"(< {N_PLANS})")
            p, k = self.decode(a)
            return f"plan (pre-warm {p / 60:g} min, keep-alive {k / 60:g} min) is masked: a pre-warm needs a keep-alive"
        if a < N_PLANS:
            return (f"action {a} is a plan, but function {req.function} needs memory: evict one of "
                    f"{list(req.candidates)}")
        return f"function {a - N_PLANS} is not evictable now (evictable: {list(req.candidates)})"

    # -- the contract with evaluators and agents ----------------------------------------------------------
    def decisions(self) -> list[tuple[int, float, float]]:
        """The instance lifetimes so far (all of them once the episode is over)."""
        return [] if self.sim is None else [(int(f), float(lo), float(hi)) for f, lo, hi in self.sim.schedule]

    def layout_kwargs(self) -> dict[str, Any]:
        return {"max_functions": int(self.max_functions)}

    def snapshot(self) -> dict[str, np.ndarray]:
        sim = self.sim
        return {"mask": self._mask.copy(), "loaded": np.array(sim.loaded), "busy_end": np.array(sim.busy_end),
                "count": np.array(sim.count), "schedule": np.array(sim.schedule, float).reshape(-1, 3),
                "now": np.array(sim.now), "cost": np.array(sim.cost)}

    # -- observation --------------------------------------------------------------------------------------
    def _obs(self) -> dict[str, np.ndarray]:
        sim, req, inst = self.sim, self.request, self.instance
        cap = sim.capacity
        dec = np.zeros(DECISION_FEATURES, np.float32)
        funcs = np.zeros((self.max_functions, FUNCTION_FEATURES), np.float32)
        t = sim.now
        if req is not None:
            f = req.function
            its = sim.idle_times[f]
            dec[0], dec[1] = req.kind == "plan", req.kind == "evict"
            dec[2] = _log(sim.mem[f], 4)
            dec[3] = _log(sim.cold[f], 2)
            dec[4] = _log(sim.count[f], 6)
            if its:
                mean = sum(its) / len(its)
                dec[5] = _log(its[-1], 5)
                dec[6] = _log(mean, 5)
                if len(its) > 1 and mean > 0:
                    var = sum((x - mean) ** 2 for x in its) / (len(its) - 1)
                    dec[7] = min(1.0, math.sqrt(var) / mean / 10.0)
                dec[8] = sum(x > 600 for x in its) / len(its)
                dec[9] = sum(x > 3600 for x in its) / len(its)
            dec[10] = _log(t - sim.last_arrival[f], 5) if sim.last_arrival[f] > -math.inf else 1.0
        dec[11] = min(1.0, t / inst.end_s) if inst.end_s > 0 else 0.0
        busy = 0.0
        n_f = inst.num_functions
        funcs[:n_f, 0] = 1.0
        for g in range(n_f):
            row = funcs[g]
            if sim.loaded[g]:
                row[1] = 1.0
                if sim.busy_end[g] <= t:
                    row[2] = 1.0
                    row[4] = _log(t - sim.busy_end[g], 5)
                else:
                    busy += sim.mem[g]
            row[3] = sim.mem[g] / cap
            row[5] = _log(sim.count[g], 6)
        if req is not None:
            funcs[req.function, 6] = 1.0
        pool = np.array([sim.used_mb / cap, busy / cap, min(1.0, (req.need_mb if req is not None else 0.0) / cap),
                         len(sim.loaded_set) / max(n_f, 1)], np.float32)
        return {"decision": np.clip(dec, 0, 1), "pool": np.clip(pool, 0, 1), "functions": funcs}

    def _info(self) -> dict[str, Any]:
        sim = self.sim
        return {"cost_so_far": sim.cost, "cold_starts": sim.cold_starts, "wasted_gb_s_so_far": sim.waste_gb_s,
                "time_s": sim.now, "pending": None if self.request is None else self.request.kind,
                "instance": self.instance.name}

    def render(self):
        if self.sim is None:
            return ""
        s = self.sim
        return (f"t={s.now:.1f}s loaded {len(s.loaded_set)} ({s.used_mb:.0f}/{s.capacity:.0f} MB) cold starts "
                f"{s.cold_starts} cost {s.cost:.2f}")
