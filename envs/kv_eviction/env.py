"""`sysgym/KvEviction-v0`: evict cached tokens one at a time while the real model decodes.

An episode is one sequence (BOS + held-out stdlib bytes) of `seq_len` tokens. The prompt (`prompt_len`,
default half) is prefilled with the full cache; then, whenever the cache plus the next token would exceed
`budget`, the agent picks one cached token to evict (`Discrete(seq_len)`, masked to tokens present; the
cache is shared by all layers and heads, the `sequence` granularity). Between decisions the model decodes
as many tokens as fit. The episode ends when every decode position (prompt_len .. T-2) is decoded.

Observation (Dict, all in [0, 1]):
* `tokens` (seq_len, 6) per position: present, position / seq_len, age / seq_len (0 when absent), mean
  attention it received per query while cached, attention from the latest query, mean attention from the
  last `window` queries (attention averaged over layers and heads; 0 for absent tokens);
* `progress` (3,): next position / seq_len, cached tokens / budget, budget / seq_len.

Reward: minus the loss increase of the tokens decoded after the action, each token's
(NLL with the evicted cache - NLL with the full cache) / number of decode positions; an episode's return
is minus the sequence's `loss_increase`, the evaluator's number (`schedule()` gives the episode's
eviction schedule for `evaluate`).

Invalid actions: `invalid_action="raise"` (default) raises InvalidActionError naming the token; with
`"penalise"` the step is a no-op with reward -1 and `info["invalid_action"]` (for Gymnasium's checker);
episodes are truncated after 4 x seq_len steps.
"""
from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from sysgym.envs.kv_eviction.corpus import load_corpus
from sysgym.envs.kv_eviction.generator import budget_tokens
from sysgym.envs.kv_eviction.instance import KvInstance
from sysgym.envs.kv_eviction.model import get_model
from sysgym.envs.kv_eviction.simulate import decode_nll
from sysgym.errors import InvalidActionError

FEATURES = 6


class _State:
    """The mutable episode state (numpy arrays, so a refused action can be checked not to touch it)."""

    def __init__(self, t_len: int):
        self.present = np.zeros(t_len, bool)
        self.acc = np.zeros(t_len)
        self.seen = np.zeros(t_len)
        self.last = np.zeros(t_len)
        self.window = np.zeros(t_len)


class KvEvictionEnv(gym.Env):
    metadata = {"render_modes": ["ansi"]}

    def __init__(self, model: str = "tiny", seq_len: int = 64, budget: float | int = 0.25,
                 prompt_len: int | None = None, instance: KvInstance | None = None, window: int = 32,
                 invalid_action: str = "raise", render_mode: str | None = None):
        if invalid_action not in ("raise", "penalise"):
            raise ValueError(f"invalid_action must be 'raise' or 'penalise', got {invalid_action!r}")
        if instance is not None:
            model, seq_len, prompt_len, budget = instance.model, instance.seq_len, instance.prompt_len, instance.budget
        self.loaded = get_model(model)
        if seq_len > self.loaded.cfg.ctx:
            raise ValueError(f"seq_len {seq_len} exceeds model {model!r}'s context of {self.loaded.cfg.ctx}")
        self.instance = instance
        self.seq_len = int(seq_len)
        self.prompt_len = int(prompt_len or seq_len // 2)
        self.budget = budget_tokens(budget, self.seq_len)
        if not 1 <= self.prompt_len <= self.seq_len - 2:
            raise ValueError(f"prompt_len {self.prompt_len} must be in 1..{self.seq_len - 2}")
        if self.budget >= self.seq_len - 1:
            raise ValueError(f"budget {self.budget} leaves nothing to evict in {self.seq_len} tokens")
        self.window_len, self.invalid_action, self.render_mode = int(window), invalid_action, render_mode
        self.corpus = load_corpus(self.loaded.cfg.max_train_bytes)
        self.action_space = spaces.Discrete(self.seq_len)
        self.observation_space = spaces.Dict({
            "tokens": spaces.Box(0.0, 1.0, (self.seq_len, FEATURES), np.float32),
            "progress": spaces.Box(0.0, 1.0, (3,), np.float32),
        })
        self.state: _State | None = None

    # -- episode -----------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        if "tokens" in options:
            tokens = np.asarray(options["tokens"], np.int64).reshape(1, -1)
        elif self.instance is not None:
            i = int(options.get("sequence", self.np_random.integers(self.instance.num_sequences)))
            tokens = self.instance.tokens[i:i + 1].copy()
        else:
            tokens = self.corpus.sample("eval", self.np_random, 1, self.seq_len)
        if tokens.shape[1] != self.seq_len:
            raise ValueError(f"sequence has {tokens.shape[1]} tokens; this env is sized for {self.seq_len}")
        self.tokens = torch.from_numpy(tokens)
        model = self.loaded.module
        with torch.no_grad():
            full_logits, _ = model(self.tokens)
        self.nll_full = decode_nll(full_logits, self.tokens, self.prompt_len)[0][0].double().numpy()
        self.decoder = model.start(self.tokens, self.prompt_len)
        _, attn = self.decoder.prefill()
        p = self.prompt_len
        self.state = st = _State(self.seq_len)
        st.present[:p] = True
        self.recent: deque[np.ndarray] = deque(maxlen=self.window_len)
        a = attn[0].mean(dim=(0, 1)).double().numpy()  # (P, P)
        for q in range(p):
            self._observe_row(q, a[q, :q + 1])
        self.t = p
        self.evict_step = np.full(self.seq_len, self.seq_len, np.int64)
        self.steps = 0
        self.loss_increase = 0.0
        self._advance()
        return self._obs(), self._info()

    def step(self, action):
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        if self.t >= self.seq_len - 1:
            raise RuntimeError("episode is over (every decode position is decoded); call reset()")
        a = int(action)
        self.steps += 1
        mask = self.action_masks()
        if not 0 <= a < self.seq_len or not mask[a]:
            reason = (f"action {a} outside Discrete({self.seq_len})" if not 0 <= a < self.seq_len else
                      f"token {a} is not in the cache (cached: {int(mask.sum())} tokens before position {self.t})")
            if self.invalid_action == "raise":
                raise InvalidActionError(f"KvEviction: {reason}")
            return self._obs(), -1.0, False, self.steps >= 4 * self.seq_len, {**self._info(), "invalid_action": reason}
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

    def schedule(self) -> dict[str, Any]:
        """This episode's eviction schedule, in the evaluator's format (one sequence)."""
        return {"evict_step": self.evict_step.reshape(1, 1, 1, -1).copy(), "granularity": "sequence"}

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
            logits, attn = self.decoder.step(t, keep)
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
                "loss_increase": self.loss_increase}
