"""KV-eviction speed figures (prints them; the issue's target: one policy on 64 x 512 tokens in < 60 s), and the
session level's (kv_sessions) CP-SAT solve times against Belady and LRU.

    .venv/bin/python benchmarks/kv_eviction_bench.py            # scoring speed + MILP solve times + sessions
    .venv/bin/python benchmarks/kv_eviction_bench.py --curve    # also the budget-vs-perplexity plot (--out DIR)
    .venv/bin/python benchmarks/kv_eviction_bench.py --model tiny --seq-len 128 --num-sequences 8 --milp-presets tiny

Single-threaded torch (`--threads` to change). The default model trains on first use (minutes) and is cached.
"""
from __future__ import annotations

import argparse
import time

import torch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--model", default="default", help="model of the scoring run (tiny: a quick check, 128 tokens max)")
    ap.add_argument("--policy", default="h2o")
    ap.add_argument("--num-sequences", type=int, default=64)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--milp-presets", default="tiny,small")
    ap.add_argument("--curve", action="store_true", help="also write the budget-vs-perplexity curve and plot")
    ap.add_argument("--out", default="kv_eviction_curve")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import sysgym
    from sysgym import solvers
    from sysgym.envs.kv_eviction import generate, get_model, run_policy
    from sysgym.envs.kv_eviction.evaluate import evaluate

    t0 = time.perf_counter()
    model = get_model(args.model)
    print(f"{args.model} model: {model.stats['params']} parameters, weights {model.digest} "
          f"(load/train {time.perf_counter() - t0:.1f} s)")

    t0 = time.perf_counter()
    inst = generate(seed=0, model=args.model, num_sequences=args.num_sequences, seq_len=args.seq_len, budget=0.2)
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    sim = run_policy(inst, args.policy)
    t_sim = time.perf_counter() - t0
    t0 = time.perf_counter()
    m = evaluate(inst, sim.decisions())
    t_eval = time.perf_counter() - t0
    total = t_gen + t_sim + t_eval
    decoded = inst.num_sequences * (inst.seq_len - inst.prompt_len)
    print(f"\nscoring {args.policy} on {inst.num_sequences} x {inst.seq_len} tokens (budget {inst.budget}, "
          f"prompt {inst.prompt_len}), {torch.get_num_threads()} torch thread(s):")
    print(f"  generate {t_gen:.2f} s | online decoding with eviction {t_sim:.2f} s "
          f"({decoded / t_sim:.0f} decoded tokens/s) | evaluator {t_eval:.2f} s "
          f"({inst.num_sequences * inst.seq_len / t_eval:.0f} tokens/s through both forwards, "
          f"{m['tokens_scored'] / t_eval:.0f} scored tokens/s)")
    print(f"  total {total:.2f} s (target < 60 s: {'met' if total < 60 else 'NOT met'}); "
          f"ppl ratio {m['perplexity_ratio']:.4f}, top-1 {m['top1_agreement']:.3f}, mass {m['attention_mass']:.3f}")

    print("\nMILP (kv_eviction.milp, CBC, per-head groups, H2O warm start):")
    for preset in args.milp_presets.split(","):
        inst = generate(seed=0, preset=preset)
        for gran in ("sequence", "head"):
            t0 = time.perf_counter()
            sol = solvers.get("kv_eviction.milp", granularity=gran).solve(inst, time_limit=600)
            wall = time.perf_counter() - t0
            mm = evaluate(inst, sol)
            h2o = evaluate(inst, solvers.get("kv_eviction.h2o", granularity=gran).solve(inst))
            st = sol.stats
            print(f"  {preset:6s} {inst.num_sequences} x {inst.seq_len} budget {inst.budget:3d} {gran:8s}: "
                  f"{st['groups']:3d} groups, {st['variables']:7d} binaries, {wall:6.1f} s "
                  f"({wall / st['groups']:.2f} s/group), {sol.status}; mass {mm['attention_mass']:.4f} "
                  f"(bound {st['attention_mass_bound']:.4f}, gap {st['attention_mass_gap']:.1e}; H2O "
                  f"{h2o['attention_mass']:.4f}); ppl ratio {mm['perplexity_ratio']:.4f} "
                  f"(H2O {h2o['perplexity_ratio']:.4f})")

    print("\nsession level (kv_sessions: CP-SAT offline optimum vs Belady/LRU; variable sizes unless 'uniform'):")
    fam = sysgym.get_family("kv_sessions")
    for kind, kw in (("agent", {}), ("chat", {}), ("agent", {"uniform_tokens": 1000, "capacity": 3000})):
        w = fam.generator(seed=0, preset=kind, num_sessions=24, **{"capacity": 8000, **kw})
        sol = solvers.get("kv_sessions.cpsat").solve(w, time_limit=60)
        opt = fam.evaluate(w, sol)
        bel = fam.evaluate(w, solvers.get("kv_sessions.belady").solve(w))
        lru = fam.evaluate(w, solvers.get("kv_sessions.lru").solve(w))
        tag = " uniform" if kw else ""
        print(f"  {kind + tag:13s} {w.num_turns:3d} turns ({2 * w.num_turns} events): CP-SAT "
              f"{sol.status} in {sol.wall_time_s:.3f} s; recompute tokens {opt['recompute_tokens']} "
              f"(Belady {bel['recompute_tokens']}, LRU {lru['recompute_tokens']}); mean TTFT "
              f"{opt['ttft_mean'] * 1e3:.1f} ms (Belady {bel['ttft_mean'] * 1e3:.1f}, "
              f"LRU {lru['ttft_mean'] * 1e3:.1f})")

    if args.curve:
        from sysgym.envs.kv_eviction.curve import budget_curve, plot_curve, write_rows

        t0 = time.perf_counter()
        rows = budget_curve()
        write_rows(rows, f"{args.out}/kv_eviction_curve.jsonl")
        png = plot_curve(rows, f"{args.out}/kv_eviction_curve.png", title="default model, 8 x 256 tokens")
        print(f"\nbudget curve ({time.perf_counter() - t0:.0f} s), plot {png}:")
        print(f"  {'policy':14s} {'budget':>6s} {'ppl ratio':>9s} {'top-1':>6s} {'mass':>6s}")
        for r in rows:
            print(f"  {r['label']:14s} {r['budget']:6.2f} {r['perplexity_ratio']:9.4f} {r['top1_agreement']:6.3f} "
                  f"{r['attention_mass']:6.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
