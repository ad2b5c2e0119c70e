"""Job-scheduling plots (matplotlib, Agg backend): per-user response-time distributions (one box per (policy,
user)) and per-user response and share over time (the UWFQ paper's view)."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import numpy as np

from sysgym.envs.job_sched.instance import JobInstance
from sysgym.plotting import save_figure


def plot_per_user(results: dict[str, list[tuple[JobInstance, np.ndarray]]], path: str | Path,
                  title: str = "Per-user job response time") -> Path:
    """`results[policy]` = list of (instance, job finish times); writes a PNG with one panel per user
    (box plots of response time per policy, log scale) and returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    policies = list(results)
    users = sorted({int(u) for runs in results.values() for inst, _ in runs for u in np.unique(inst.job_user)})
    fig, axes = plt.subplots(1, len(users), figsize=(3.2 * len(users), 3.8), sharey=True, squeeze=False)
    for ax, u in zip(axes[0], users):
        data = []
        for p in policies:
            resp = [fin[inst.job_user == u] - inst.job_arrival[inst.job_user == u] for inst, fin in results[p]]
            data.append(np.concatenate(resp) if resp else np.array([np.nan]))
        ax.boxplot(data, showfliers=False)
        ax.set_xticks(range(1, len(policies) + 1), policies, rotation=60, fontsize=8)
        inst0 = results[policies[0]][0][0]
        kind = ""
        if inst0.meta.get("heavy_users"):
            kind = " (heavy: small jobs)" if u < inst0.meta["heavy_users"] else " (light: large jobs)"
        ax.set_title(f"user {u}{kind}", fontsize=9)
        ax.set_yscale("log")
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("response time (s)")
    return _save(fig, path, title)


def plot_over_time(runs: dict[str, tuple[JobInstance, dict]], path: str | Path, title: str = "",
                   bins: int = 40) -> Path:
    """The UWFQ paper's view of user-level fairness over time, one column per policy (`runs[policy]` = (instance,
    executed schedule) of one run): top, each user's job response times by arrival time (points) with a running
    mean of its last 5 jobs (line); bottom, each user's received share over its fair share (`metrics.
    user_share_timeline`) per time bin (1 = exactly its fair share). Writes a PNG and returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sysgym.envs.job_sched.evaluate import check_schedule
    from sysgym.envs.job_sched.instance import partition_runtime
    from sysgym.envs.job_sched.metrics import user_share_timeline

    policies = list(runs)
    fig, axes = plt.subplots(2, len(policies), figsize=(4.2 * len(policies), 6.4), sharex="col", sharey="row",
                             squeeze=False)
    for col, p in enumerate(policies):
        inst, sched = runs[p]
        if sched.get("runtime_partition_s"):
            inst = partition_runtime(inst, float(sched["runtime_partition_s"]))
        finish, _ = check_schedule(inst, sched)
        resp = finish - inst.job_arrival
        heavy = int(inst.meta.get("heavy_users", 0) or 0)
        colors = plt.get_cmap("tab10")
        ax = axes[0][col]
        for u in range(inst.num_users):
            sel = np.flatnonzero(inst.job_user == u)
            if not len(sel):
                continue
            sel = sel[np.argsort(inst.job_arrival[sel], kind="stable")]
            kind = (" heavy" if u < heavy else " light") if heavy else ""
            ax.scatter(inst.job_arrival[sel], resp[sel], s=8, alpha=0.35, color=colors(u % 10))
            run = np.convolve(resp[sel], np.ones(5), "full")[:len(sel)] / np.minimum(np.arange(1, len(sel) + 1), 5)
            ax.plot(inst.job_arrival[sel], run, color=colors(u % 10), lw=1.4, label=f"user {u}{kind}")
        ax.set_yscale("log")
        ax.set_title(p, fontsize=10)
        ax.grid(alpha=0.3)
        tl = user_share_timeline(inst, sched["task_start"], sched["task_end"])
        t = tl["times"]
        edges = np.linspace(t[0], t[-1], bins + 1)
        mid = (edges[:-1] + edges[1:]) / 2
        ax2 = axes[1][col]
        for u in range(inst.num_users):
            got, fair = _binned(t, tl["received"][:, u], edges), _binned(t, tl["fair"][:, u], edges)
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = np.where(fair > 1e-9, got / np.maximum(fair, 1e-12), np.nan)
            ax2.plot(mid, ratio, color=colors(u % 10), lw=1.2, marker=".", ms=3)
        ax2.axhline(1.0, color="k", lw=0.8, ls="--")
        ax2.set_xlabel("time (s)")
        ax2.grid(alpha=0.3)
    axes[0][0].set_ylabel("job response time (s)")
    axes[1][0].set_ylabel("received / fair share")
    axes[0][-1].legend(fontsize=7, loc="upper left")
    return _save(fig, path, unquote(title) or "Per-user response and share over time")


def _save(fig, path: str | Path, title: str) -> Path:
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path, dpi=120)


def _binned(times: np.ndarray, values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The integral of a piecewise-constant signal (`values[i]` on [times[i], times[i + 1])) over each bin."""
    cum = np.concatenate([[0.0], np.cumsum(values * np.diff(times))])
    at = np.interp(edges, times, cum)
    return np.diff(at)
