"""Per-user response-time distributions (matplotlib, Agg backend): one box per (policy, user)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sysgym.envs.job_sched.instance import JobInstance


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
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
