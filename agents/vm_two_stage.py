"""A size-agnostic two-stage VM rescheduling policy (VMR2L's decision; issue 17 items 1-2), torch only.

Reads `VmResched-v0(action_mode="two_stage")` observations of any size: no parameter depends on the number
of PMs or VMs.
* Entities: every VM row (17 features) and every PM row (8) gets an MLP embedding (shared weights).
* Attention over the sets: a learned query attends over the VM embeddings and another over the PM
  embeddings (attention pooling), giving the cluster context.
* VM stage: a pointer score per VM from [its embedding, the two contexts, progress]; masked softmax.
* Destination stage: the chosen VM attends over its destinations (its embedding is the query, each NUMA
  node's embedding -- the node's move features for this VM plus its PM's features -- the key): VMR2L's
  sparse attention, since masked destinations get no weight; the score is an MLP of [key, query, context].

Deviation from VMR2L, stated: VMR2L also lets every VM attend to its feasible PMs in the VM stage; here the
VM stage sees the PMs only through the pooled context plus the env's exact per-VM move features (best
move's remainder change), which avoids the VMs x PMs attention (10^7 pairs on large).

`decide(policy, inst, samples=K, seed=s)`: the greedy plan plus K sampled plans, each scored by
`vm_resched.evaluate`; the best is kept (K = 0: greedy only).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sysgym.envs.vm_resched.env import PM_FEATURES, VM_FEATURES, VmReschedEnv
from sysgym.envs.vm_resched.two_stage import DEST_FEATURES, VM_EXTRA_FEATURES

VM_IN = VM_FEATURES + VM_EXTRA_FEATURES
NEG = -1e9
FORMAT = "sysgym-vm-two-stage-v1"


def _mlp(i: int, h: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, o))


def to_tensors(obs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """One observation as a batch of one."""
    return {k: torch.as_tensor(np.asarray(v), dtype=torch.float32).unsqueeze(0) for k, v in obs.items()}


def stack(observations: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Observations of one instance shape as a batch."""
    return {k: torch.as_tensor(np.stack([o[k] for o in observations]), dtype=torch.float32) for k in observations[0]}


class TwoStagePolicy(nn.Module):
    def __init__(self, dim: int = 64):
        super().__init__()
        self.dim = dim
        self.vm_enc = _mlp(VM_IN, dim, dim)
        self.pm_enc = _mlp(PM_FEATURES, dim, dim)
        self.q_vm = nn.Parameter(torch.randn(dim) / dim ** 0.5)
        self.q_pm = nn.Parameter(torch.randn(dim) / dim ** 0.5)
        self.vm_head = _mlp(3 * dim + 1, dim, 1)
        self.dest_enc = _mlp(DEST_FEATURES + PM_FEATURES, dim, dim)
        self.dest_head = _mlp(3 * dim, dim, 1)

    @staticmethod
    def _pool(emb: torch.Tensor, q: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Attention pooling over entities: (B, N, d) -> (B, d), masked by keep (B, N)."""
        score = emb @ q / emb.shape[-1] ** 0.5
        w = torch.softmax(torch.where(keep, score, torch.full_like(score, NEG)), -1)
        return (w.unsqueeze(-1) * emb).sum(-2)

    def _context(self, obs):
        vm = obs["vm"]
        vm_emb = self.vm_enc(vm)
        pm_emb = self.pm_enc(obs["pm"])
        keep_pm = torch.ones(pm_emb.shape[:-1], dtype=torch.bool)
        ctx = torch.cat([self._pool(vm_emb, self.q_vm, vm[..., 7] > 0.5), self._pool(pm_emb, self.q_pm, keep_pm)], -1)
        return vm_emb, ctx

    def logits(self, obs: dict[str, torch.Tensor], stage: int, cache: dict | None = None) -> torch.Tensor:
        """Unmasked scores, batched (observations stacked on a first axis of size B): (B, VMs) in stage 0,
        (B, destination nodes) in stage 1. `cache` (a dict) keeps the stage-0 embeddings for the stage-1 call
        of the same migration (the VM and PM rows do not change between the two stages)."""
        if cache is not None and stage == 1 and "ctx" in cache:
            vm_emb, ctx = cache.pop("vm_emb"), cache.pop("ctx")
        else:
            vm_emb, ctx = self._context(obs)
            if cache is not None and stage == 0:
                cache.update(vm_emb=vm_emb, ctx=ctx)
        if stage == 0:
            b, n = vm_emb.shape[:2]
            x = torch.cat([vm_emb, ctx.unsqueeze(1).expand(b, n, -1), obs["progress"].unsqueeze(1).expand(b, n, 1)], -1)
            return self.vm_head(x).squeeze(-1)
        v = obs["chosen"][:, 0].long()
        pm_rows = obs["pm"].repeat_interleave(2, 1)  # destination node 2p+k belongs to PM p
        keys = self.dest_enc(torch.cat([obs["dest"], pm_rows], -1))
        b, nd = keys.shape[:2]
        query = torch.cat([vm_emb[torch.arange(b), v], ctx[:, :self.dim] + ctx[:, self.dim:]], -1)
        return self.dest_head(torch.cat([keys, query.unsqueeze(1).expand(b, nd, -1)], -1)).squeeze(-1)

    def log_probs(self, obs: dict[str, torch.Tensor], mask: torch.Tensor, stage: int,
                  cache: dict | None = None) -> torch.Tensor:
        """Masked log-softmax, (B, actions of the stage); mask (B, >= that many)."""
        lg = self.logits(obs, stage, cache)
        m = mask[:, :lg.shape[1]]
        return torch.log_softmax(torch.where(m, lg, torch.full_like(lg, NEG)), -1)


def rollout(policy: TwoStagePolicy, inst, *, sample: bool = False, generator: torch.Generator | None = None,
            temperature: float = 1.0):
    """One plan: (decisions, decision seconds). Greedy (argmax) unless `sample` (softmax of log-probs /
    `temperature`: above 1 spreads the samples further from the greedy plan)."""
    env = VmReschedEnv(instance=inst, action_mode="two_stage")
    obs, _ = env.reset(seed=0)
    t0 = time.perf_counter()
    done, cache = False, {}
    with torch.no_grad():
        while not done:
            stage = int(obs["stage"][0])
            mask = torch.as_tensor(env.action_masks()).unsqueeze(0)
            lp = policy.log_probs(to_tensors(obs), mask, stage, cache)[0]
            if sample:
                a = int(torch.multinomial(torch.softmax(lp / temperature, 0), 1, generator=generator))
            else:
                a = int(torch.argmax(lp))
            obs, _r, done, _t, _ = env.step(a)
    return env.decisions(), time.perf_counter() - t0


def decide(policy: TwoStagePolicy, inst, *, samples: int = 0, seed: int = 0,
           temperature: float = 1.0) -> dict[str, Any]:
    """Greedy plan + `samples` sampled plans (at `temperature`); the one `vm_resched.evaluate` scores lowest
    is kept."""
    from sysgym.envs.vm_resched.evaluate import evaluate

    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(int(seed))
    best, best_fr, which = None, np.inf, -1
    for k in range(samples + 1):
        plan, _ = rollout(policy, inst, sample=k > 0, generator=gen, temperature=temperature)
        fr = evaluate(inst, plan)["fragment_rate"]
        if fr < best_fr - 1e-12:
            best, best_fr, which = plan, fr, k
    return {"decisions": best, "fragment_rate": best_fr, "samples": samples, "temperature": temperature,
            "best_plan": which,
            "decide_time_s": time.perf_counter() - t0}


def save_policy(policy: TwoStagePolicy, path: Path | str, meta: dict[str, Any]) -> None:
    """state dict to `path` (.pt), metadata (format, dim, training record) to the .json beside it."""
    path = Path(path)
    torch.save(policy.state_dict(), path)
    path.with_suffix(".json").write_text(json.dumps({"format": FORMAT, "dim": policy.dim, "family": "vm_resched",
                                                     **meta}, indent=1, default=str))


def is_two_stage_file(path: Path | str) -> bool:
    p = Path(path)
    meta = p.with_suffix(".json")
    if p.suffix != ".pt" or not meta.is_file():
        return False
    try:
        return json.loads(meta.read_text()).get("format") == FORMAT
    except (OSError, ValueError):
        return False


def load_policy(path: Path | str) -> tuple[TwoStagePolicy, dict[str, Any]]:
    from sysgym.errors import InvalidArgumentError

    path = Path(path)
    if not is_two_stage_file(path):
        raise InvalidArgumentError(f"{path} is not a two-stage VM policy (.pt with a {FORMAT} .json beside it)")
    meta = json.loads(path.with_suffix(".json").read_text())
    pol = TwoStagePolicy(dim=int(meta["dim"]))
    pol.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    pol.eval()
    return pol, meta
