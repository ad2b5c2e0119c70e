"""REINFORCE fine-tuning of the two-stage VM policy after behaviour cloning (issue 17 item 2).

Per iteration: one generated training instance (seed < 1000: not a benchmark seed), K plans sampled from
the policy, each scored by `vm_resched.evaluate`; the advantage of a plan is the mean FR of the K plans
minus its FR (a leave-nothing-out baseline), and the loss is -advantage x (sum of the plan's log-probs),
averaged. The reward is the evaluator's final FR, so the policy is trained on the benchmark's objective.

    python -m sysgym.agents.vm_finetune --policy DIR/policy.pt --out DIR2 --minutes 10
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch


def sampled_plan_logp(policy, inst, generator: torch.Generator):
    """A sampled plan and the sum of its action log-probs (differentiable)."""
    from sysgym.agents.vm_two_stage import to_tensors
    from sysgym.envs.vm_resched.env import VmReschedEnv

    env = VmReschedEnv(instance=inst, action_mode="two_stage")
    obs, _ = env.reset(seed=0)
    total, done, cache = 0.0, False, {}
    while not done:
        stage = int(obs["stage"][0])
        lp = policy.log_probs(to_tensors(obs), torch.as_tensor(env.action_masks()).unsqueeze(0), stage, cache)[0]
        a = int(torch.multinomial(lp.detach().exp(), 1, generator=generator))
        total = total + lp[a]
        obs, _r, done, _t, _ = env.step(a)
    return env.decisions(), total


def reinforce(policy, *, presets=("small",), samples: int = 8, lr: float = 1e-4, minutes: float = 10.0,
              seed: int = 0, on_iter=None, eval_every: int = 10, iterations: int | None = None) -> dict:
    """Until `minutes` of wall time pass, or after `iterations` updates when given (reproducible)."""
    import sysgym

    fam = sysgym.get_family("vm_resched")
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    t0, it = time.perf_counter(), 0
    while (it < iterations) if iterations is not None else (time.perf_counter() - t0 < minutes * 60):
        inst = fam.generate(seed=int(rng.integers(0, 1000)), preset=presets[it % len(presets)])
        plans = [sampled_plan_logp(policy, inst, gen) for _ in range(samples)]
        frs = torch.tensor([fam.evaluate(inst, p)["fragment_rate"] for p, _ in plans])
        adv = frs.mean() - frs
        loss = -(adv * torch.stack([lp for _, lp in plans])).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        it += 1
        if on_iter is not None and it % eval_every == 0:
            on_iter(it, time.perf_counter() - t0)
    return {"iterations": it, "wall_s": time.perf_counter() - t0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--iterations", type=int, default=None, help="stop after this many updates (not --minutes)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    from sysgym.agents.imitation import _validation
    from sysgym.agents.vm_two_stage import load_policy, save_policy

    policy, meta = load_policy(args.policy)
    policy.train()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    val = _validation()
    curve = [{"iteration": 0, "wall_s": 0.0, **val(policy)}]
    best = dict(curve[0])
    print(json.dumps(curve[0]), flush=True)

    def on_iter(it, wall):
        row = {"iteration": it, "wall_s": wall, **val(policy)}
        curve.append(row)
        print(json.dumps(row), flush=True)
        # keep the checkpoint only when neither validation FR got worse (medium is never trained on here)
        if row["val_fr_small"] <= best["val_fr_small"] and row["val_fr_medium"] <= best["val_fr_medium"]:
            best.update(row)
            save_policy(policy, out / "policy.pt", {**meta, "finetune": {"method": "REINFORCE (vm_finetune.py)",
                                                                        "best": best, "curve": curve}})

    save_policy(policy, out / "policy.pt", {**meta, "finetune": {"best": best, "curve": curve}})
    res = reinforce(policy, samples=args.samples, lr=args.lr, minutes=args.minutes, seed=args.seed,
                    on_iter=on_iter, eval_every=args.eval_every, iterations=args.iterations)
    (out / "finetune.json").write_text(json.dumps({**res, "best": best, "curve": curve,
                                                   "command": "python -m sysgym.agents.vm_finetune " +
                                                   " ".join(argv if argv is not None else sys.argv[1:])}, indent=1))
    print(f"{res['iterations']} iterations in {res['wall_s']:.0f}s; kept {best}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
