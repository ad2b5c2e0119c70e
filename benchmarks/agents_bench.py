"""Benchmark of sysgym.agents on VM rescheduling (issue 9's evidence).

1. Throughput: env steps/s of training MaskablePPO (VmResched-v0, `--preset`) with the chosen
   vectorisation (DummyVecEnv x1 / x8 with 1 or 2 torch threads, SubprocVecEnv x2), and of the bare env.
2. Quality and speed: MaskablePPO trained for `--minutes` (wall clock) on the preset, its best
   checkpoint (chosen on the training run's own held-out evaluation seeds) rolled out on *other* held-out
   seeds, scored by the family's evaluator, against the MILP's proven optimum: per-instance gap, mean
   gap, share within 5 %, and the speed ratio MILP wall time / agent wall time (and / pure decision time).

    .venv/bin/python benchmarks/agents_bench.py --minutes 20            # the issue's setting
    .venv/bin/python benchmarks/agents_bench.py --minutes 1 --seeds 3   # a quick look
    .venv/bin/python benchmarks/agents_bench.py --run-dir runs/x --skip-train   # re-score a run

3. `--two-stage [POLICY.pt]` (issue 17): the size-agnostic two-stage policy (default: the shipped one,
   `sysgym.agents.pretrained("vm_resched")`), no training: VM small on 20 held-out seeds (1000+) against
   CP-SAT's proven optimum, then the same checkpoint on medium-v1 seeds 0-4 against greedy (FR and
   time-aware FR) and LNS given the policy's wall time; `--samples K` sampled plans beside the greedy one.

    .venv/bin/python benchmarks/agents_bench.py --two-stage --samples 32 --json out.json
    .venv/bin/python benchmarks/agents_bench.py --two-stage --first-seed 500 --seeds 30 --samples 16 \
        --medium-seeds 0 --large-seeds 0      # the validation seeds K (and the temperature) were chosen on

Prints its figures and writes a plot (agent vs MILP vs greedy per instance) beside the run.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sysgym.plotting import save_figure


def compose(overrides: list[str]):
    from hydra import compose as hcompose
    from hydra import initialize_config_module

    with initialize_config_module(config_module="sysgym.conf", version_base="1.3"):
        return hcompose(config_name="train", overrides=overrides)


def throughput(preset: str, steps: int) -> list[tuple[str, float]]:
    import sysgym
    from sysgym.agents.training import train
    from sysgym.testing import masked_random_action

    out = []
    for observation in ("vmr2l", "pairs"):
        env = sysgym.make("VmResched-v0", preset=preset, observation=observation)
        rng = np.random.default_rng(0)
        env.reset(seed=0)
        t0 = time.perf_counter()
        for _ in range(steps):
            _, _, term, trunc, _ = env.step(masked_random_action(env, rng))
            if term or trunc:
                env.reset()
        out.append((f"bare env ({observation}), random masked actions", steps / (time.perf_counter() - t0)))
    import tempfile

    for kind, n, threads in (("dummy", 1, 1), ("dummy", 8, 1), ("dummy", 8, 2), ("subproc", 2, 1)):
        overrides = [f"env.preset={preset}", f"agent.total_timesteps={steps}", f"agent.n_envs={n}",
                     f"vec_env={kind}", "eval.instances=0", "checkpoint_freq=0", "progress_bar=false",
                     "tensorboard=false", f"torch_threads={threads}"]
        with tempfile.TemporaryDirectory() as d:
            res = train(compose(overrides), d, overrides)
        out.append((f"MaskablePPO training, {kind} x{n}, {threads} torch thread(s)", res.steps_per_s))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=20.0, help="training wall-clock budget")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--seeds", type=int, default=20, help="held-out test instances")
    ap.add_argument("--run-dir", default="runs/bench_agents")
    ap.add_argument("--skip-train", action="store_true", help="score an existing run directory")
    ap.add_argument("--throughput-steps", type=int, default=1024, help="0 skips the throughput part")
    ap.add_argument("--milp-time-limit", type=float, default=120.0)
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the quality run (the issue: 2 cores)")
    ap.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                    help="extra `sysgym train` overrides for the quality run (repeatable), e.g. agent.n_envs=8")
    ap.add_argument("--two-stage", nargs="?", const="shipped", default=None, metavar="POLICY.pt",
                    help="benchmark the two-stage policy (default: the shipped one) instead of training")
    ap.add_argument("--samples", type=int, default=32, help="--two-stage: sampled plans beside the greedy one (32: "
                    "the smallest K of 16/32/64 within 3 %% of the optimum on validation seeds 500-529)")
    ap.add_argument("--temperature", type=float, default=None, help="--two-stage: of the sampled plans "
                    "(default: vm_resched.agent's, chosen on validation seeds)")
    ap.add_argument("--first-seed", type=int, default=1000, help="--two-stage: the first small seed (1000: held "
                    "out; 500: the validation seeds K and the temperature were chosen on)")
    ap.add_argument("--medium-seeds", type=int, default=5, help="--two-stage: medium-v1 seeds 0..n-1")
    ap.add_argument("--medium-samples", type=int, default=2, help="--two-stage: K on medium (each plan ~1-2 s)")
    ap.add_argument("--large-seeds", type=int, default=1, help="--two-stage: large-v1 seeds 0..n-1 (shape check)")
    ap.add_argument("--json", default=None, help="--two-stage: write the table here")
    ap.add_argument("--optima", default=None, help="--two-stage: cache of the small seeds' CP-SAT results (JSON; "
                    "read if present, else written): CP-SAT's deterministic limit makes them the same every run")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.two_stage:
        return two_stage(args)
    import sysgym
    from sysgym import solvers
    from sysgym.agents.training import train

    if args.throughput_steps:
        print(f"== training throughput (VmResched-v0 {args.preset}; shared 2-core machine) ==")
        for label, sps in throughput(args.preset, args.throughput_steps):
            print(f"{label:58s} {sps:8.1f} env steps/s")

    run = Path(args.run_dir)
    if not args.skip_train:
        budget = [] if any(o.startswith("agent.total_timesteps=") for o in args.override) else \
            ["agent.total_timesteps=10000000"]  # the wall-clock limit ends the run unless a step budget is given
        overrides = [f"env.preset={args.preset}", *budget, f"time_limit_min={args.minutes}",
                     "eval.freq=4096", "eval.instances=32", "checkpoint_freq=50000", "progress_bar=false",
                     "overwrite=true", f"torch_threads={args.threads}", *args.override]
        cfg = compose(overrides)
        print(f"== training MaskablePPO for {args.minutes} min -> {run} ==")
        res = train(cfg, run, overrides)  # agent.* overrides win over the agent file's per-env overrides
        print(f"trained {res.timesteps} steps in {res.wall_time_s:.0f}s ({res.steps_per_s:.1f} env steps/s); "
              f"best training-eval fragment_rate {res.best:.4f}")

    fam = sysgym.get_family("vm_resched")
    which = "best" if (run / "best_model.zip").exists() else "final"
    agent = solvers.get("vm_resched.agent", path=str(run), which=which)
    milp, greedy = solvers.get("vm_resched.milp"), solvers.get("vm_resched.greedy")
    agent.solve(fam.generate(seed=0, preset=args.preset))  # warm the policy cache (load time is not decision time)
    rows = []
    print(f"== held-out instances ({args.preset}, seeds 2000000+i), scored by vm_resched.evaluate ==")
    print(f"{'seed':>8} {'FR before':>9} {'agent':>8} {'MILP opt':>8} {'greedy':>8} {'gap':>7} "
          f"{'agent s':>8} {'decide s':>9} {'MILP s':>8} {'status':>8}")
    for i in range(args.seeds):
        seed = 2_000_000 + i
        inst = fam.generate(seed=seed, preset=args.preset)
        a = agent.solve(inst)
        m = milp.solve(inst, time_limit=args.milp_time_limit)
        g = greedy.solve(inst)
        fa = fam.evaluate(inst, a)["fragment_rate"]
        fm = fam.evaluate(inst, m)["fragment_rate"]
        fg = fam.evaluate(inst, g)["fragment_rate"]
        before = fam.evaluate(inst, [])["fragment_rate"]
        gap = (fa - fm) / max(fm, 1e-9)
        rows.append((seed, before, fa, fm, fg, gap, a.wall_time_s, a.stats["decide_time_s"], m.wall_time_s, m.status))
        print(f"{seed:>8} {before:9.4f} {fa:8.4f} {fm:8.4f} {fg:8.4f} {gap:7.1%} {a.wall_time_s:8.4f} "
              f"{a.stats['decide_time_s']:9.4f} {m.wall_time_s:8.3f} {m.status:>8}")
    arr = np.array([r[1:9] for r in rows], float)
    opt_rows = [r for r in rows if r[9] == "optimal"]
    print("== summary ==")
    print(f"mean FR: before {arr[:, 0].mean():.4f}, agent {arr[:, 1].mean():.4f}, MILP {arr[:, 2].mean():.4f}, "
          f"greedy {arr[:, 3].mean():.4f}")
    print(f"agent gap to MILP optimum: mean {arr[:, 4].mean():.1%}, median {np.median(arr[:, 4]):.1%}, "
          f"within 5%: {int((arr[:, 4] <= 0.05).sum())}/{len(rows)} (MILP proved optimality on "
          f"{len(opt_rows)}/{len(rows)})")
    print(f"gap of the mean FR: {(arr[:, 1].mean() - arr[:, 2].mean()) / arr[:, 2].mean():.1%}")
    print(f"speed ratio MILP/agent: {arr[:, 7].sum() / arr[:, 5].sum():.0f}x (agent wall incl. env), "
          f"{arr[:, 7].sum() / arr[:, 6].sum():.0f}x (policy decision time only)")
    _plot(rows, run / "bench_vs_milp.png")
    print(f"plot: {run / 'bench_vs_milp.png'}")
    return 0


def two_stage(args) -> int:
    """Mode 3 (module docstring): every figure comes from `vm_resched.evaluate`."""
    import json

    import sysgym
    from sysgym import solvers

    fam = sysgym.get_family("vm_resched")
    path = {} if args.two_stage == "shipped" else {"path": args.two_stage}
    greedy_pol = solvers.get("vm_resched.agent", **path)  # samples=0: the temperature plays no part
    if args.temperature is not None:
        path["temperature"] = args.temperature
    sampled = solvers.get("vm_resched.agent", samples=args.samples, **path)
    print(f"== two-stage policy {greedy_pol.path} (shared, loaded 2-core machine) ==")
    out: dict = {"policy": str(greedy_pol.path), "samples": args.samples, "medium_samples": args.medium_samples,
                 "temperature": sampled.temperature,
                 "small": [], "medium": []}
    s0 = args.first_seed
    print(f"-- small, seeds {s0}..{s0 + args.seeds - 1}: CP-SAT optimum vs the policy --")
    print(f"{'seed':>6} {'before':>7} {'opt':>7} {'greedy-dec':>10} {'K-sample':>8} {'heur':>7} {'gapK':>6} "
          f"{'dec s':>6}")
    cache = json.loads(Path(args.optima).read_text()) if args.optima and Path(args.optima).exists() else {}
    for i in range(args.seeds):
        inst = fam.generate(seed=s0 + i, preset="small")
        if str(s0 + i) not in cache:
            opt = solvers.get("vm_resched.cpsat").solve(inst, time_limit=args.milp_time_limit)
            cache[str(s0 + i)] = {"status": opt.status, "decisions": [list(map(int, m)) for m in opt.decisions]}
        opt_status, opt_plan = cache[str(s0 + i)]["status"], cache[str(s0 + i)]["decisions"]
        a, k = greedy_pol.solve(inst), sampled.solve(inst, seed=i)
        row = {"seed": s0 + i, "before": fam.evaluate(inst, [])["fragment_rate"], "status": opt_status,
               "optimum": fam.evaluate(inst, opt_plan)["fragment_rate"],
               "policy": fam.evaluate(inst, a)["fragment_rate"],
               "policy_k": fam.evaluate(inst, k)["fragment_rate"], "decide_s_k": k.wall_time_s,
               "greedy": fam.evaluate(inst, solvers.get("vm_resched.greedy").solve(inst))["fragment_rate"]}
        out["small"].append(row)
        print(f"{row['seed']:>6} {row['before']:7.4f} {row['optimum']:7.4f} {row['policy']:10.4f} "
              f"{row['policy_k']:8.4f} {row['greedy']:7.4f} {row['policy_k'] / max(row['optimum'], 1e-9) - 1:6.1%} "
              f"{row['decide_s_k']:6.2f}")
    if args.optima:
        Path(args.optima).write_text(json.dumps(cache))
    sm = {k: float(np.mean([r[k] for r in out["small"]]))
          for k in ("before", "optimum", "policy", "policy_k", "greedy")}
    n_opt = sum(r["status"] == "optimal" for r in out["small"])
    print(f"mean FR: optimum {sm['optimum']:.4f} ({n_opt}/{args.seeds} proven), policy greedy-decoded "
          f"{sm['policy']:.4f} ({sm['policy'] / sm['optimum'] - 1:+.1%}), K={args.samples} {sm['policy_k']:.4f} "
          f"({sm['policy_k'] / sm['optimum'] - 1:+.1%}), greedy heuristic {sm['greedy']:.4f}")
    print(f"-- medium-v1 seeds 0..{args.medium_seeds - 1}: same checkpoint vs greedy, LNS at the policy's wall time --")
    print(f"{'seed':>4} {'before':>7} {'policy':>7} {'pol tFR':>7} {'pol s':>6} {'polK':>7} {'polK s':>6} "
          f"{'greedy':>7} {'gr tFR':>7} {'LNS':>7} {'LNS s':>6}")
    for seed in range(args.medium_seeds):
        inst = fam.generate(seed=seed, preset="medium")
        rows = {}
        sampled_m = solvers.get("vm_resched.agent", samples=args.medium_samples, **path)
        for label, sol in (("policy", greedy_pol.solve(inst)), ("policy_k", sampled_m.solve(inst, seed=seed)),
                           ("greedy", solvers.get("vm_resched.greedy").solve(inst))):
            ev = fam.evaluate(inst, sol, wall_time_s=sol.wall_time_s)
            rows[label] = {"fr": ev["fragment_rate"], "timed_fr": ev["fragment_rate_timed"], "wall_s": sol.wall_time_s}
        lns = solvers.get("vm_resched.lns").solve(inst, time_limit=max(rows["policy"]["wall_s"], 0.1))
        ev = fam.evaluate(inst, lns, wall_time_s=lns.wall_time_s)
        rows["lns"] = {"fr": ev["fragment_rate"], "timed_fr": ev["fragment_rate_timed"], "wall_s": lns.wall_time_s}
        rows["seed"], rows["before"] = seed, fam.evaluate(inst, [])["fragment_rate"]
        out["medium"].append(rows)
        p, pk, g, ln = rows["policy"], rows["policy_k"], rows["greedy"], rows["lns"]
        print(f"{seed:>4} {rows['before']:7.4f} {p['fr']:7.4f} {p['timed_fr']:7.4f} {p['wall_s']:6.2f} {pk['fr']:7.4f} "
              f"{pk['wall_s']:6.2f} {g['fr']:7.4f} {g['timed_fr']:7.4f} {ln['fr']:7.4f} {ln['wall_s']:6.2f}")
    med = {k: {m: float(np.mean([r[k][m] for r in out["medium"]])) for m in ("fr", "timed_fr", "wall_s")}
           for k in ("policy", "policy_k", "greedy", "lns")}
    for k, v in med.items():
        print(f"medium mean {k:8s}: FR {v['fr']:.4f}, time-aware FR {v['timed_fr']:.4f}, wall {v['wall_s']:.2f}s")
    out["large"] = []
    for seed in range(args.large_seeds):  # the same checkpoint on 1,176 PMs: runs, and what it gives
        inst = fam.generate(seed=seed, preset="large")
        a, g = greedy_pol.solve(inst), solvers.get("vm_resched.greedy").solve(inst)
        row = {"seed": seed, "before": fam.evaluate(inst, [])["fragment_rate"], "policy": fam.evaluate(inst, a)[
            "fragment_rate"], "policy_s": a.wall_time_s, "greedy": fam.evaluate(inst, g)["fragment_rate"],
            "greedy_s": g.wall_time_s, "pms": inst.num_pms, "vms": inst.num_vms, "mnl": inst.mnl}
        out["large"].append(row)
        print(f"large seed {seed} ({inst.num_pms} PMs, {inst.num_vms} VMs, MNL {inst.mnl}): FR before "
              f"{row['before']:.4f}, policy {row['policy']:.4f} in {row['policy_s']:.1f}s, greedy {row['greedy']:.4f} "
              f"in {row['greedy_s']:.1f}s")
    out["summary"] = {"small": sm, "small_proven_optimal": n_opt, "medium": med}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
        print(f"table: {args.json}")
    return 0


def _plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for k, (col, label) in enumerate(((1, "before"), (2, "MaskablePPO"), (4, "greedy"), (3, "MILP optimum"))):
        ax.bar(x + (k - 1.5) * 0.2, [r[col] for r in rows], 0.2, label=label)
    ax.set_xticks(x, [str(r[0] - 2_000_000) for r in rows])
    ax.set_xlabel("held-out instance (seed - 2000000)")
    ax.set_ylabel("fragment rate (lower is better)")
    ax.legend(fontsize=8)
    save_figure(fig, path, dpi=100)


if __name__ == "__main__":
    sys.exit(main())
