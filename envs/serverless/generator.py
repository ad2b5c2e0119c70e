"""Seeded generator of serverless warm-pool instances, calibrated on the published statistics of two traces.

Sources (every constant below names its own):
* [SitW] Shahrad et al., "Serverless in the Wild", USENIX ATC'20 (Azure Functions 2019 trace). Figures 5(a), 6,
  7 and 8 were read off the ATC curves as the trace's own notebook re-plots them
  (github.com/Azure/AzurePublicDataset, analysis/AzureFunctionsDataset2019-Trace_Analysis.md, whose "ATC" lines
  are the paper's data); readings are approximate (a few % of the axis). Fig. 2 is a table (exact).
* [CS] Joosen et al., "Serverless Cold Starts and Where to Find Them", EuroSys'25 (Huawei Public Cloud Trace
  2025; paper in github.com/sir-lab/data-release/papers).
Numbers that neither paper publishes are marked ASSUMPTION with the reason for the value.

The model, per function: a trigger (SitW Fig. 2); a mean daily invocation rate (SitW Fig. 5(a)); arrivals that are
periodic with jitter for timers and a Weibull renewal process otherwise, with the inter-arrival coefficient of
variation (CV) drawn from SitW Fig. 6; a mean execution time (SitW Fig. 7) with per-invocation log-normal spread;
memory: the application's allocated memory (SitW Fig. 8) rounded up to the smallest Huawei pod pool that holds it
(CS Sec. 2.1); a cold-start time from CS's all-region log-normal fit (Fig. 10(b)), split into the four logged
components (CS Sec. 4.2).
"""
from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np

from sysgym.envs.serverless.instance import COMPONENTS, TRIGGERS, ServerlessInstance, busy_memory_bound
from sysgym.errors import InvalidInstanceError, UnknownNameError
from sysgym.generators import Generator
from sysgym.specs import format_spec

# -- invocation rates ---------------------------------------------------------------------------------------
# [SitW Fig. 5(a), "Functions" ATC curve] quantiles of a function's average daily invocations. Checks on the
# reading: the "Applications" curve read the same way gives 45 % of apps at <= 24/day and 81 % at <= 1440/day,
# the paper's text (Sec. 3.2: 45 % of apps invoked once per hour or less, 81 % once per minute or less). The
# lowest value is one invocation in the trace's 14 days.
RATE_PER_DAY_QUANTILES = (
    (0.00, 0.0714), (0.06, 0.0714), (0.10, 0.144), (0.20, 0.432), (0.25, 0.81), (0.30, 1.0), (0.35, 1.2),
    (0.40, 1.72), (0.50, 4.8), (0.60, 17.4), (0.64, 24.5), (0.70, 56.2), (0.80, 272.0), (0.90, 1213.0),
    (0.93, 1853.0), (0.95, 4251.0), (0.97, 8840.0), (0.98, 20717.0), (0.99, 64585.0), (0.995, 115478.0),
    (1.00, 2.0e7),
)
# [SitW Fig. 2, ATC] share of functions per trigger group (% of functions), in TRIGGERS order:
# http 55.0, queue 15.2, event 2.2, orchestration 6.9, timer 15.6, storage 2.8, others 2.2.
TRIGGER_SHARES = (55.0, 15.2, 2.2, 6.9, 15.6, 2.8, 2.2)
TIMER = TRIGGERS.index("timer")
# [SitW Fig. 6, ATC] quantiles of the inter-arrival CV. "No Timers" apps: 11 % have CV ~0, median 1.7, 91 % below
# 10 (the plot's range). "Only Timers" apps: about half have CV 0 (strictly periodic), 90 % below 0.8.
CV_QUANTILES_NON_TIMER = ((0.0, 0.0), (0.11, 0.0), (0.2, 0.34), (0.3, 0.82), (0.4, 1.25), (0.5, 1.74), (0.6, 2.34),
                          (0.7, 3.19), (0.8, 4.77), (0.9, 9.1), (1.0, 10.0))
CV_QUANTILES_TIMER = ((0.0, 0.0), (0.5, 0.0), (0.6, 0.075), (0.7, 0.14), (0.8, 0.36), (0.9, 0.76), (1.0, 2.0))
# ASSUMPTION: CVs above the plotted range (10; 9 % of non-timer apps) are capped at 10, and the top 10 % of timer
# apps at 2 (apps with several timers); Fig. 6 is per application, applied here per function.
# ASSUMPTION: timer periods are common cron intervals (minutes); a timer's rate is snapped to the nearest.
# CS Sec. 3.2 and 4.3 describe timers "invoked with a periodicity greater than one minute".
TIMER_PERIODS_MIN = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440)

# -- execution times ----------------------------------------------------------------------------------------
# [SitW Fig. 7, "Average" ATC curve] quantiles of a function's average execution time, seconds: median ~0.93 s
# (the paper: half of the functions run under 1 s on average), 90 % under ~22 s.
EXEC_MEAN_S_QUANTILES = ((0.0, 0.001), (0.01, 0.0071), (0.05, 0.027), (0.10, 0.057), (0.25, 0.211), (0.50, 0.935),
                         (0.75, 4.22), (0.90, 21.8), (0.95, 51.4), (0.97, 76.3), (0.98, 118.0), (0.99, 300.0),
                         (1.0, 600.0))
# ASSUMPTION: the 99th-100th percentiles are beyond the readable curve; 600 s is Azure Functions' consumption-plan
# maximum timeout. Per-invocation execution times are log-normal around the function's mean with sigma 0.8:
# [SitW Fig. 7] the median function's maximum is ~3.9x its average (3.62 s vs 0.93 s), which a log-normal with
# sigma 0.8 gives for ~100 invocations (E[max]/mean = exp(2.33 * 0.8 - 0.32)).
EXEC_SIGMA = 0.8

# -- memory -------------------------------------------------------------------------------------------------
# [SitW Fig. 8, "Average" ATC curve] quantiles of an application's average allocated memory, MB (the paper: 50 %
# of apps allocate at most ~170 MB, 90 % at most 400 MB at their maximum).
MEM_NEED_MB_QUANTILES = ((0.0, 50.0), (0.005, 86.0), (0.01, 88.0), (0.05, 97.0), (0.10, 101.0), (0.25, 116.0),
                         (0.50, 141.0), (0.75, 188.0), (0.90, 221.0), (0.95, 280.0), (0.97, 300.0), (0.98, 333.0),
                         (0.99, 450.0), (1.0, 1500.0))
# [CS Sec. 2.1, Fig. 8(c); the trace's pool names] Huawei's pod pools, memory limit in MB: pool22-300-128,
# pool23-400-256, pool24-600-512, pool26-1000-1024, pool30-1800-2048, pool34-3400-4096, pool35-6600-8192.
POOL_MB = (128, 256, 512, 1024, 2048, 4096, 8192)

# -- cold starts --------------------------------------------------------------------------------------------
# [CS Sec. 4.1, Fig. 10(b)] cold-start times of all regions fit a log-normal with mean 3.24 s and standard
# deviation 7.10 s: sigma^2 = ln(1 + (7.10/3.24)^2), i.e. sigma 1.326 and median 1.35 s (the per-region medians
# lie between 0.1 and 2 s, Fig. 10(a)).
COLD_MEAN_S, COLD_STD_S = 3.24, 7.10
COLD_SIGMA = math.sqrt(math.log(1.0 + (COLD_STD_S / COLD_MEAN_S) ** 2))
# Mean cold-start time and the share of each component (pod allocation, code, dependencies, scheduling).
# Means: [CS Sec. 4.2] "mean total cold start times vary between 3 seconds in Region 1 to less than 0.3 seconds in
# Region 3"; "all" is the Fig. 10(b) fit; Region 2's mean is an ASSUMPTION (1.5 s; the abstract gives cold
# starts "up to 3 seconds"). Shares are ASSUMPTIONS that follow the published dominant components: Region 1
# "dominated by dependency deployment time and scheduling", Region 2 "dominated by pod allocation time"
# (abstract); Region 3's total correlates most with scheduling (0.8) and code deployment (0.6) (Fig. 12(c));
# over all regions "scheduling delays are either the most or the second most significant component" (Sec. 5).
COLD_REGIONS: dict[str, dict[str, Any]] = {
    "all": {"mean_s": COLD_MEAN_S, "shares": (0.25, 0.10, 0.20, 0.45)},
    "r1": {"mean_s": 3.0, "shares": (0.05, 0.10, 0.40, 0.45)},
    "r2": {"mean_s": 1.5, "shares": (0.60, 0.05, 0.10, 0.25)},
    "r3": {"mean_s": 0.3, "shares": (0.05, 0.30, 0.05, 0.60)},
}
# ASSUMPTION: per-function component shares vary as Dirichlet(20 x shares) around the region's shares.
SHARE_CONCENTRATION = 20.0
# [CS Sec. 4.4 box, Fig. 13] functions with larger resource allocations (above 400 millicores / 256 MB) have cold
# starts 2-5x longer; the factor here is the lower end, 2 (ASSUMPTION within the published range).
LARGE_POOL_MB, LARGE_POOL_COLD_FACTOR = 256, 2.0

# -- the objective's weight ---------------------------------------------------------------------------------
# ASSUMPTION, derived: the weight at which the state-of-practice fixed 10-minute keep-alive (AWS Lambda's,
# SitW Sec. 4.1) of a typical function (256 MB, the most common pool for SitW Fig. 8's needs) breaks even with
# one mean cold start (3.24 s, CS Fig. 10(b)): 3.24 s / (0.25 GB x 600 s) = 0.0216 s per GB-s.
MEMORY_WEIGHT = COLD_MEAN_S / (0.25 * 600.0)

PRESETS: dict[str, dict[str, Any]] = {
    # CP-SAT proves the capacity-constrained offline optimum here (tests).
    "tiny": {"num_functions": 5, "horizon_min": 120, "max_rate_per_day": 1440.0},
    "small": {"num_functions": 20, "horizon_min": 360, "max_rate_per_day": 2880.0},
    # One day of 200 functions (SitW's trace files are per day); ~1e5 invocations.
    "standard": {"num_functions": 200, "horizon_min": 1440, "max_rate_per_day": 8640.0},
}


def generate_v0(*, seed: int = 0, preset: str | None = None, num_functions: int | None = None,
                horizon_min: float | None = None, max_rate_per_day: float | None = None,
                capacity_fraction: float = 0.5, memory_weight: float = MEMORY_WEIGHT, region: str = "all",
                min_invocations: int = 2) -> ServerlessInstance:
    """Functions with calibrated invocations, executions, memory and cold starts, and a warm pool.

    `preset` fills defaults (`tiny` 5 functions / 2 h, `small` 20 / 6 h, `standard` 200 / 24 h); explicit
    arguments override them. `max_rate_per_day` caps the hottest functions' rates (ASSUMPTION: functions invoked
    more than every few seconds are warm under any keep-alive policy, so the cap changes no decision, only the
    simulation's length). `capacity_fraction` sizes the pool as that share of all functions' memory (ASSUMPTION:
    0.5, half of the functions warm at once; never below what busy instances can need). `region` picks the
    cold-start profile (`all`, `r1`, `r2`, `r3`). Functions with fewer than `min_invocations` arrivals in the
    horizon are redrawn (they carry no keep-alive decision).
    """
    explicit = {k: v for k, v in locals().items() if k in _DEFAULTS and k not in ("seed", "preset")
                and v is not None and v != _DEFAULTS[k]}
    params: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise UnknownNameError("serverless preset", preset, PRESETS)
        params.update(PRESETS[preset])
    params.update({k: v for k, v in {"num_functions": num_functions, "horizon_min": horizon_min,
                                       "max_rate_per_day": max_rate_per_day}.items() if v is not None})
    if "num_functions" not in params or "horizon_min" not in params:
        raise InvalidInstanceError("serverless generate() needs num_functions and horizon_min (or a preset)")
    n_f, horizon = int(params["num_functions"]), float(params["horizon_min"]) * 60.0
    cap_rate = float(params.get("max_rate_per_day", math.inf))
    if n_f <= 0 or horizon <= 0:
        raise InvalidInstanceError(f"need num_functions > 0 and horizon_min > 0, got {n_f} and {horizon / 60}")
    if region not in COLD_REGIONS:
        raise UnknownNameError("serverless cold-start region", region, COLD_REGIONS)
    if not 0 < capacity_fraction <= 1:
        raise InvalidInstanceError(f"capacity_fraction must be in (0, 1], got {capacity_fraction}")
    if not (math.isfinite(memory_weight) and memory_weight >= 0):
        raise InvalidInstanceError(f"memory_weight must be a finite number >= 0, got {memory_weight}")
    rng = np.random.default_rng([int(seed), 0x534C53])  # "SLS": this family's stream

    trig_p = np.asarray(TRIGGER_SHARES) / sum(TRIGGER_SHARES)
    triggers = rng.choice(len(TRIGGERS), size=n_f, p=trig_p)
    times, execs, funcs = [], [], []
    mem = np.empty(n_f)
    comps = np.empty((n_f, len(COMPONENTS)))
    exec_mean = np.empty(n_f)
    reg = COLD_REGIONS[region]
    log_mu = math.log(reg["mean_s"]) - COLD_SIGMA ** 2 / 2
    for f in range(n_f):
        for _attempt in range(1000):
            rate = min(float(_quantile(RATE_PER_DAY_QUANTILES, rng.random(), log=True)), cap_rate)
            arr = _arrivals(rng, rate / 86400.0, horizon, timer=triggers[f] == TIMER)
            if len(arr) >= min_invocations:
                break
        else:  # pragma: no cover - needs a horizon shorter than any drawn rate can fill
            raise InvalidInstanceError(f"function {f}: no rate gave {min_invocations} invocations in {horizon} s")
        exec_mean[f] = _quantile(EXEC_MEAN_S_QUANTILES, rng.random(), log=True)
        need = _quantile(MEM_NEED_MB_QUANTILES, rng.random(), log=True)
        mem[f] = next((p for p in POOL_MB if p >= need), POOL_MB[-1])
        total = math.exp(log_mu + COLD_SIGMA * rng.standard_normal())
        if mem[f] > LARGE_POOL_MB:
            total *= LARGE_POOL_COLD_FACTOR
        comps[f] = total * rng.dirichlet(SHARE_CONCENTRATION * np.asarray(reg["shares"]))
        e = exec_mean[f] * np.exp(EXEC_SIGMA * rng.standard_normal(len(arr)) - EXEC_SIGMA ** 2 / 2)
        times.append(arr), execs.append(e), funcs.append(np.full(len(arr), f))
    t, e, fn = np.concatenate(times), np.concatenate(execs), np.concatenate(funcs)
    order = np.lexsort((fn, t))
    t, e, fn = np.round(t[order], 6), np.round(e[order], 6), fn[order]
    t = np.minimum(t, np.nextafter(horizon, 0))  # rounding up must not push an arrival onto the horizon
    comps = np.round(comps, 6)
    name = format_spec("serverless", preset or "custom", seed, explicit)
    busy = busy_memory_bound(fn, t, e, comps.sum(axis=1), mem)
    capacity = max(math.ceil(capacity_fraction * float(mem.sum())), math.ceil(busy), int(mem.max()))
    source = {"generator": "serverless", "seed": int(seed), "region": region,
              "exec_mean_s": np.round(exec_mean, 6).tolist()}
    return ServerlessInstance(mem_mb=mem, **{c: comps[:, i] for i, c in enumerate(COMPONENTS)}, trigger=triggers,
                              inv_func=fn, inv_time=t, inv_exec=e, capacity_mb=float(capacity),
                              memory_weight=float(memory_weight), horizon_s=horizon, name=name, source=source)


def _quantile(table: tuple[tuple[float, float], ...], u: float, log: bool = False) -> float:
    """Inverse CDF from (probability, value) points, linear in value (or in log value)."""
    ps = np.array([p for p, _ in table])
    vs = np.array([v for _, v in table], float)
    if log:
        return float(np.exp(np.interp(u, ps, np.log(vs))))
    return float(np.interp(u, ps, vs))


def _arrivals(rng: np.random.Generator, rate_per_s: float, horizon: float, timer: bool) -> np.ndarray:
    """Arrival times in [0, horizon): a jittered cron timer, or a Weibull renewal process (SitW Fig. 6's CVs)."""
    if timer:
        target = 1.0 / (rate_per_s * 60.0)
        period = 60.0 * min(TIMER_PERIODS_MIN, key=lambda p: abs(math.log(p / target)))
        cv = _quantile(CV_QUANTILES_TIMER, rng.random())
        base = rng.uniform(0, period) + period * np.arange(int(horizon / period) + 1)
        # iid jitter of standard deviation s gives inter-arrival CV = sqrt(2) s / period.
        arr = np.sort(base + rng.normal(0.0, cv * period / math.sqrt(2), len(base)))
    else:
        mean = 1.0 / rate_per_s
        cv = _quantile(CV_QUANTILES_NON_TIMER, rng.random())
        if cv < 0.05:  # CV ~0: evenly spaced
            gaps = np.full(int(horizon / mean) + 2, mean)
        else:
            k = _weibull_shape(cv)
            scale = mean / math.gamma(1 + 1 / k)
            n = int(horizon / mean * 1.2) + 16
            gaps = scale * rng.weibull(k, n)
            while gaps.sum() < horizon + mean:  # heavy tails: draw until the horizon is covered
                gaps = np.concatenate([gaps, scale * rng.weibull(k, n)])
        # The process started before 0 (stationary start, approximately): the first arrival is a uniform share of
        # a gap into the horizon.
        arr = np.cumsum(gaps) - rng.uniform(0, 1) * gaps[0]
    return arr[(arr >= 0) & (arr < horizon)]


def _weibull_shape(cv: float) -> float:
    """The Weibull shape k whose coefficient of variation is `cv` (bisection; CV falls as k grows)."""
    lo, hi = 0.05, 50.0

    def cv_of(k: float) -> float:
        g1, g2 = math.lgamma(1 + 1 / k), math.lgamma(1 + 2 / k)
        return math.sqrt(max(math.exp(g2 - 2 * g1) - 1.0, 0.0))

    for _ in range(60):
        mid = math.sqrt(lo * hi)
        if cv_of(mid) > cv:
            lo = mid
        else:
            hi = mid
    return math.sqrt(lo * hi)


_DEFAULTS = {k: p.default for k, p in inspect.signature(generate_v0).parameters.items()}

# The family's generator: v0 is what every spec without a version suffix names.
GENERATOR = Generator("serverless", presets=PRESETS, versions={0: generate_v0}, default_preset="small")
generate = GENERATOR
