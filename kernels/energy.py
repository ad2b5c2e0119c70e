"""Energy from TDP and utilisation, with POLCA-style power capping.

Board power is modelled as idle + (TDP - idle) x utilisation (linear in utilisation, as in the
utilisation-based GPU power models surveyed by POLCA, Patel et al., ASPLOS'24). A cap below that
power lowers clocks; dynamic power scales ~ f^3 (P ~ C V^2 f with V ~ f) so the clock ratio is
(allowed dynamic / wanted dynamic)^(1/3), and only the compute-bound share of the time stretches by it.
POLCA reports the effect this reproduces: memory-bound LLM phases lose little speed under a cap.
"""
from __future__ import annotations

import numpy as np

from .hardware import GPU, get_gpu

IDLE_FRACTION = 0.25  # idle board power ~ 1/4 TDP (A100: ~ 90-100 W of 400 W, POLCA Fig. 2)


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
        clock = np.where(dynamic > 0, (allowed / np.where(dynamic > 0, dynamic, 1.0)) ** (1.0 / 3.0), 1.0)
        share = u if compute_bound_fraction is None else np.asarray(compute_bound_fraction, dtype=float)
        t = t * (share / clock + (1.0 - share))
        power = idle + allowed
    energy = power * t * num_gpus
    scalar = np.ndim(energy) == 0
    conv = float if scalar else np.asarray
    return {"seconds": conv(t), "power_w": conv(power * num_gpus), "energy_j": conv(energy)}
