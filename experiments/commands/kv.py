"""`sysgym kv {train,eval,curve,inspect}`: the token-level KV-eviction family from the command line.

    sysgym kv train --model default                                  # load a shipped model (--retrain: train it here)
    sysgym kv inspect --model default --plot docs/images/kv_patterns_default.png   # sinks and heavy hitters
    sysgym kv eval --policy streaming_llm --budget 0.2 --model tiny --seq-len 128
    sysgym kv curve --out kv_curve                                   # every policy x budget, JSONL + PNG

`sysgym kv-eviction ...` is the old name and still works, as does `sysgym kv-eviction sessions ...`, the old
name of `sysgym kv-sessions compare` (the session level is the kv_sessions family).
"""
from __future__ import annotations

import argparse
import json


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def _train(args: argparse.Namespace) -> int:
    _threads(args.threads)
    from sysgym.envs.kv_eviction.model import get_model

    m = get_model(args.model, retrain=args.retrain)
    print(f"model {m.name} ({m.cfg.n_layer} layers, {m.cfg.n_head} heads, d={m.cfg.d_model}, "
          f"{m.stats['params']} parameters) at {m.path}")
    print(f"weights {m.digest}; training: {m.stats['train_seconds']:.0f} s, final loss "
          f"{m.stats['final_train_loss']:.3f} nats/byte")
    return 0


def _eval(args: argparse.Namespace) -> int:
    _threads(args.threads)
    from sysgym.envs.kv_eviction.evaluate import evaluate_policy
    from sysgym.errors import InvalidArgumentError

    budget = float(args.budget) if "." in args.budget else int(args.budget)
    try:
        params = json.loads(args.params) if args.params else {}
    except json.JSONDecodeError as exc:
        raise InvalidArgumentError(f"--params is not JSON: {exc}") from None
    m = evaluate_policy(args.policy, budget=budget, num_sequences=args.num_sequences, seq_len=args.seq_len,
                        seed=args.seed, model=args.model, **params)
    print(json.dumps(m, indent=1, sort_keys=True))
    return 0


def _curve(args: argparse.Namespace) -> int:
    _threads(args.threads)
    from pathlib import Path

    from sysgym.envs.kv_eviction.curve import budget_curve, plot_curve, write_rows

    budgets = [float(b) for b in args.budgets.split(",")]
    rows = budget_curve(model=args.model, budgets=budgets, policies=args.policies.split(","),
                        num_sequences=args.num_sequences, seq_len=args.seq_len, seed=args.seed)
    out = Path(args.out)
    write_rows(rows, out / "kv_eviction_curve.jsonl")
    png = plot_curve(rows, out / "kv_eviction_curve.png",
                     title=f"model {args.model}, {args.num_sequences} x {args.seq_len} tokens")
    print(f"{'policy':14s} {'budget':>6s} {'ppl ratio':>9s} {'top-1':>6s} {'mass':>6s}")
    for r in rows:
        print(f"{r['label']:14s} {r['budget']:6.2f} {r['perplexity_ratio']:9.4f} {r['top1_agreement']:6.3f} "
              f"{r['attention_mass']:6.3f}")
    print(f"plot: {png}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    _threads(args.threads)
    from sysgym.envs.kv_eviction.patterns import attention_patterns, plot_patterns

    p = attention_patterns(args.model, num_sequences=args.num_sequences, seq_len=args.seq_len, k=args.k,
                           heavy=args.heavy, seed=args.seed)
    if args.json:
        print(json.dumps(p, indent=1))
    print(f"model {p['model']} (weights {p['weights']}), {p['num_sequences']} x {p['seq_len']} held-out tokens")
    first, top = f"first {p['k']} tokens", f"top {p['heavy']:.0%} keys"
    print(f"{'layer':>5s} {first:>14s} {top:>13s}")
    for li, (s, h) in enumerate(zip(p["sink_share"], p["heavy_share"])):
        print(f"{li:5d} {s:14.3f} {h:13.3f}")
    print(f"{'unif.':>5s} {p['uniform_sink_share']:14.3f} {p['uniform_heavy_share']:13.3f}")
    print(f"layers with >= 20 % of attention on the first {p['k']} tokens: {p['layers_with_sink']} of "
          f"{len(p['sink_share'])}")
    if args.plot:
        print(f"plot: {plot_patterns(p, args.plot)}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from sysgym.experiments.commands.kv_sessions import add_compare_arguments

    kv = subparsers.add_parser("kv", aliases=["kv-eviction"],
                               help="token-level KV-cache eviction: train the model, score policies")
    sub = kv.add_subparsers(dest="kv_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", default="default",
                        help="model configuration: default (shipped), legacy, small or tiny")
    common.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    tr = sub.add_parser("train", parents=[common], help="train (or load) and cache a model")
    tr.add_argument("--retrain", action="store_true", help="train again even when cached")
    tr.set_defaults(func=_train)
    ev = sub.add_parser("eval", parents=[common], help="score one policy with the real model")
    ev.add_argument("--policy", required=True, help="full, random, streaming_llm, h2o, tova or snapkv")
    ev.add_argument("--budget", default="0.2", help="fraction of the sequence (0.2) or a token count (50)")
    ev.add_argument("--params", default="", help='policy parameters as JSON, e.g. \'{"start_size": 0}\'')
    ev.add_argument("--num-sequences", type=int, default=8)
    ev.add_argument("--seq-len", type=int, default=256)
    ev.add_argument("--seed", type=int, default=0)
    ev.set_defaults(func=_eval)
    cu = sub.add_parser("curve", parents=[common], help="budget-vs-perplexity curve of every policy, with a plot")
    cu.add_argument("--budgets", default="0.05,0.1,0.2,0.3,0.5")
    cu.add_argument("--policies", default="random,window,streaming_llm,h2o,tova,snapkv")
    cu.add_argument("--num-sequences", type=int, default=8)
    cu.add_argument("--seq-len", type=int, default=256)
    cu.add_argument("--seed", type=int, default=0)
    cu.add_argument("--out", default="kv_eviction_curve", help="folder for the JSONL rows and the PNG")
    cu.set_defaults(func=_curve)
    ins = sub.add_parser("inspect", parents=[common],
                         help="attention sinks and heavy-hitter concentration per layer, with a plot")
    ins.add_argument("--k", type=int, default=4, help="initial tokens counted as sinks (StreamingLLM: 4)")
    ins.add_argument("--heavy", type=float, default=0.2, help="top share of keys for the concentration (H2O: 0.2)")
    ins.add_argument("--num-sequences", type=int, default=8)
    ins.add_argument("--seq-len", type=int, default=None, help="tokens per sequence (default: the model's context)")
    ins.add_argument("--seed", type=int, default=0)
    ins.add_argument("--plot", default="", help="write the figure here (PNG), e.g. docs/images/kv_patterns.png")
    ins.add_argument("--json", action="store_true", help="also print the figures as JSON (per head too)")
    ins.set_defaults(func=_inspect)
    se = sub.add_parser("sessions", help="old name of `sysgym kv-sessions compare` (session-level retention)")
    add_compare_arguments(se)
