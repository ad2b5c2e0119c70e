"""Seeded generator of serverless warm-pool instances, calibrated on the published statistics of two traces.

Sources (every constant below names its own):
* [SitW] Shahrad et al., "Serverless in the Wild", USENIX ATC'20 (Azure Functions 2019 trace). Figures 4, 5(a), 6,
  7 and 8 were read off the ATC curves as the trace's own notebook re-plots them
  (github.com/Azure/AzurePublicDataset, analysis/AzureFunctionsDataset2019-Trace_Analysis.md, whose "ATC" lines
  are the paper's data); readings are approximate (a few % of the axis). Figs. 2, 3(a) and 3(b) are tables (exact).
* [CS] Joosen et al., "Serverless Cold Starts and Where to Find Them", EuroSys'25 (Huawei Public Cloud Trace
  2025; paper in github.com/sir-lab/data-release/papers).
Numbers that neither paper publishes are marked ASSUMPTION with the reason for the value.

Version 1 (`serverless-v1/...`, what `generate` makes), per application (the unit: Azure allocates, and SitW's
policy decides, per application): a trigger combination (SitW Fig. 3); a mean daily invocation rate (SitW Fig. 5(a),
Applications); cron timers that fire exactly on schedule (one, or two of one period; at most once a minute) and,
for the other triggers, a Weibull renewal process with the inter-arrival CV of SitW Fig. 6 ("No Timers") whose rate
follows a weekly cycle (CS) and a diurnal one (CS; SitW Fig. 4); a mean execution time (SitW Fig. 7) with
per-invocation log-normal spread; memory: the application's allocated memory (SitW Fig. 8) rounded up to the
smallest Huawei pod pool that holds it (CS Sec. 2.1); a cold-start time from CS's all-region log-normal fit
(Fig. 10(b)), split into the four logged components (CS Sec. 4.2). `standard` spans a week.

Version 0 (specs without a suffix, kept reproducible) drew per-function rates (Fig. 5(a), Functions) and triggers
(Fig. 2) for units that are applications, timers with the application-level jitter of Fig. 6, stationary renewal
arrivals, and a one-day `standard`.
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

# -- version 1: applications, cron timers, daily and weekly cycles ------------------------------------------------
# A unit of this family is an application (instance.py: Azure allocates, and SitW's policy decides, per
# application), so version 1 draws what the trace publishes per application where it can.
# [SitW Fig. 5(a), "Applications" ATC curve] quantiles of an application's average daily invocations, read off the
# trace notebook's re-plot of the paper's figure with the same reading as the Functions table above (that reading
# reproduces the Functions table to a few %). Checks: 45 % of applications at <= 24/day and 80 % at <= 1440/day
# (the paper, Sec. 3.2: 45 % of apps are invoked once per hour or less, 81 % once per minute or less). The top 1 %
# are read as a straight line in log scale to 1e8/day (beyond the readable curve; capped by max_rate_per_day).
APP_RATE_PER_DAY_QUANTILES = (
    (0.00, 0.0714), (0.02, 0.0753), (0.05, 0.144), (0.10, 0.291), (0.15, 0.722), (0.20, 1.0), (0.25, 1.8),
    (0.30, 3.0), (0.35, 6.3), (0.40, 12.8), (0.45, 24.5), (0.50, 48.1), (0.55, 97.3), (0.60, 186.0),
    (0.65, 289.0), (0.70, 387.0), (0.75, 619.0), (0.80, 1253.0), (0.85, 2004.0), (0.90, 4979.0), (0.93, 10683.0),
    (0.95, 20382.0), (0.97, 60407.0), (0.98, 111914.0), (0.99, 351745.0), (1.00, 1.0e8),
)
# [SitW Fig. 3(b), ATC] the 13 most common trigger combinations of applications, % of applications (H http, T timer,
# Q queue, E event, S storage, O orchestration, o others); together 90.40 %. [Fig. 3(a), ATC] % of applications
# with at least one trigger of each kind. The other 9.60 % of applications (combinations of mostly 2-3 triggers
# the figure does not list) draw each trigger independently with the presence Fig. 3(a) leaves to them (ASSUMPTION:
# independence), redrawn while empty.
APP_TRIGGER_COMBOS = (("H", 43.27), ("T", 13.36), ("Q", 9.47), ("HT", 4.59), ("HQ", 4.22), ("E", 3.01),
                      ("S", 2.80), ("TQ", 2.57), ("HTQ", 2.48), ("Ho", 1.69), ("HS", 1.05), ("HO", 1.03),
                      ("HTo", 0.84))
APP_TRIGGER_PRESENCE = {"H": 64.07, "T": 29.15, "Q": 23.70, "S": 6.83, "E": 5.79, "O": 3.09, "o": 6.28}
TRIGGER_LETTERS = {"H": "http", "Q": "queue", "E": "event", "O": "orchestration", "T": "timer", "S": "storage",
                   "o": "others"}
# An application's recorded `trigger` is the first of its triggers in Fig. 3(a)'s order (http before timer ...).
LABEL_ORDER = "HTQSEOo"
# [SitW Sec. 3; CS Sec. 3.3] timers are cron-style ("Timer invokes functions based on a cron-style timer", CS) and
# "tend to be invoked infrequently (at most once per minute)" (CS). A timer-only application's rate is Fig. 5(a)'s
# conditioned on at most one invocation a minute; the other applications take the rest of the distribution so that
# all applications together follow Fig. 5(a) (`_non_timer_u`, exact). An application with timers and other
# triggers takes its rate from the rest of the distribution too, and its timers a timer-only application's rate,
# at most half of its own (ASSUMPTION: the trace does not split an application's invocations by trigger).
# Check: timers then carry ~2 % of invocations, SitW Fig. 2's 2.0 % (tests).
TIMER_MAX_RATE_PER_DAY = 1440.0
# [SitW Fig. 6, "Only Timers" ATC curve] about half of the timer-only applications have an inter-arrival CV of 0
# (strictly periodic); 90 % have a CV below ~0.8. An application's timers are one cron timer (CV 0) or, with the
# other half's probability, two timers of the same period at independent phases, whose merged arrivals have a CV
# uniform on [0, 1) (ASSUMPTION: the simplest multi-timer application; it gives 50 % at CV 0 and 88 % below 0.76,
# against the figure's 50 % and 90 %). Each timer fires exactly on its schedule, on whole seconds: no jitter.
TIMER_SINGLE_SHARE = 0.5
# Diurnal and weekly cycles of the non-timer invocations (a timer's schedule has none: [CS Sec. 3.3] "the number of
# pods allocated for timers does not vary much with time", and timers are "almost completely unaffected" by the
# holiday). A non-timer component's rate is its mean x weekly factor x (1 + a cos(2 pi (t - peak) / day)):
# * weekly: [CS Sec. 3.3] "approximately 30 % more pods allocated during weekdays compared to weekends"; day 0 is
#   a Monday, as in the 2019 trace (its first day, 15 July 2019, SitW Fig. 4). Factors 1.3 c on weekdays and c at
#   weekends with the week's mean 1: c = 7 / 8.5.
WEEKDAY_OVER_WEEKEND = 1.3
# * amplitude a ~ Uniform(0, 1) per application: peak-to-trough ratios (1 + a) / (1 - a) from 1 to unbounded,
#   median 3, 3 % above 60 (ASSUMPTION within [CS Sec. 3.2, Fig. 6(a)]: per-function ratios "from less than 2 to
#   over 1000", "the largest workloads ... less than 60"; synchronous (APIG, workflow) and OBS triggers "have very
#   strong daily periodicity" and "peak during working hours, and decrease during nighttime").
# * peak hour 14:00 +- 8 h (uniform): the spread of time zones and habits is an ASSUMPTION, calibrated so that the
#   aggregate has peak / mean ~ 1.2 and trough / mean ~ 0.8, the range of the hourly invocations relative to the
#   mean in [SitW Fig. 4, ATC curve] (E[a] x sin(w) / w = 0.5 x 0.41 with w = 8 h: 0.207; tests).
DIURNAL_AMPLITUDE_MAX = 1.0
DIURNAL_PEAK_HOUR, DIURNAL_PEAK_SPREAD_H = 14.0, 8.0
DAY_S = 86400.0
# CV below which a non-timer component is strictly periodic in real time (SitW Fig. 6: 11 % of "No Timers"
# applications have a CV of ~0, a periodic external caller; a daily cycle cannot modulate a CV of 0).
PERIODIC_CV = 0.05

PRESETS_V0: dict[str, dict[str, Any]] = {
    "tiny": {"num_functions": 5, "horizon_min": 120, "max_rate_per_day": 1440.0},
    "small": {"num_functions": 20, "horizon_min": 360, "max_rate_per_day": 2880.0},
    "standard": {"num_functions": 200, "horizon_min": 1440, "max_rate_per_day": 8640.0},
}
PRESETS: dict[str, dict[str, Any]] = {
    # CP-SAT proves the capacity-constrained offline optimum here (tests).
    "tiny": {"num_functions": 5, "horizon_min": 120, "max_rate_per_day": 1440.0},
    "small": {"num_functions": 20, "horizon_min": 360, "max_rate_per_day": 2880.0},
    # A week of 200 functions (~1e6 invocations): the keep-alive policies that learn (Shahrad et al.'s hybrid
    # histogram) learn online from the first invocation and every decision is scored, the learning included; a
    # week holds a weekly cycle and gives a function invoked a few times a day dozens of idle times. (The 2019
    # trace spans two weeks, SitW Fig. 4; Azure's production policy keeps two weeks of idle-time history.)
    # Version 0's `standard` was one day.
    "standard": {"num_functions": 200, "horizon_min": 7 * 1440, "max_rate_per_day": 8640.0},
}


def _resolve(presets: dict[str, dict[str, Any]], preset: str | None, num_functions, horizon_min, max_rate_per_day,
             capacity_fraction: float, memory_weight: float, region: str) -> tuple[int, float, float]:
    """(functions, horizon in seconds, rate cap per day) from the preset and the explicit arguments, validated."""
    params: dict[str, Any] = {}
    if preset is not None:
        if preset not in presets:
            raise UnknownNameError("serverless preset", preset, presets)
        params.update(presets[preset])
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
    return n_f, horizon, cap_rate


def _function_profile(rng: np.random.Generator, n_arr: int, reg: dict[str, Any], log_mu: float
                      ) -> tuple[float, float, np.ndarray, np.ndarray]:
    """A function's mean execution time, memory, cold-start components and per-invocation execution times."""
    exec_mean = _quantile(EXEC_MEAN_S_QUANTILES, rng.random(), log=True)
    need = _quantile(MEM_NEED_MB_QUANTILES, rng.random(), log=True)
    mem = next((p for p in POOL_MB if p >= need), POOL_MB[-1])
    total = math.exp(log_mu + COLD_SIGMA * rng.standard_normal())
    if mem > LARGE_POOL_MB:
        total *= LARGE_POOL_COLD_FACTOR
    comps = total * rng.dirichlet(SHARE_CONCENTRATION * np.asarray(reg["shares"]))
    e = exec_mean * np.exp(EXEC_SIGMA * rng.standard_normal(n_arr) - EXEC_SIGMA ** 2 / 2)
    return exec_mean, mem, comps, e


def _assemble(times: list, execs: list, funcs: list, mem: np.ndarray, comps: np.ndarray, triggers: np.ndarray,
              horizon: float, capacity_fraction: float, memory_weight: float, name: str,
              source: dict[str, Any]) -> ServerlessInstance:
    t, e, fn = np.concatenate(times), np.concatenate(execs), np.concatenate(funcs)
    order = np.lexsort((fn, t))
    t, e, fn = np.round(t[order], 6), np.round(e[order], 6), fn[order]
    t = np.minimum(t, np.nextafter(horizon, 0))  # rounding up must not push an arrival onto the horizon
    comps = np.round(comps, 6)
    busy = busy_memory_bound(fn, t, e, comps.sum(axis=1), mem)
    capacity = max(math.ceil(capacity_fraction * float(mem.sum())), math.ceil(busy), int(mem.max()))
    return ServerlessInstance(mem_mb=mem, **{c: comps[:, i] for i, c in enumerate(COMPONENTS)}, trigger=triggers,
                              inv_func=fn, inv_time=t, inv_exec=e, capacity_mb=float(capacity),
                              memory_weight=float(memory_weight), horizon_s=horizon, name=name, source=source)


def generate_v0(*, seed: int = 0, preset: str | None = None, num_functions: int | None = None,
                horizon_min: float | None = None, max_rate_per_day: float | None = None,
                capacity_fraction: float = 0.5, memory_weight: float = MEMORY_WEIGHT, region: str = "all",
                min_invocations: int = 2) -> ServerlessInstance:
    """Version 0 (specs without a suffix): stationary renewal arrivals, timers with the application-level jitter of
    SitW Fig. 6, `standard` one day. Kept reproducible; new instances come from `generate_v1`."""
    explicit = {k: v for k, v in locals().items() if k in _DEFAULTS_V0 and k not in ("seed", "preset")
                and v is not None and v != _DEFAULTS_V0[k]}
    n_f, horizon, cap_rate = _resolve(PRESETS_V0, preset, num_functions, horizon_min, max_rate_per_day,
                                      capacity_fraction, memory_weight, region)
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
            arr = _arrivals_v0(rng, rate / 86400.0, horizon, timer=triggers[f] == TIMER)
            if len(arr) >= min_invocations:
                break
        else:  # pragma: no cover - needs a horizon shorter than any drawn rate can fill
            raise InvalidInstanceError(f"function {f}: no rate gave {min_invocations} invocations in {horizon} s")
        exec_mean[f], mem[f], comps[f], e = _function_profile(rng, len(arr), reg, log_mu)
        times.append(arr), execs.append(e), funcs.append(np.full(len(arr), f))
    name = format_spec("serverless", preset or "custom", seed, explicit)
    source = {"generator": "serverless", "seed": int(seed), "region": region,
              "exec_mean_s": np.round(exec_mean, 6).tolist()}
    return _assemble(times, execs, funcs, mem, comps, triggers, horizon, capacity_fraction, memory_weight, name,
                     source)


def generate_v1(*, seed: int = 0, preset: str | None = None, num_functions: int | None = None,
                horizon_min: float | None = None, max_rate_per_day: float | None = None,
                capacity_fraction: float = 0.5, memory_weight: float = MEMORY_WEIGHT, region: str = "all",
                min_invocations: int = 2) -> ServerlessInstance:
    """Applications with calibrated invocations, executions, memory and cold starts, and a warm pool.

    `preset` fills defaults (`tiny` 5 applications / 2 h, `small` 20 / 6 h, `standard` 200 / 7 days); explicit
    arguments override them (`num_functions` counts applications, the unit of allocation). An application's
    triggers come from SitW Fig. 3; its timers fire strictly on cron schedules, its other invocations are a Weibull
    renewal process (SitW Fig. 6's CVs) whose rate follows a weekly and a diurnal cycle; day 0 starts on a Monday
    at 00:00. `max_rate_per_day` caps the hottest applications' mean rates (ASSUMPTION: applications invoked more
    than every few seconds are warm under any keep-alive policy, so the cap changes no decision, only the
    simulation's length). `capacity_fraction` sizes the pool as that share of all applications' memory
    (ASSUMPTION: 0.5, half of them warm at once; never below what busy instances can need). `region` picks the
    cold-start profile (`all`, `r1`, `r2`, `r3`). Applications with fewer than `min_invocations` arrivals in the
    horizon are redrawn (they carry no keep-alive decision).
    """
    explicit = {k: v for k, v in locals().items() if k in _DEFAULTS_V1 and k not in ("seed", "preset")
                and v is not None and v != _DEFAULTS_V1[k]}
    n_f, horizon, cap_rate = _resolve(PRESETS, preset, num_functions, horizon_min, max_rate_per_day,
                                      capacity_fraction, memory_weight, region)
    rng = np.random.default_rng([int(seed), 0x534C53, 1])  # this family's stream, version 1
    times, execs, funcs = [], [], []
    mem = np.empty(n_f)
    comps = np.empty((n_f, len(COMPONENTS)))
    exec_mean = np.empty(n_f)
    triggers = np.empty(n_f, int)
    info: dict[str, list] = {k: [] for k in ("triggers", "rate_per_day", "timers", "timer_period_min", "iat_cv",
                                            "diurnal_amplitude", "peak_hour")}
    reg = COLD_REGIONS[region]
    log_mu = math.log(reg["mean_s"]) - COLD_SIGMA ** 2 / 2
    for f in range(n_f):
        combo = _draw_combo(rng)
        triggers[f] = TRIGGERS.index(TRIGGER_LETTERS[next(c for c in LABEL_ORDER if c in combo)])
        for _attempt in range(1000):
            app = _draw_application(rng, combo, cap_rate, horizon)
            if len(app["arrivals"]) >= min_invocations:
                break
        else:  # pragma: no cover - needs a horizon shorter than any drawn rate can fill
            raise InvalidInstanceError(f"application {f}: no rate gave {min_invocations} invocations in {horizon} s")
        arr = app.pop("arrivals")
        for k, v in app.items():
            info[k].append(v)
        info["triggers"].append(combo)
        exec_mean[f], mem[f], comps[f], e = _function_profile(rng, len(arr), reg, log_mu)
        times.append(arr), execs.append(e), funcs.append(np.full(len(arr), f))
    name = format_spec("serverless", preset or "custom", seed, explicit, version=1)
    source = {"generator": "serverless", "version": 1, "seed": int(seed), "region": region,
              "exec_mean_s": np.round(exec_mean, 6).tolist(),
              **{k: (np.round(v, 6).tolist() if k != "triggers" else v) for k, v in info.items()}}
    return _assemble(times, execs, funcs, mem, comps, triggers, horizon, capacity_fraction, memory_weight, name,
                     source)


def _rest_presence() -> dict[str, float]:
    """Each trigger's probability in an application outside Fig. 3(b)'s 13 combinations (see the constants)."""
    rest = 100.0 - sum(p for _, p in APP_TRIGGER_COMBOS)
    return {t: (APP_TRIGGER_PRESENCE[t] - sum(p for c, p in APP_TRIGGER_COMBOS if t in c)) / rest for t in LABEL_ORDER}


def _timer_only_share() -> float:
    """The share of applications whose only trigger is a timer (listed, and drawn among the rest)."""
    rest = 1.0 - sum(p for _, p in APP_TRIGGER_COMBOS) / 100.0
    left = _rest_presence()
    none = math.prod(1.0 - q for q in left.values())
    only_t = left["T"] * math.prod(1.0 - q for t, q in left.items() if t != "T")
    return dict(APP_TRIGGER_COMBOS)["T"] / 100.0 + rest * only_t / (1.0 - none)


def _draw_combo(rng: np.random.Generator) -> str:
    """An application's trigger combination (SitW Fig. 3(b); the unlisted rest from Fig. 3(a), see the constants)."""
    u = 100.0 * rng.random()
    for combo, p in APP_TRIGGER_COMBOS:
        if u < p:
            return combo
        u -= p
    left = _rest_presence()
    while True:  # an empty draw has probability ~0.02
        combo = "".join(t for t in LABEL_ORDER if rng.random() < left[t])
        if combo:
            return combo


def _draw_application(rng: np.random.Generator, combo: str, cap_rate: float, horizon: float) -> dict[str, Any]:
    """One application's arrivals: its timers (if any) merged with its other invocations (if any)."""
    u_timer, share = _U_TIMER, _TIMER_ONLY
    has_timer, has_other = "T" in combo, combo != "T"
    if has_other:
        rate = _quantile(APP_RATE_PER_DAY_QUANTILES, _non_timer_u(rng.random(), u_timer, share), log=True)
    else:
        rate = _quantile(APP_RATE_PER_DAY_QUANTILES, u_timer * rng.random(), log=True)
    rate = min(rate, cap_rate)
    parts, out = [], {"rate_per_day": rate, "timers": 0, "timer_period_min": 0.0, "iat_cv": 0.0,
                      "diurnal_amplitude": 0.0, "peak_hour": 0.0}
    timer_rate = 0.0
    if has_timer:
        timer_rate = rate if not has_other else min(
            _quantile(APP_RATE_PER_DAY_QUANTILES, u_timer * rng.random(), log=True), rate / 2.0)
        k = 1 if rng.random() < TIMER_SINGLE_SHARE else 2
        arr, period = _timer_arrivals(rng, timer_rate, k, horizon)
        parts.append(arr)
        out.update(timers=k, timer_period_min=period / 60.0)
    if has_other:
        cv = _quantile(CV_QUANTILES_NON_TIMER, rng.random())
        amp = 0.0 if cv < PERIODIC_CV else DIURNAL_AMPLITUDE_MAX * rng.random()
        peak = (DIURNAL_PEAK_HOUR + DIURNAL_PEAK_SPREAD_H * (2.0 * rng.random() - 1.0)) % 24.0
        parts.append(_modulated_arrivals(rng, (rate - timer_rate) / DAY_S, horizon, cv, amp, peak))
        out.update(iat_cv=cv, diurnal_amplitude=amp, peak_hour=peak)
    out["arrivals"] = np.sort(np.concatenate(parts))
    return out


def _quantile(table: tuple[tuple[float, float], ...], u: float, log: bool = False) -> float:
    """Inverse CDF from (probability, value) points, linear in value (or in log value)."""
    ps = np.array([p for p, _ in table])
    vs = np.array([v for _, v in table], float)
    if log:
        return float(np.exp(np.interp(u, ps, np.log(vs))))
    return float(np.interp(u, ps, vs))


def _cdf_at(table: tuple[tuple[float, float], ...], value: float) -> float:
    """The probability at which `_quantile(table, p, log=True)` reaches `value` (bisection; the inverse CDF is
    non-decreasing)."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if _quantile(table, mid, log=True) < value:
            lo = mid
        else:
            hi = mid
    return hi


def _non_timer_u(v: float, u_timer: float, share_timer: float) -> float:
    """A non-timer function's quantile in SitW Fig. 5(a) from a uniform v, such that timers (uniform on [0,
    u_timer]) and non-timers together are uniform on [0, 1]: density (1 - s / u_timer) / (1 - s) below u_timer,
    1 / (1 - s) above (s the timers' share)."""
    d_low = (1.0 - share_timer / u_timer) / (1.0 - share_timer)
    mass_low = d_low * u_timer
    if v < mass_low:
        return v / d_low
    return u_timer + (v - mass_low) * (1.0 - share_timer)


def _timer_arrivals(rng: np.random.Generator, rate_per_day: float, k: int, horizon: float
                    ) -> tuple[np.ndarray, float]:
    """k cron timers of one period (the cron interval nearest the rate per timer), each at its own phase."""
    target = 1440.0 * k / rate_per_day
    period = 60.0 * min(TIMER_PERIODS_MIN, key=lambda p: abs(math.log(p / target)))
    # cron fires on whole seconds of its period (ASSUMPTION: a uniform phase)
    arr = [np.floor(rng.uniform(0, period)) + period * np.arange(int(horizon / period) + 1) for _ in range(k)]
    arr = np.sort(np.concatenate(arr))
    return arr[arr < horizon], period


def _rate_profile(horizon: float, amp: float, peak_h: float, step: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
    """Times (a grid of `step` seconds over [0, horizon]) and the cumulative relative rate Lambda(t) = integral of
    weekly factor x (1 + amp cos(2 pi (t - peak) / day)), exact on each step (the factor is constant by day)."""
    n = int(math.ceil(horizon / step)) + 1
    t = np.minimum(np.arange(n) * step, horizon)
    weekend = 1.0 / (5.0 * WEEKDAY_OVER_WEEKEND + 2.0) * 7.0
    day = np.floor(t[:-1] / DAY_S).astype(int) % 7
    w = np.where(day >= 5, weekend, WEEKDAY_OVER_WEEKEND * weekend)
    omega = 2.0 * math.pi / DAY_S
    phase = peak_h * 3600.0
    a, b = t[:-1], t[1:]
    inc = (b - a) + amp * (np.sin(omega * (b - phase)) - np.sin(omega * (a - phase))) / omega
    return t, np.concatenate([[0.0], np.cumsum(w * inc)])


def _modulated_arrivals(rng: np.random.Generator, rate_per_s: float, horizon: float, cv: float, amp: float,
                        peak_h: float) -> np.ndarray:
    """A Weibull renewal process with the given mean rate and CV in operational time, mapped onto real time through
    the weekly and diurnal rate profile (a time change: the local inter-arrival CV stays `cv`). CV below
    PERIODIC_CV: evenly spaced in real time."""
    mean = 1.0 / rate_per_s
    if cv < PERIODIC_CV:
        gaps = np.full(int(horizon / mean) + 2, mean)
        arr = np.cumsum(gaps) - rng.uniform(0, 1) * gaps[0]
        return arr[(arr >= 0) & (arr < horizon)]
    t_grid, cum = _rate_profile(horizon, amp, peak_h)
    op_horizon = float(cum[-1])
    gaps = _weibull_gaps(rng, mean, cv, op_horizon)
    op = np.cumsum(gaps) - rng.uniform(0, 1) * gaps[0]  # a stationary start, approximately
    op = op[(op >= 0) & (op < op_horizon)]
    return np.interp(op, cum, t_grid)


def _arrivals_v0(rng: np.random.Generator, rate_per_s: float, horizon: float, timer: bool) -> np.ndarray:
    """Version 0's arrivals in [0, horizon): a jittered cron timer, or a stationary Weibull renewal process."""
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
        if cv < PERIODIC_CV:  # CV ~0: evenly spaced
            gaps = np.full(int(horizon / mean) + 2, mean)
        else:
            gaps = _weibull_gaps(rng, mean, cv, horizon)
        # The process started before 0 (stationary start, approximately): the first arrival is a uniform share of
        # a gap into the horizon.
        arr = np.cumsum(gaps) - rng.uniform(0, 1) * gaps[0]
    return arr[(arr >= 0) & (arr < horizon)]


def _weibull_gaps(rng: np.random.Generator, mean: float, cv: float, span: float) -> np.ndarray:
    """Weibull inter-arrival gaps of the given mean and CV whose sum covers `span` plus one mean gap."""
    k = _weibull_shape(cv)
    scale = mean / math.gamma(1 + 1 / k)
    n = int(span / mean * 1.2) + 16
    gaps = scale * rng.weibull(k, n)
    while gaps.sum() < span + mean:  # heavy tails: draw until the span is covered
        gaps = np.concatenate([gaps, scale * rng.weibull(k, n)])
    return gaps


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


_U_TIMER = _cdf_at(APP_RATE_PER_DAY_QUANTILES, TIMER_MAX_RATE_PER_DAY)  # Fig. 5(a)'s applications at <= 1440/day
_TIMER_ONLY = _timer_only_share()
_DEFAULTS_V0 = {k: p.default for k, p in inspect.signature(generate_v0).parameters.items()}
_DEFAULTS_V1 = {k: p.default for k, p in inspect.signature(generate_v1).parameters.items()}

# The family's generator: v0 is what every spec without a suffix names (one day, stationary arrivals); v1
# (`serverless-v1/...`, what new instances are) adds strict cron timers and the weekly and diurnal cycles, and
# its `standard` spans a week.
GENERATOR = Generator("serverless", presets=PRESETS, versions={0: generate_v0, 1: generate_v1},
                      default_preset="small")
generate = GENERATOR
