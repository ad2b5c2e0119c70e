"""What one REINFORCE update of Decima's policy costs here, in one process and with rollouts in worker processes
(`TrainConfig.workers`), and what Decima's published training recipe would cost at that rate.

    python benchmarks/decima_train_bench.py                   # 2 updates of 2 rollouts, workers 1 and 2
    python benchmarks/decima_train_bench.py --workers 4 --rollouts 4

Every update starts from the shipped policy's weights (the uwfq-hint clone, `agents/weights/job_sched_decima.pt`)
and its actor (stay rule, relative limits, hint) with its training run's `grad_fraction` (0.1), on training
instances of the Decima preset (20 jobs, moving delay on). The updates of 1 and of W workers are not the same
updates (W > 1 gives each rollout its own generator; `decima.train_step`), so only their cost is compared. Run it
alone: it times wall clock.

Decima's recipe (decima-sim's README: `--num_agents 16`, the model tested after 10,000 iterations, one episode per
agent per iteration) is 160,000 episodes, each of 200 streaming jobs; the estimate below prices 160,000 of these
20-job episodes at the measured cost of one, so it is a lower bound.
"""
from __future__ import annotations

import argparse
import os
import time

DECIMA_EPISODES = 16 * 10_000  # decima-sim README: 16 agents x 10,000 iterations, one episode each per iteration


def main(argv: list[str] | None = None) -> None:
    import numpy as np
    import torch

    from sysgym.agents.decima import (
        TrainConfig,
        _pool,
        load_net,
        make_instance,
        train_step,
    )
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2, help="processes for the parallel runs (default 2)")
    ap.add_argument("--rollouts", type=int, default=2, help="rollouts per update (default 2)")
    ap.add_argument("--updates", type=int, default=2, help="updates per setting (default 2)")
    ap.add_argument("--seed", type=int, default=5, help="first training instance's seed (0-799; default 5)")
    args = ap.parse_args(argv)
    for name, low in (("workers", 2), ("rollouts", 1), ("updates", 1)):
        if getattr(args, name) < low:
            ap.error(f"--{name} must be >= {low}, got {getattr(args, name)}")
    if not 0 <= args.seed <= 800 - args.updates:
        ap.error(f"--seed must leave its updates within the training seeds 0-799, got {args.seed}")
    torch.set_num_threads(1)
    path = os.path.join(os.path.dirname(__file__), "..", "agents", "weights", "job_sched_decima.pt")
    shipped, meta = load_net(path)
    c = meta["config"]
    print(f"Decima REINFORCE updates from the shipped policy: {args.rollouts} rollouts each, grad_fraction "
          f"{c['grad_fraction']}, stay {meta['stay']!r}, limits {meta['limit_mode']!r}, hint {meta['net']['hint']!r}; "
          f"training seeds {args.seed}-{args.seed + args.updates - 1}, {c['num_jobs']} jobs")
    mean_update: dict[int, float] = {}
    for workers in (1, args.workers):
        cfg = TrainConfig(preset=c["preset"], num_jobs=c["num_jobs"], rollouts=args.rollouts, workers=workers,
                          stay=meta["stay"], limit_mode=meta["limit_mode"], hint=meta["net"]["hint"],
                          grad_fraction=c["grad_fraction"], lr=c["lr"], hidden=meta["net"]["hidden"],
                          embed=meta["net"]["embed"], depth=meta["net"]["depth"])
        net = type(shipped)(**meta["net"])
        net.load_state_dict(shipped.state_dict())
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        gen = torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        pool = _pool(workers, args.rollouts, "decima_train_bench")
        walls = []
        try:
            for u in range(args.updates):
                t = time.perf_counter()
                st = train_step(net, opt, make_instance(cfg, args.seed + u), cfg, gen, cfg.entropy, pool)
                walls.append(time.perf_counter() - t)
                print(f"  workers {workers}: update {u + 1}: {walls[-1]:6.1f} s wall, {st['env_steps']} env steps, "
                      f"{st['net_calls']} net decisions, train JCT {st['mean_jct_s']:.2f} s", flush=True)
        finally:
            if pool is not None:
                pool.shutdown()
        total = time.perf_counter() - t0
        mean_update[workers] = float(np.mean(walls))
        print(f"workers {workers}: {mean_update[workers]:.1f} s per update (mean of {args.updates}; "
              f"{total:.1f} s in all, a pool's start included), "
              f"{mean_update[workers] / args.rollouts:.1f} s wall per rollout")
    one = mean_update[1] / args.rollouts  # one process: wall = core-seconds
    print(f"speed-up of {args.workers} workers over 1: {mean_update[1] / mean_update[args.workers]:.2f}x wall per "
          "update")
    days = DECIMA_EPISODES * one / 86400
    print(f"Decima's recipe ({DECIMA_EPISODES:,} episodes, decima-sim README) at {one:.1f} core-s per 20-job "
          f"rollout: {days:.1f} core-days at least; {days / os.cpu_count():.1f} days on this machine's "
          f"{os.cpu_count()} cores")


if __name__ == "__main__":
    main()
