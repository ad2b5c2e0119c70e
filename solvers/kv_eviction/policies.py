"""The online token-level policies as solvers: `solve(instance)` decodes with the policy evicting.

The claimed objective is the loss increase measured on the *incremental* decoder's own logits; the
evaluator recomputes it with one masked parallel forward, so a test comparing both also checks that the
two ways of running the evicted cache agree.
"""
from __future__ import annotations

import time
from typing import Any

import torch

from sysgym.envs.kv_eviction.instance import KvInstance
from sysgym.envs.kv_eviction.policies import H2O, TOVA, FullCache, RandomEviction, SnapKV, StreamingLLM, TokenPolicy
from sysgym.envs.kv_eviction.simulate import SimResult, decode_nll, instance_model, run_policy
from sysgym.solution import Solution
from sysgym.solvers.base import Solver, register


def claimed_loss_increase(inst: KvInstance, sim: SimResult) -> float:
    """Mean NLL of the evicted run minus the full cache's, on the decode positions."""
    model = instance_model(inst).module
    tokens = torch.from_numpy(inst.tokens.copy())
    with torch.no_grad():
        full = torch.cat([model(tokens[i:i + 8])[0] for i in range(0, len(tokens), 8)], 0)
    nll_f, _ = decode_nll(full, tokens, inst.prompt_len)
    nll_m, _ = decode_nll(sim.logits, tokens, inst.prompt_len)
    return float(nll_m.double().mean()) - float(nll_f.double().mean())


class PolicySolver(Solver):
    family = "kv_eviction"
    kind = "heuristic"
    policy_cls: type[TokenPolicy] = TokenPolicy

    def make(self) -> TokenPolicy:
        return self.policy_cls(**self.config)

    def solve(self, instance: KvInstance, *, time_limit: float | None = None, seed: int = 0) -> Solution:
        t0 = time.perf_counter()
        policy = self.make()
        sim = run_policy(instance, policy, seed=seed)
        objective = claimed_loss_increase(instance, sim)
        stats: dict[str, Any] = {"tokens_per_s": sim.stats["tokens_per_s"], "granularity": sim.granularity}
        return Solution(decisions=sim.decisions(reference=isinstance(policy, FullCache)), objective=objective,
                        status="feasible", wall_time_s=time.perf_counter() - t0, stats=stats)


@register
class Full(PolicySolver):
    """The full cache (reference; ignores the budget, flagged `within_budget=False` by the evaluator)."""

    name = "kv_eviction.full"
    kind = "baseline"
    policy_cls = FullCache

    def __init__(self):
        super().__init__()


@register
class Random(PolicySolver):
    name = "kv_eviction.random"
    kind = "baseline"
    policy_cls = RandomEviction

    def __init__(self, granularity: str = "sequence"):
        super().__init__(granularity=granularity)


@register
class StreamingLLMSolver(PolicySolver):
    name = "kv_eviction.streaming_llm"
    policy_cls = StreamingLLM

    def __init__(self, start_size: int = 4, granularity: str = "sequence"):
        super().__init__(start_size=start_size, granularity=granularity)


@register
class H2OSolver(PolicySolver):
    name = "kv_eviction.h2o"
    policy_cls = H2O

    def __init__(self, recent_ratio: float = 0.5, granularity: str = "head"):
        super().__init__(recent_ratio=recent_ratio, granularity=granularity)


@register
class TOVASolver(PolicySolver):
    name = "kv_eviction.tova"
    policy_cls = TOVA

    def __init__(self, granularity: str = "layer"):
        super().__init__(granularity=granularity)


@register
class SnapKVSolver(PolicySolver):
    name = "kv_eviction.snapkv"
    policy_cls = SnapKV

    def __init__(self, window: int = 32, kernel: int = 5, granularity: str = "head"):
        super().__init__(window=window, kernel=kernel, granularity=granularity)
