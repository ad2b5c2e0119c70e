"""Statistics of repeated pgbench runs: mean, spread and the 95 % confidence interval of the mean."""
from __future__ import annotations

import math
import statistics
from typing import Any


def summarise_runs(runs: list[dict[str, float]], **extra: Any) -> dict[str, Any]:
    tps = [r["tps"] for r in runs]
    lat = [r["latency_ms"] for r in runs]
    n = len(runs)
    tps_std = statistics.stdev(tps) if n > 1 else 0.0
    return {"tps_mean": statistics.fmean(tps), "tps_std": tps_std,
            "tps_ci95": t_halfwidth(tps_std, n), "latency_ms_mean": statistics.fmean(lat),
            "latency_ms_std": statistics.stdev(lat) if n > 1 else 0.0, "tps_runs": tps, "latency_ms_runs": lat,
            "failed_transactions": sum(int(r.get("failed", 0)) for r in runs), "repetitions": n, **extra}


# Two-sided 95 % Student-t quantiles for 1..30 degrees of freedom (any statistics table).
_T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t_quantile(dof: int) -> float:
    if dof < 1:
        return math.inf
    return _T95[dof - 1] if dof <= len(_T95) else 1.96


def t_halfwidth(std: float, n: int) -> float:
    """Half-width of the 95 % confidence interval of a mean of n runs (inf for one run)."""
    return t_quantile(n - 1) * std / math.sqrt(n) if n > 1 else math.inf
