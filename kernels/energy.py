"""Energy from TDP and utilisation, with POLCA-style power capping.

Board power is modelled as idle + (TDP - idle) x utilisation (linear in utilisation, as in the
utilisation-based GPU power models surveyed by POLCA, Patel et al., ASPLOS'24). A cap below that
power lowers clocks; dynamic power scales ~ f^DVFS_EXPONENT (P ~ C V^2 f with V ~ f) so the clock ratio is
(allowed dynamic / wanted dynamic)^(1/DVFS_EXPONENT), and only the compute-bound share of the time stretches by it.
POLCA reports the effect this reproduces: memory-bound LLM phases lose little speed under a cap.

`board_power_w(gpu, activity, clock)` gives one GPU's power at a clock cap and `clock_time_factor(c, m, clock)` how
much longer work with roofline compute time c and memory time m takes at that clock (the power_cap family's
per-iteration model).
"""
from __future__ import annotations

import numpy as np

from .hardware import GPU, get_gpu

IDLE_FRACTION = 0.25  # idle board power ~ 1/4 TDP (A100: ~ 90-100 W of 400 W, POLCA Fig. 2)
# Dynamic power vs SM clock: P_dyn ~ C V^2 f with V roughly proportional to f across the DVFS range, so ~ f^3
# (the CMOS relation behind DVFS models). Measured GPUs fall more slowly once the voltage reaches its floor at low
# clocks (Mei, Wang and Chu, "A survey and measurement study of GPU DVFS on energy conservation", Digital
# Communications and Networks 2017), so 3 is the optimistic end: a cap saves at most this much; families that
# want the pessimistic end pass `exponent=2`.
DVFS_EXPONENT = 3.0


def estimate_energy(gpu: str | GPU, seconds, utilization, *, num_gpus: int = 1,
                    power_cap_w: float | None = None, compute_bound_fraction=None) -> dict:
    """{'seconds', 'power_w', 'energy_j'} for `num_gpus` GPUs busy for `seconds` at `utilization`.

    `utilization` in [0, 1] (e.g. model FLOP utilisation or SM activity); `compute_bound_fraction` is the
    share of time that slows with the clock under a cap (defaults to utilization). Arrays broadcast.
    """
    gpu = get_gpu(gpu)
    t = np.asarray(seconds, dtype=float)
    u = np.asarray(utilization, dtype=float)
    if np.any(t < 0) or np.any(u < 0) or np.any(u > 1):
        raise ValueError("seconds must be >= 0 and utilization in [0, 1]")
    idle = IDLE_FRACTION * gpu.tdp_w
    dynamic = (gpu.tdp_w - idle) * u
    power = idle + dynamic
    if power_cap_w is not None:
        if power_cap_w <= idle:
            raise ValueError(f"power cap {power_cap_w} W is below idle power {idle:.0f} W of {gpu.name}")
        allowed = np.minimum(dynamic, power_cap_w - idle)
        clock = np.where(dynamic > 0, (allowed / np.where(dynamic > 0, dynamic, 1.0)) ** (1.0 / DVFS_EXPONENT), 1.0)
        share = u if compute_bound_fraction is None else np.asarray(compute_bound_fraction, dtype=float)
        t = t * (share / clock + (1.0 - share))
        power = idle + allowed
    energy = power * t * num_gpus
    scalar = np.ndim(energy) == 0
    conv = float if scalar else np.asarray
    return {"seconds": conv(t), "power_w": conv(power * num_gpus), "energy_j": conv(energy)}


def board_power_w(gpu: str | GPU, activity, clock=1.0, *, exponent: float = DVFS_EXPONENT):
    """Board power (W) of one GPU running at `activity` in [0, 1] with its SM clock at `clock` x the maximum:
    P = P_idle + (TDP - P_idle) x activity x clock^exponent (idle power from IDLE_FRACTION, TDP from gpus.yaml).
    `activity` 0 is an idle GPU (idle power at any clock). Arrays broadcast."""
    gpu = get_gpu(gpu)
    a, f = np.asarray(activity, dtype=float), np.asarray(clock, dtype=float)
    if np.any(a < 0) or np.any(a > 1) or np.any(f <= 0) or np.any(f > 1):
        raise ValueError("activity must lie in [0, 1] and clock in (0, 1]")
    idle = IDLE_FRACTION * gpu.tdp_w
    p = idle + (gpu.tdp_w - idle) * a * f ** float(exponent)
    return float(p) if np.ndim(p) == 0 else p


def clock_time_factor(compute_s, memory_s, clock):
    """How much longer work takes at `clock` (x the maximum SM clock) on the roofline: max(c / f, m) / max(c, m)
    for its ideal compute time c (FLOPs / peak) and memory time m (bytes / bandwidth). HBM keeps its clock under
    an SM-clock cap, so memory-bound work (LLM decode) barely slows and compute-bound work (prefill) slows by
    1 / f: the finding POLCA (Patel et al., ASPLOS'24) measures, inference losing little throughput under
    moderate frequency caps."""
    c, m, f = (np.asarray(x, dtype=float) for x in (compute_s, memory_s, clock))
    if np.any(f <= 0) or np.any(f > 1):
        raise ValueError("clock must lie in (0, 1]")
    full = np.maximum(c, m)
    out = np.where(full > 0, np.maximum(c / f, m) / np.where(full > 0, full, 1.0), 1.0)
    return float(out) if np.ndim(out) == 0 else out
