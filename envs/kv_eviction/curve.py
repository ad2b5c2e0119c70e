"""Budget-vs-perplexity curves of the token-level policies, with a plot (matplotlib, Agg)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sysgym.envs.kv_eviction.evaluate import evaluate_policy
from sysgym.plotting import save_figure

# `window`: StreamingLLM without sinks (start_size=0), the ablation of StreamingLLM's Table 1.
CURVE_POLICIES: dict[str, tuple[str, dict[str, Any]]] = {
    "random": ("random", {}),
    "window": ("streaming_llm", {"start_size": 0}),
    "streaming_llm": ("streaming_llm", {}),
    "h2o": ("h2o", {}),
    "tova": ("tova", {}),
    "snapkv": ("snapkv", {}),
}
BUDGETS = (0.05, 0.1, 0.2, 0.3, 0.5)


def budget_curve(*, model: str = "default", budgets=BUDGETS, policies=tuple(CURVE_POLICIES), num_sequences: int = 8,
                 seq_len: int = 256, seed: int = 0, progress: bool = True) -> list[dict[str, Any]]:
    """One row per (policy, budget) with the evaluator's metrics."""
    unknown = [p for p in policies if p not in CURVE_POLICIES]
    if unknown:
        from sysgym.errors import UnknownNameError

        raise UnknownNameError("curve policy", unknown[0], CURVE_POLICIES)
    jobs = [(p, b) for p in policies for b in budgets]
    if progress:
        from tqdm import tqdm

        jobs = tqdm(jobs, desc="budget curve", disable=None)
    rows = []
    for label, budget in jobs:
        name, params = CURVE_POLICIES[label]
        m = evaluate_policy(name, budget=budget, num_sequences=num_sequences, seq_len=seq_len, seed=seed,
                            model=model, **params)
        rows.append({"label": label, "budget": budget, **{k: v for k, v in m.items() if k != "policy"}})
    return rows


def plot_curve(rows: list[dict[str, Any]], out: str | Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    labels = list(dict.fromkeys(r["label"] for r in rows))
    for ax, key, name in zip(axes, ("perplexity_ratio", "top1_agreement", "attention_mass"),
                             ("perplexity / full-cache perplexity", "top-1 agreement with full cache",
                              "attention mass retained")):
        for label in labels:
            pts = sorted((r["budget"], r[key]) for r in rows if r["label"] == label)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_xlabel("KV budget (fraction of the sequence)")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0].legend()
    if title:
        fig.suptitle(title)
    return save_figure(fig, out, dpi=110)


def write_rows(rows: list[dict[str, Any]], out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(json.dumps(r, sort_keys=True) for r in rows) + "\n")
    return out

