"""KV-eviction figures and the issue's targets (prints them), and the session level's (kv_sessions) CP-SAT solve
times against Belady and LRU.

    .venv/bin/python benchmarks/kv_eviction_bench.py            # patterns, scoring speed, oracles, sessions
    .venv/bin/python benchmarks/kv_eviction_bench.py --curve    # also the budget curve (8 x 1,024 tokens) + targets
    .venv/bin/python benchmarks/kv_eviction_bench.py --curve-file docs/images/kv_eviction_curve.jsonl  # saved curve
    .venv/bin/python benchmarks/kv_eviction_bench.py --model tiny --seq-len 128 --oracle-presets tiny --skip-sessions

Targets (issue 23), on the shipped default model: the first 4 tokens get >= 20 % of the attention in at least
half of the layers; StreamingLLM beats window-only at every budget; no policy's perplexity ratio is below 1.0
on held-out text; the loss-aware oracle is at or below every online policy's loss increase on every sequence;
one policy at one budget on 8 sequences of 1,024 tokens is scored in < 60 s on 2 cores. Single-threaded
torch by default (`--threads`).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

MILP_MAX_LEN = 128  # per-head MILPs on longer traces take minutes per group


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def patterns(model: str, seq_len: int | None) -> None:
    from sysgym.envs.kv_eviction.patterns import attention_patterns

    t0 = time.perf_counter()
    p = attention_patterns(model, num_sequences=8, seq_len=seq_len)
    n_layer = len(p["sink_share"])
    print(f"\nattention patterns ({p['num_sequences']} x {p['seq_len']} held-out tokens, "
          f"{time.perf_counter() - t0:.0f} s): first 4 tokens per layer "
          f"{' '.join(f'{s:.3f}' for s in p['sink_share'])} (uniform {p['uniform_sink_share']:.3f}); top-20 % keys "
          f"{' '.join(f'{s:.3f}' for s in p['heavy_share'])} (uniform {p['uniform_heavy_share']:.3f})")
    print(f"  target: >= 20 % on the first 4 tokens in >= half the layers: {p['layers_with_sink']} of {n_layer} "
          f"({_met(2 * p['layers_with_sink'] >= n_layer)})")


def scoring(model: str, policy: str, num_sequences: int, seq_len: int) -> None:
    from sysgym.envs.kv_eviction import generate, run_policy
    from sysgym.envs.kv_eviction.evaluate import evaluate

    t0 = time.perf_counter()
    inst = generate(seed=0, model=model, num_sequences=num_sequences, seq_len=seq_len, budget=0.2)
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    sim = run_policy(inst, policy)
    t_sim = time.perf_counter() - t0
    t0 = time.perf_counter()
    m = evaluate(inst, sim.decisions())
    t_eval = time.perf_counter() - t0
    total = t_gen + t_sim + t_eval
    decoded = inst.num_sequences * (inst.seq_len - inst.prompt_len)
    print(f"\nscoring {policy} on {inst.num_sequences} x {inst.seq_len} tokens (budget {inst.budget}, "
          f"prompt {inst.prompt_len}), {torch.get_num_threads()} torch thread(s):")
    print(f"  generate {t_gen:.2f} s | online decoding with eviction {t_sim:.2f} s "
          f"({decoded / t_sim:.0f} decoded tokens/s) | evaluator {t_eval:.2f} s")
    print(f"  total {total:.2f} s (target < 60 s: {_met(total < 60)}); "
          f"ppl ratio {m['perplexity_ratio']:.4f}, top-1 {m['top1_agreement']:.3f}, mass {m['attention_mass']:.3f}")


def oracles(presets: list[str], model: str | None) -> None:
    """Both offline methods against every online policy, per sequence: the loss-aware oracle's loss increase
    (and its margin to the best online policy) and the mass MILP's (its loss gap to the oracle, and the
    oracle's mass gap to the MILP's mass bound)."""
    from sysgym import solvers
    from sysgym.envs.kv_eviction import generate, run_policy
    from sysgym.envs.kv_eviction.curve import CURVE_POLICIES
    from sysgym.envs.kv_eviction.evaluate import evaluate
    from sysgym.envs.kv_eviction.simulator import make_policy

    print("\noffline methods (kv_eviction.oracle: search on the real loss; kv_eviction.milp: optimum of mass, "
          "per sequence, CBC):")
    for preset in presets:
        for budget in (0.1, 0.2, 0.3):
            inst = generate(seed=0, preset=preset, budget=budget, **({"model": model} if model else {}))
            t0 = time.perf_counter()
            orc = solvers.get("kv_eviction.oracle").solve(inst)
            t_orc = time.perf_counter() - t0
            mo = evaluate(inst, orc)
            mm = None
            if inst.seq_len <= MILP_MAX_LEN:
                t0 = time.perf_counter()
                milp = solvers.get("kv_eviction.milp", granularity="sequence").solve(inst, time_limit=300)
                t_milp = time.perf_counter() - t0
                mm = evaluate(inst, milp)
            online = {label: evaluate(inst, run_policy(inst, make_policy(n, **p)).decisions())
                      for label, (n, p) in CURVE_POLICIES.items()}
            mine = np.array(mo["loss_increase_per_sequence"])
            worst_margin = min(float(np.min(np.array(o["loss_increase_per_sequence"]) - mine))
                               for o in online.values())
            best_label = min(online, key=lambda k: online[k]["loss_increase"])
            best = online[best_label]["loss_increase"]
            line = (f"  {preset:7s} {inst.num_sequences} x {inst.seq_len} budget {budget:.1f}: oracle loss increase "
                    f"{mo['loss_increase']:+.4f} ({t_orc:.0f} s; best online {best_label} {best:+.4f}; mass "
                    f"{mo['attention_mass']:.3f})")
            if mm is None:
                line += f" | MILP skipped (> {MILP_MAX_LEN} tokens)"
            else:
                line += (f" | MILP {mm['loss_increase']:+.4f} ({t_milp:.0f} s, {milp.status}; loss gap to the oracle "
                         f"{mm['loss_increase'] - mo['loss_increase']:+.4f}; mass {mm['attention_mass']:.3f}, bound "
                         f"{milp.stats['attention_mass_bound']:.3f})")
            print(line)
            print(f"    oracle <= every online policy on every sequence: {_met(worst_margin >= -1e-6)} "
                  f"(smallest margin {worst_margin:+.2e})")


def curve_targets(rows: list[dict]) -> None:
    budgets = sorted({r["budget"] for r in rows})
    by = {(r["label"], r["budget"]): r for r in rows}
    print(f"  {'policy':14s} {'budget':>6s} {'ppl ratio':>9s} {'top-1':>6s} {'mass':>6s}")
    for r in rows:
        print(f"  {r['label']:14s} {r['budget']:6.2f} {r['perplexity_ratio']:9.4f} {r['top1_agreement']:6.3f} "
              f"{r['attention_mass']:6.3f}")
    if all(("streaming_llm", b) in by and ("window", b) in by for b in budgets):
        beats = [by["streaming_llm", b]["perplexity_ratio"] < by["window", b]["perplexity_ratio"] for b in budgets]
        print(f"  target: StreamingLLM below window-only at every budget: {_met(all(beats))} "
              f"({sum(beats)} of {len(budgets)})")
    low = min(rows, key=lambda r: r["perplexity_ratio"])
    print(f"  target: no perplexity ratio below 1.0: {_met(low['perplexity_ratio'] >= 1.0)} (lowest "
          f"{low['perplexity_ratio']:.4f}, {low['label']} at {low['budget']:.2f})")


def sessions() -> None:
    import sysgym
    from sysgym import solvers

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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--model", default="default", help="model of the scoring run (tiny: a quick check, 128 tokens max)")
    ap.add_argument("--policy", default="h2o")
    ap.add_argument("--num-sequences", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--oracle-presets", default="small,default", help="instances of the oracle comparison")
    ap.add_argument("--skip-sessions", action="store_true")
    ap.add_argument("--curve", action="store_true", help="also compute the budget curve and plot (slow)")
    ap.add_argument("--curve-file", default="", help="check the targets of a saved curve (JSONL)")
    ap.add_argument("--out", default="kv_eviction_curve")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from sysgym.envs.kv_eviction import get_model

    t0 = time.perf_counter()
    model = get_model(args.model)
    print(f"{args.model} model: {model.stats['params']} parameters, weights {model.digest} "
          f"(load/train {time.perf_counter() - t0:.1f} s)")
    patterns(args.model, min(args.seq_len, model.cfg.ctx))
    scoring(args.model, args.policy, args.num_sequences, args.seq_len)
    oracles(args.oracle_presets.split(","), None if args.model == "default" else args.model)
    rows = None
    if args.curve:
        from sysgym.envs.kv_eviction.curve import budget_curve, plot_curve, write_rows

        t0 = time.perf_counter()
        rows = budget_curve(model=args.model, num_sequences=args.num_sequences, seq_len=args.seq_len)
        write_rows(rows, f"{args.out}/kv_eviction_curve.jsonl")
        png = plot_curve(rows, f"{args.out}/kv_eviction_curve.png",
                         title=f"{args.model} model, {args.num_sequences} x {args.seq_len} tokens")
        print(f"\nbudget curve ({time.perf_counter() - t0:.0f} s), plot {png}:")
    elif args.curve_file:
        with open(args.curve_file) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        print(f"\nbudget curve from {args.curve_file}:")
    if rows:
        curve_targets(rows)
    if not args.skip_sessions:
        sessions()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
