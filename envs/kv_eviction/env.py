"""`sysgym/KvEviction-v0`: evict cached tokens one at a time while the real model decodes.

An episode is one sequence of an instance (BOS + held-out stdlib bytes, `seq_len` tokens): the sequence given by
`reset(options={"instance": inst, "sequence": i})`, else a random sequence of the env's instance, else of a
fresh instance of the `preset` (default `tiny`: the test model, 64 tokens, budget 25 %; `model`, `seq_len`,
`budget`, `prompt_len` override the preset). The prompt (`prompt_len`, default half) is prefilled with the full
cache; then, whenever the cache plus the next token would exceed the budget, the agent picks one cached token to
evict (`Discrete(seq_len)`, masked to tokens present; the cache is shared by all layers and heads, the
`sequence` granularity). Between decisions the model decodes as many tokens as fit. The episode ends when every
decode position (prompt_len .. T-2) is decoded. `episodes(instance)` lists one episode per sequence and
`combine` stacks their schedules into the instance's schedule, which `kv_eviction.evaluate` scores.

Observation (Dict, all in [0, 1]):
* `tokens` (seq_len, 6) per position: present, position / seq_len, age / seq_len (0 when absent), mean
  attention it received per query while cached, attention from the latest query, mean attention from the
  last `window` queries (attention averaged over layers and heads; 0 for absent tokens);
* `progress` (3,): next position / seq_len, cached tokens / budget, budget / seq_len.

Reward: minus the loss increase of the tokens decoded after the action, each token's
(NLL with the evicted cache - NLL with the full cache) / number of decode positions; an episode's return
is minus the sequence's `loss_increase`, the evaluator's number for `decisions()` (to float rounding).

Invalid actions (the kit's vocabulary, `sysgym.env`): a token not in the cache (or outside the space) is refused
with the penalty and `info["invalid_action"]` (default) or `InvalidActionError` (`invalid_action="raise"`); the
state is unchanged; episodes are truncated after 4 x seq_len steps.

`PolicyAgent(policy, env)` drives a token-level policy (`sysgym.solvers.kv_eviction`, granularity "sequence")
in this env with the simulator's own calls (`observe` every attention row, `scores` when the cache is full), so
an instance's episodes give the simulator's schedule (`run_policy(inst, policy, chunk=1)`) exactly.
"""
from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from sysgym.env import SysgymEnv
from sysgym.envs.kv_eviction.generator import PRESETS, budget_tokens
from sysgym.envs.kv_eviction.instance import KvInstance
from sysgym.envs.kv_eviction.model import resolve_config
from sysgym.envs.kv_eviction.simulator import TokenPolicy, decode_nll, evict_to_budget, instance_model, make_policy
from sysgym.errors import InvalidArgumentError

FEATURES = 6


class _State:
    """The mutable episode state (numpy arrays, so a refused action can be checked not to touch it)."""

    def __init__(self, t_len: int):
        self.present = np.zeros(t_len, bool)
        self.acc = np.zeros(t_len)
        self.seen = np.zeros(t_len)
        self.last = np.zeros(t_len)
        self.window = np.zeros(t_len)


class KvEvictionEnv(SysgymEnv):
    family = "kv_eviction"

    def __init__(self, instance: KvInstance | None = None, preset: str = "tiny", model: str | None = None,
                 seq_len: int | None = None, budget: float | int | None = None, prompt_len: int | None = None,
                 window: int = 32, generator_params: dict | None = None, invalid_action: str = "penalise",
                 render_mode: str | None = None):
        shape = {k: v for k, v in {"model": model, "seq_len": seq_len, "budget": budget,
                                   "prompt_len": prompt_len}.items() if v is not None}
        super().__init__(instance=instance, preset=None if instance is not None else preset,
                         generator_params={**(generator_params or {}), **shape}, invalid_action=invalid_action,
                         render_mode=render_mode)
        if instance is not None:
            self.seq_len = instance.seq_len
        else:
            cfg = {**PRESETS[preset], **self.gen_params}
            self.seq_len = int(cfg["seq_len"])
            if not str(cfg["model"]).startswith("hf:"):
                name, mcfg = resolve_config(cfg["model"])
                if self.seq_len > mcfg.ctx:
                    raise InvalidArgumentError(f"seq_len {self.seq_len} exceeds model {name!r}'s context of "
                                               f"{mcfg.ctx} tokens")
            b = budget_tokens(cfg["budget"], self.seq_len)
            p = int(cfg.get("prompt_len") or self.seq_len // 2)
            if not 1 <= p <= self.seq_len - 2:
                raise InvalidArgumentError(f"prompt_len {p} must be in 1..{self.seq_len - 2}")
            if b >= self.seq_len - 1:
                raise InvalidArgumentError(f"budget {b} leaves nothing to evict in {self.seq_len} tokens")
        self.window_len = int(window)
        if self.window_len < 1:
            raise InvalidArgumentError(f"window must be >= 1, got {window}")
        self.action_space = spaces.Discrete(self.seq_len)
        self.observation_space = spaces.Dict({
            "tokens": spaces.Box(0.0, 1.0, (self.seq_len, FEATURES), np.float32),
            "progress": spaces.Box(0.0, 1.0, (3,), np.float32),
        })
        self.state: _State | None = None
        self.episode = 0  # counts resets (PolicyAgent notices a new episode by it)

    # -- episode -----------------------------------------------------------------------------------
    def start(self, inst: KvInstance, options: dict[str, Any]):
        if inst.seq_len != self.seq_len:
            raise InvalidArgumentError(f"instance {inst.name} has sequences of {inst.seq_len} tokens; this env is "
                                       f"sized for {self.seq_len}")
        if inst.budget >= inst.seq_len - 1:
            raise InvalidArgumentError(f"instance {inst.name}: budget {inst.budget} leaves nothing to evict")
        seq = options.get("sequence")
        seq = int(self.np_random.integers(inst.num_sequences)) if seq is None else int(seq)
        if not 0 <= seq < inst.num_sequences:
            raise InvalidArgumentError(f"sequence {seq} is not one of the instance's {inst.num_sequences}")
        self.sequence = seq
        self.loaded = instance_model(inst)
        self.prompt_len, self.budget = inst.prompt_len, inst.budget
        self.tokens = torch.from_numpy(inst.tokens[seq:seq + 1].copy())
        model = self.loaded.module
        with torch.no_grad():
            full_logits, _ = model(self.tokens)
        self.nll_full = decode_nll(full_logits, self.tokens, self.prompt_len)[0][0].double().numpy()
        self.decoder = model.start(self.tokens, self.prompt_len)
        with torch.no_grad():
            _, attn = self.decoder.prefill()
        p = self.prompt_len
        self.state = st = _State(self.seq_len)
        st.present[:p] = True
        # Every attention row the model computed this episode, as the simulator hands them to a policy.
        self.attention: list[tuple[int, np.ndarray]] = [(0, attn.numpy())]
        self.recent: deque[np.ndarray] = deque(maxlen=self.window_len)
        a = attn[0].mean(dim=(0, 1)).double().numpy()  # (P, P)
        for q in range(p):
            self._observe_row(q, a[q, :q + 1])
        self.t = p
        self.evict_step = np.full(self.seq_len, self.seq_len, np.int64)
        self.steps = 0
        self.loss_increase = 0.0
        self.episode += 1
        self._advance()
        return self._obs(), self._info()

    def step(self, action):
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        if self.t >= self.seq_len - 1:
            raise RuntimeError("episode is over (every decode position is decoded); call reset()")
        try:
            a = int(action)
        except (TypeError, ValueError):
            a = -1
        mask = self.action_masks()
        if not 0 <= a < self.seq_len or not mask[a]:
            reason = (f"action {action!r} outside Discrete({self.seq_len})" if not 0 <= a < self.seq_len else
                      f"token {a} is not in the cache (cached: {int(mask.sum())} tokens before position {self.t})")
            if self.invalid_action != "raise":
                self.steps += 1
            return self.invalid(reason, self._obs(), self._info(), truncated=self.steps >= 4 * self.seq_len)
        self.steps += 1
        self.state.present[a] = False
        self.evict_step[a] = self.t
        reward = self._advance()
        terminated = self.t >= self.seq_len - 1
        return self._obs(), float(reward), terminated, (not terminated) and self.steps >= 4 * self.seq_len, \
            self._info()

    def action_masks(self) -> np.ndarray:
        if self.state is None:
            raise RuntimeError("call reset() before action_masks()")
        m = self.state.present.copy()
        m[self.t:] = False
        return m

    def decisions(self) -> dict[str, Any]:
        """This episode's eviction schedule, in the evaluator's format (one sequence)."""
        return {"evict_step": self.evict_step.reshape(1, 1, 1, -1).copy(), "granularity": "sequence"}

    def schedule(self) -> dict[str, Any]:
        """The old name of `decisions()`."""
        return self.decisions()

    @classmethod
    def episodes(cls, instance: KvInstance) -> list[dict[str, Any]]:
        return [{"instance": instance, "sequence": i} for i in range(instance.num_sequences)]

    @classmethod
    def combine(cls, parts: list[dict[str, Any]]) -> dict[str, Any]:
        if not parts or any(p.get("granularity", "sequence") != "sequence" for p in parts):
            raise InvalidArgumentError("KvEvictionEnv.combine joins the sequence-granularity schedules of one or "
                                       "more episodes")
        return {"evict_step": np.concatenate([p["evict_step"] for p in parts], axis=0), "granularity": "sequence"}

    def render(self):
        if self.state is None:
            return ""
        return (f"position {self.t}/{self.seq_len} cached {int(self.state.present.sum())}/{self.budget} "
                f"loss increase {self.loss_increase:+.4f}")

    # -- internals ---------------------------------------------------------------------------------
    def _observe_row(self, q: int, row: np.ndarray) -> None:
        st = self.state
        k = len(row)
        st.acc[:k] += row
        st.seen[:k] += st.present[:k]
        st.last[:] = 0.0
        st.last[:k] = row
        padded = np.zeros(self.seq_len)
        padded[:k] = row
        self.recent.append(padded)
        st.window[:] = np.sum(self.recent, axis=0) / len(self.recent)

    def _advance(self) -> float:
        """Decode while the next token fits; returns the reward of the tokens decoded."""
        st, reward = self.state, 0.0
        d = self.seq_len - 1 - self.prompt_len
        while self.t < self.seq_len - 1 and int(st.present.sum()) + 1 <= self.budget:
            t = self.t
            st.present[t] = True
            keep = torch.from_numpy(st.present[:t + 1].copy()).view(1, 1, 1, -1)
            with torch.no_grad():
                logits, attn = self.decoder.step(t, keep)
            self.attention.append((t, attn.numpy()[:, :, :, None, :]))
            nll = float(torch.nn.functional.cross_entropy(logits.double(), self.tokens[:, t + 1]))
            inc = (nll - float(self.nll_full[t - self.prompt_len])) / d
            reward -= inc
            self.loss_increase += inc
            self._observe_row(t, attn[0].mean(dim=(0, 1)).double().numpy())
            self.t += 1
        return reward

    def _obs(self) -> dict[str, np.ndarray]:
        st, t_len = self.state, self.seq_len
        pos = np.arange(t_len)
        f = np.zeros((t_len, FEATURES), np.float32)
        f[:, 0] = st.present
        f[:, 1] = pos / t_len
        f[:, 2] = np.where(st.present, (self.t - pos) / t_len, 0.0)
        f[:, 3] = np.where(st.present, st.acc / np.maximum(st.seen, 1.0), 0.0)
        f[:, 4] = np.where(st.present, st.last, 0.0)
        f[:, 5] = np.where(st.present, st.window, 0.0)
        np.clip(f, 0.0, 1.0, out=f)
        prog = np.array([min(1.0, self.t / t_len), min(1.0, st.present.sum() / self.budget), self.budget / t_len],
                        np.float32)
        return {"tokens": f, "progress": prog}

    def _info(self) -> dict[str, Any]:
        return {"position": self.t, "cached": int(self.state.present.sum()), "budget": self.budget,
                "loss_increase": self.loss_increase, "sequence": self.sequence}


class PolicyAgent:
    """A token-level policy choosing `KvEviction-v0`'s evictions (`act(observation, mask) -> token`): it sees every
    attention row the model computed (`observe`) and, when the cache is full at step t, ranks the cache once
    (`scores`) and evicts what the simulator would, one token per env step. The policy is reset per episode with
    seed `seed + sequence`, as `run_policy(..., chunk=1)` resets it per sequence."""

    def __init__(self, policy: str | TokenPolicy, env: Any, *, seed: int = 0):
        self.policy = make_policy(policy)
        if self.policy.granularity != "sequence" or self.policy.reference:
            raise InvalidArgumentError(f"KvEviction-v0 evicts for a whole sequence: {self.policy!r} needs "
                                       "granularity='sequence' and a budget")
        self.env = env.unwrapped
        self.seed = int(seed)
        self._episode = -1
        self._fed = 0
        self._queue: list[int] = []
        self._t = -1

    def act(self, observation: Any = None, mask: Any = None) -> int:
        env = self.env
        if self._episode != env.episode:
            self.policy.reset(num_seqs=1, n_layer=env.loaded.n_layer, n_head=env.loaded.n_head, seq_len=env.seq_len,
                              budget=env.budget, prompt_len=env.prompt_len, seed=self.seed + env.sequence)
            self._episode, self._fed, self._queue, self._t = env.episode, 0, [], -1
        for t0, attn in env.attention[self._fed:]:
            self.policy.observe(t0, attn)
        self._fed = len(env.attention)
        if self._t != env.t or not self._queue:
            present = env.state.present[:env.t].reshape(1, 1, 1, -1).copy()
            drop = evict_to_budget(self.policy.scores(env.t, present), present, env.budget)
            self._queue, self._t = [int(j) for j in np.flatnonzero(drop[0, 0, 0])], env.t
        return self._queue.pop(0)
