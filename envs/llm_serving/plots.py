"""Plots of serving runs (matplotlib, Agg): latency CDFs and KV memory over time."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sysgym.envs.llm_serving.metrics import token_gaps
from sysgym.plotting import save_figure


def _cdf(ax, x, label):
    x = np.sort(np.asarray(x))
    if len(x):
        ax.plot(x, np.arange(1, len(x) + 1) / len(x), label=label)


def plot_compare(results: dict, path, *, title: str | None = None) -> Path:
    """TTFT, TBT and E2E CDFs of several runs (name -> ServingResult) plus KV blocks in use over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for name, res in results.items():
        rq = res.requests
        _cdf(axes[0, 0], rq.first_token - rq.arrival, name)
        _cdf(axes[0, 1], token_gaps(rq.token_time, rq.token_offsets) * 1e3, name)
        _cdf(axes[1, 0], rq.finish - rq.arrival, name)
        mem = res.memory_trace[0]
        if len(mem):
            axes[1, 1].plot(mem[:, 0], mem[:, 1] / res.plan.num_blocks, label=f"{name} (replica 0)", lw=0.7)
    for ax, xl in ((axes[0, 0], "TTFT (s)"), (axes[0, 1], "TBT (ms)"), (axes[1, 0], "end-to-end latency (s)")):
        ax.set_xlabel(xl)
        ax.set_ylabel("CDF")
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    axes[1, 1].set_xlabel("time (s)")
    axes[1, 1].set_ylabel("KV blocks in use / pool")
    axes[1, 1].set_ylim(0, 1.05)
    axes[1, 1].grid(alpha=0.3)
    axes[1, 1].legend(fontsize=8, loc="upper right")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path, dpi=120)


def plot_result(result, path, *, title: str | None = None) -> Path:
    return plot_compare({result.config.get("scheduler", "run"): result}, path, title=title)
