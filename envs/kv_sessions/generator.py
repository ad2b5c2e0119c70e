"""Seeded multi-turn chat and agent workloads with a retention pool.

Every number is a parameter; the defaults are our assumptions where no source is given:
* sessions start as a Poisson process (`rate` sessions/s); a session has Geometric(1/mean_turns) turns
  (`mean_turns` 5 for chat, 8 for agent sessions: LMSYS-Chat-1M reports about 2 turns per conversation for
  chat, agent traces such as SWE-agent runs have tens of steps);
* every session of a prefix group shares a system prompt of `prefix_tokens` (default 1024);
* per turn, new input ~ lognormal (median 200 tokens) and output ~ lognormal (median 150), clipped: the shapes
  of the Azure LLM conversation trace (Splitwise, ISCA'24; BurstGPT-like);
* `chat` gaps: user think time ~ exponential, mean `think_mean_s` = 30 s (assumption); `agent` gaps: tool calls
  with per-tool mean durations (`TOOLS`, an assumption in the spirit of Continuum's SWE-bench / BFCL traces:
  fast file reads to slow test runs), log-normal with sigma 0.5 around them;
* a turn ends `output x tpot_s` after it arrives (nominal `tpot_s` = 0.02 s/token for the retention
  timeline; the serving simulator then gives the real TTFT).

Presets: `tiny` (4 agent sessions, pool 4000 tokens: the conformance suite's), `small` (8 agent sessions, pool
8000: `SessionKv-v0`'s default), `chat` and `agent` (20 sessions, pool 8000: the README's comparison), and
`sessions`, the defaults of the old `generate_sessions` (20 agent sessions, pool 16384), which is what old
`kv_eviction/sessions?seed=N&kind=K&n=S&cap=C` specs name (their `n` and `cap` are `num_sessions` and
`capacity`); such specs are rebuilt under their new name `kv_sessions/custom?...`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from sysgym.envs.kv_sessions.instance import SessionWorkload
from sysgym.errors import InvalidInstanceError, UnknownNameError
from sysgym.generators import Generator
from sysgym.specs import format_spec

TOOLS = {"read_file": 1.0, "search": 4.0, "edit": 2.0, "run_tests": 45.0, "web": 12.0}  # mean seconds (assumed)
USER = "user"
KINDS = ("agent", "chat")

# What `generate(preset=None)` (a "custom" spec) starts from: the old generate_sessions defaults.
DEFAULTS: dict[str, Any] = {"kind": "agent", "num_sessions": 20, "capacity": 16384, "mean_turns": None, "rate": 0.2,
                            "prefix_tokens": 1024, "num_prefix_groups": 2, "think_mean_s": 30.0, "tpot_s": 0.02,
                            "uniform_tokens": None}
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"kind": "agent", "num_sessions": 4, "capacity": 4000},
    "small": {"kind": "agent", "num_sessions": 8, "capacity": 8000},
    "chat": {"kind": "chat", "num_sessions": 20, "capacity": 8000},
    "agent": {"kind": "agent", "num_sessions": 20, "capacity": 8000},
    "sessions": {},  # the old kv_eviction/sessions specs (see the module doc)
}
LEGACY_NAMES = {"n": "num_sessions", "cap": "capacity"}  # parameter names of the old specs


def generate_v0(*, seed: int = 0, preset: str | None = None, kind: str | None = None, num_sessions: int | None = None,
                capacity: int | None = None, mean_turns: float | None = None, rate: float | None = None,
                prefix_tokens: int | None = None, num_prefix_groups: int | None = None,
                think_mean_s: float | None = None, tpot_s: float | None = None, uniform_tokens: int | None = None,
                n: int | None = None, cap: int | None = None) -> SessionWorkload:
    """A seeded multi-turn workload (`kind` = "chat" or "agent"); `preset` fills defaults, explicit arguments
    override them. `uniform_tokens` makes every retained context the same size (the Belady check)."""
    given = {"kind": kind, "num_sessions": num_sessions, "capacity": capacity, "mean_turns": mean_turns,
             "rate": rate, "prefix_tokens": prefix_tokens, "num_prefix_groups": num_prefix_groups,
             "think_mean_s": think_mean_s, "tpot_s": tpot_s, "uniform_tokens": uniform_tokens}
    for old, new in LEGACY_NAMES.items():
        value = {"n": n, "cap": cap}[old]
        if value is not None:
            if given[new] is not None and given[new] != value:
                raise InvalidInstanceError(f"kv_sessions: {old}={value} and {new}={given[new]} disagree")
            given[new] = value
    if preset is not None and preset not in PRESETS:
        raise UnknownNameError("kv_sessions preset", preset, PRESETS)
    base = {**DEFAULTS, **(PRESETS[preset] if preset is not None else {})}
    explicit = {k: v for k, v in given.items() if v is not None and v != base[k]}
    p = {**base, **explicit}
    if preset == "sessions":  # an old spec: rebuilt under its canonical name
        preset = None
    name = format_spec("kv_sessions", preset or "custom", seed, explicit)
    return _workload(seed=seed, name=name, **p)


def _workload(*, seed: int, name: str, kind: str, num_sessions: int, capacity: int, mean_turns: float | None,
              rate: float, prefix_tokens: int, num_prefix_groups: int, think_mean_s: float, tpot_s: float,
              uniform_tokens: int | None) -> SessionWorkload:
    if kind not in KINDS:
        raise UnknownNameError("session kind", kind, KINDS)
    _check(num_sessions=(num_sessions, 1), capacity=(capacity, 0), prefix_tokens=(prefix_tokens, 0),
           num_prefix_groups=(num_prefix_groups, 1))
    if not (rate > 0 and think_mean_s > 0 and tpot_s >= 0):
        raise InvalidInstanceError(f"kv_sessions: rate and think_mean_s must be > 0 and tpot_s >= 0, got rate={rate}, "
                                   f"think_mean_s={think_mean_s}, tpot_s={tpot_s}")
    if mean_turns is not None and not mean_turns >= 1:
        raise InvalidInstanceError(f"kv_sessions: mean_turns must be >= 1, got {mean_turns}")
    if uniform_tokens is not None and int(uniform_tokens) < 2:
        raise InvalidInstanceError(f"kv_sessions: uniform_tokens must be >= 2, got {uniform_tokens}")
    rng = np.random.default_rng(seed)
    mean_turns = mean_turns or (8.0 if kind == "agent" else 5.0)
    tools = list(TOOLS)
    rows = []
    t0 = 0.0
    for s in range(int(num_sessions)):
        t0 += rng.exponential(1.0 / rate)
        n = 1 + rng.geometric(1.0 / mean_turns) - 1 if mean_turns > 1 else 1
        n = max(1, int(n))
        g = s % max(1, int(num_prefix_groups))
        ctx = int(prefix_tokens)
        t = t0
        for k in range(n):
            inp = int(np.clip(rng.lognormal(np.log(200), 0.8), 8, 2000))
            out = int(np.clip(rng.lognormal(np.log(150), 0.8), 4, 1000))
            end = t + out * tpot_s
            if k == n - 1:
                kind_k, gap = "", 0.0
            elif kind == "agent":
                kind_k = tools[int(rng.integers(len(tools)))]
                gap = float(rng.lognormal(np.log(TOOLS[kind_k]), 0.5))
            else:
                kind_k, gap = USER, float(rng.exponential(think_mean_s))
            rows.append((s, k, t, end, inp, out, ctx, kind_k, g))
            ctx += inp + out
            t = end + gap
    rows.sort(key=lambda r: (r[2], r[0], r[1]))
    cols = list(zip(*rows))
    ctx_before = np.array(cols[6])
    if uniform_tokens is not None:  # every retained entry has the same size: ctx_after == uniform_tokens
        ctx_before = np.full(len(rows), int(uniform_tokens) - 2)
        cols[4] = (1,) * len(rows)
        cols[5] = (1,) * len(rows)
    return SessionWorkload(session=cols[0], turn=cols[1], arrival=cols[2], end=cols[3], new_input=cols[4],
                           output=cols[5], ctx_before=ctx_before, gap_kind=tuple(cols[7]), group=cols[8],
                           prefix_tokens=0 if uniform_tokens is not None else int(prefix_tokens),
                           capacity=int(capacity), name=name)


def _check(**values: tuple[Any, int]) -> None:
    for key, (value, low) in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise InvalidInstanceError(f"kv_sessions: {key} must be an integer >= {low}, got {value!r}")


def generate_sessions(*, seed: int = 0, num_sessions: int = 20, kind: str = "agent", mean_turns: float | None = None,
                      rate: float = 0.2, prefix_tokens: int = 1024, num_prefix_groups: int = 2,
                      capacity: int = 16384, think_mean_s: float = 30.0, tpot_s: float = 0.02,
                      uniform_tokens: int | None = None) -> SessionWorkload:
    """The old entry point (`sysgym.envs.kv_eviction.sessions.generate_sessions`): the same workloads, named
    `kv_sessions/custom?...`."""
    return GENERATOR(seed=seed, preset="custom", kind=kind, num_sessions=num_sessions, capacity=capacity,
                     mean_turns=mean_turns, rate=rate, prefix_tokens=prefix_tokens,
                     num_prefix_groups=num_prefix_groups, think_mean_s=think_mean_s, tpot_s=tpot_s,
                     uniform_tokens=uniform_tokens)


# The family's generator: v0 is what every spec without a version suffix names.
GENERATOR = Generator("kv_sessions", presets=PRESETS, versions={0: generate_v0}, default_preset="agent")
generate = GENERATOR
