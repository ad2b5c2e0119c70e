"""`sysgym kv-sessions compare`: every session-level retention method on one workload, scored by
`kv_sessions.evaluate` (hit rates, recomputed tokens, TTFT from the serving simulator).

    sysgym kv-sessions compare --preset agent --seed 0               # 20 agent sessions, pool 8000 tokens
    sysgym kv-sessions compare --preset chat --capacity 6000 --plot sessions_chat.png

`sysgym kv-eviction sessions --kind agent --num-sessions 20 --capacity 8000` (the old command) runs the same.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sysgym.plotting import save_figure


def compare(args: argparse.Namespace) -> int:
    import sysgym
    from sysgym import solvers
    from sysgym.envs.kv_sessions import SESSION_POLICIES

    fam = sysgym.get_family("kv_sessions")
    overrides = {k: v for k, v in {"kind": args.kind, "num_sessions": args.num_sessions,
                                   "capacity": args.capacity}.items() if v is not None}
    w = fam.generator(seed=args.seed, preset=args.preset, **overrides)
    names = [f"kv_sessions.{p}" for p in (*SESSION_POLICIES, "cpsat")] if args.solvers == "all" else \
        [f"kv_sessions.{s.split('.')[-1]}" for s in args.solvers.split(",")]
    rows: dict[str, dict[str, Any]] = {}
    cpsat = None
    for name in names:
        solver = solvers.get(name)
        sol = solver.solve(w, time_limit=args.time_limit if solver.kind == "exact" else None, seed=0)
        label = name.split(".", 1)[1]
        if name == "kv_sessions.cpsat":
            label, cpsat = "cpsat (offline)", sol
        rows[label] = fam.evaluate(w, sol)
    kind = overrides.get("kind", (fam.presets.get(args.preset) or {}).get("kind", "agent"))
    head = f"{w.num_turns} turns of {w.num_sessions} {kind} sessions, pool {w.capacity} tokens"
    if cpsat is not None:
        head += f"; CP-SAT {cpsat.status} in {cpsat.wall_time_s:.2f} s"
    print(head)
    print(f"{'policy':16s} {'hit rate':>8s} {'token hits':>10s} {'recompute':>10s} {'TTFT mean':>10s} {'TTFT p90':>9s}")
    for p, m in rows.items():
        print(f"{p:16s} {m['hit_rate']:8.3f} {m['token_hit_rate']:10.3f} {m['recompute_tokens']:10d} "
              f"{m['ttft_mean'] * 1000:8.1f}ms {m['ttft_p90'] * 1000:7.1f}ms")
    if args.plot:
        print(f"plot: {plot_sessions(rows, args.plot, title=w.name)}")
    return 0


def plot_sessions(rows: dict[str, dict[str, Any]], out: str | Path, title: str = "") -> Path:
    """Bar charts of token hit rate, recompute tokens and mean TTFT per session-level policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, key, label, scale in zip(axes, ("token_hit_rate", "recompute_tokens", "ttft_mean"),
                                     ("token hit rate", "recomputed tokens", "mean TTFT (ms)"), (1, 1, 1000)):
        ax.bar(names, [rows[n][key] * scale for n in names], color="tab:blue")
        ax.set_title(label)
        ax.tick_params(axis="x", rotation=45)
        ax.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title)
    return save_figure(fig, out, dpi=110)


def add_compare_arguments(p: argparse.ArgumentParser, *, preset: str | None = "agent") -> None:
    p.add_argument("--preset", default=preset, help="workload preset: tiny, small, chat, agent (default agent)")
    p.add_argument("--kind", choices=("agent", "chat"), default=None, help="override the preset's session kind")
    p.add_argument("--num-sessions", type=int, default=None, help="override the preset's number of sessions")
    p.add_argument("--capacity", type=int, default=None, help="override the preset's retention pool, tokens")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--solvers", default="all", help="comma-separated methods (lru,belady,cpsat,...) or all")
    p.add_argument("--time-limit", type=float, default=30.0, help="CP-SAT seconds")
    p.add_argument("--plot", default=None, help="PNG path for a bar chart")
    p.set_defaults(func=compare)


def register(sub) -> None:
    p = sub.add_parser("kv-sessions", help="session-level KV retention: compare every method on a workload")
    kv = p.add_subparsers(dest="kv_sessions_command", required=True)
    c = kv.add_parser("compare", help="every retention policy and the CP-SAT optimum on one workload (TTFT from the "
                      "serving simulator)")
    add_compare_arguments(c)
