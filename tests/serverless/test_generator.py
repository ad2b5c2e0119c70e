"""The generator reproduces the published statistics it is calibrated on (generator.py names each source)."""
import math

import numpy as np
import pytest

import sysgym
from sysgym.envs.serverless import TRIGGERS, generate
from sysgym.envs.serverless import generator as G
from sysgym.envs.serverless.instance import peak_busy_memory
from sysgym.errors import InvalidInstanceError, UnknownNameError


def _draws(table, n=40000, log=True):
    u = np.random.default_rng(0).random(n)
    return np.array([G._quantile(table, x, log=log) for x in u])


def test_rates_match_serverless_in_the_wild_and_huawei():
    rates = _draws(G.RATE_PER_DAY_QUANTILES)
    # SitW Fig. 5(a) functions: ~64 % invoked at most hourly, ~92 % at most once a minute; 8 orders of magnitude.
    assert np.mean(rates <= 24) == pytest.approx(0.64, abs=0.02)
    assert np.mean(rates <= 1440) == pytest.approx(0.92, abs=0.02)
    assert math.log10(rates.max() / rates.min()) > 7
    # Huawei (Joosen et al. Sec. 3.1): 1 % (Region 4) to 20 % (Region 1) of functions average >= 1 request/minute.
    assert 0.01 <= np.mean(rates >= 1440) <= 0.20


def test_execution_memory_and_cold_start_fits():
    ex = _draws(G.EXEC_MEAN_S_QUANTILES)
    assert np.median(ex) == pytest.approx(0.935, rel=0.05)  # SitW Fig. 7: half of the functions run < 1 s
    mem = _draws(G.MEM_NEED_MB_QUANTILES)
    assert np.median(mem) == pytest.approx(141, rel=0.05)  # SitW Fig. 8
    pools = np.array([next(p for p in G.POOL_MB if p >= m) for m in mem])
    assert np.mean(pools <= 256) > 0.6  # Joosen et al. Sec. 4.3: small pools > 60 % of cold starts
    rng = np.random.default_rng(1)
    cold = np.exp(math.log(G.COLD_MEAN_S) - G.COLD_SIGMA ** 2 / 2 + G.COLD_SIGMA * rng.standard_normal(400000))
    assert cold.mean() == pytest.approx(3.24, rel=0.05)  # Joosen et al. Fig. 10(b)
    assert cold.std() == pytest.approx(7.10, rel=0.15)  # heavy tail: a looser check
    assert 0.1 <= np.median(cold) <= 2.0  # per-region medians, Fig. 10(a)
    for cv in (0.3, 1.0, 1.7, 4.8, 10.0):
        k = G._weibull_shape(cv)
        g1, g2 = math.lgamma(1 + 1 / k), math.lgamma(1 + 2 / k)
        assert math.sqrt(math.exp(g2 - 2 * g1) - 1) == pytest.approx(cv, rel=1e-6)


def test_v0_arrivals_have_the_drawn_burstiness():
    rng = np.random.default_rng(3)
    arr = G._arrivals_v0(rng, 1 / 30.0, 86400.0 * 20, timer=False)
    gaps = np.diff(arr)
    assert gaps.mean() == pytest.approx(30.0, rel=0.15)
    timer = G._arrivals_v0(np.random.default_rng(4), 1 / 3600.0, 86400.0, timer=True)
    assert len(timer) in (23, 24, 25)


def test_application_rates_and_triggers_match_serverless_in_the_wild():
    """Version 1's units are applications: Fig. 5(a)'s Applications curve (the paper: 45 % of applications at most
    hourly, 81 % at most once a minute) and Fig. 3's trigger mix, with timer-only applications at most once a minute
    and the other applications reweighted so that all together keep Fig. 5(a)."""
    rates = _draws(G.APP_RATE_PER_DAY_QUANTILES)
    assert np.mean(rates <= 24) == pytest.approx(0.45, abs=0.01)
    assert np.mean(rates <= 1440) == pytest.approx(0.815, abs=0.01)
    rng = np.random.default_rng(0)
    combos = [G._draw_combo(rng) for _ in range(20000)]
    for t, share in G.APP_TRIGGER_PRESENCE.items():  # Fig. 3(a)
        assert np.mean([t in c for c in combos]) == pytest.approx(share / 100, abs=0.01), t
    assert np.mean([c == "H" for c in combos]) == pytest.approx(0.4327, abs=0.01)  # Fig. 3(b)
    only_t = np.mean([c == "T" for c in combos])
    assert only_t == pytest.approx(G._TIMER_ONLY, abs=0.006)
    mixed = [G._quantile(G.APP_RATE_PER_DAY_QUANTILES, G._U_TIMER * rng.random() if c == "T" else
                         G._non_timer_u(rng.random(), G._U_TIMER, G._TIMER_ONLY), log=True) for c in combos]
    assert np.mean(np.array(mixed) <= 24) == pytest.approx(0.45, abs=0.015)
    assert np.mean(np.array(mixed) <= 1440) == pytest.approx(0.815, abs=0.015)
    timer_only = [r for r, c in zip(mixed, combos) if c == "T"]
    assert max(timer_only) <= G.TIMER_MAX_RATE_PER_DAY * (1 + 1e-9)


def test_timers_fire_strictly_on_schedule():
    """One cron timer: every gap is the period (CV 0); two of one period: gaps d and P - d, a CV uniform on [0, 1)
    (SitW Fig. 6 "Only Timers": about half at CV 0, ~90 % below 0.8)."""
    arr, period = G._timer_arrivals(np.random.default_rng(1), 24.0, 1, 86400.0 * 3)
    assert period == 3600.0 and np.all(np.diff(arr) == 3600.0) and np.all(arr == np.floor(arr))
    cvs = []
    rng = np.random.default_rng(2)
    for _ in range(2000):
        k = 1 if rng.random() < G.TIMER_SINGLE_SHARE else 2
        arr, _ = G._timer_arrivals(rng, 96.0, k, 86400.0)
        gaps = np.diff(arr)
        cvs.append(gaps.std() / gaps.mean())
    cvs = np.array(cvs)
    assert np.mean(cvs < 1e-9) == pytest.approx(0.5, abs=0.05)
    assert np.mean(cvs <= 0.8) == pytest.approx(0.9, abs=0.04)


def test_weekly_and_diurnal_cycles():
    """The rate profile integrates to the mean over a week, weekdays are 1.3 x weekends (Joosen et al.), and an
    application's arrivals follow its daily cycle; the aggregate amplitude E[a] sin(w) / w is SitW Fig. 4's ~0.2."""
    t, cum = G._rate_profile(7 * 86400.0, 0.5, 14.0)
    assert cum[-1] == pytest.approx(7 * 86400.0, rel=1e-9)
    day = 86400.0
    assert (np.interp(day, t, cum) / (np.interp(6 * day, t, cum) - np.interp(5 * day, t, cum))
            == pytest.approx(1.3, rel=1e-6))
    arr = G._modulated_arrivals(np.random.default_rng(5), 2000 / day, 7 * day, 1.0, 0.8, 14.0)
    assert len(arr) / 7 == pytest.approx(2000, rel=0.05)
    hours = np.bincount(((arr % day) // 3600).astype(int), minlength=24) / len(arr) * 24
    assert hours[14] == pytest.approx(1.8, rel=0.1) and hours[2] == pytest.approx(0.2, abs=0.1)
    w = G.DIURNAL_PEAK_SPREAD_H / 24 * 2 * math.pi
    assert 0.5 * G.DIURNAL_AMPLITUDE_MAX * math.sin(w) / w == pytest.approx(0.2, abs=0.02)
    periodic = G._modulated_arrivals(np.random.default_rng(6), 100 / day, day, 0.0, 0.0, 14.0)
    assert np.allclose(np.diff(periodic), day / 100)


def test_v0_stays_reproducible_under_its_old_specs():
    """The pins of version 0 from before version 1 existed (its specs carry no suffix)."""
    old = {"serverless/small?seed=0": "6856e1db98c34873", "serverless/small?seed=1": "fd8bf95d86e2ace4",
           "serverless/standard?seed=0": "544d3aba3f21f07a", "serverless/standard?seed=1": "164fe30c2a8ef861",
           "serverless/tiny?seed=0": "17be6aaf226e78f1", "serverless/tiny?seed=1": "f7419e6e350aaf83"}
    for spec, digest in old.items():
        assert sysgym.instance(spec).digest() == digest
    assert generate(preset="tiny", seed=0, version=0).name == "serverless/tiny?seed=0"
    assert generate(preset="standard", seed=0, version=0).horizon_s == 86400.0


def test_standard_preset_calibration():
    inst = generate(preset="standard", seed=0)
    assert inst.name == "serverless-v1/standard?seed=0" and inst.horizon_s == 7 * 86400.0
    assert inst.num_functions == 200 and 5e5 < inst.num_invocations < 4e6
    combos = inst.source["triggers"]
    assert np.mean(["T" in c for c in combos]) == pytest.approx(0.2915, abs=0.08)  # SitW Fig. 3(a)
    assert np.mean(["H" in c for c in combos]) == pytest.approx(0.6407, abs=0.08)
    assert TRIGGERS[inst.trigger[combos.index("T")]] == "timer"
    assert set(inst.mem_mb.tolist()) <= set(G.POOL_MB)
    assert inst.capacity_mb >= max(peak_busy_memory(inst), 0.5 * inst.mem_mb.sum())
    assert inst.memory_weight == pytest.approx(3.24 / 150)
    counts = np.bincount(inst.inv_func, minlength=inst.num_functions)
    assert counts.min() >= 2 and counts.max() <= 7 * 8640 * 1.3  # redraw below 2; mean rate cap 8640/day
    # timer-only applications carry a few % of the (capped) invocations: SitW Fig. 2 has timers at 2.0 %
    only_t = np.array([c == "T" for c in combos])
    assert 0.002 < counts[only_t].sum() / counts.sum() < 0.06
    f = combos.index("T")
    gaps = np.diff(inst.inv_time[inst.inv_func == f])
    period = inst.source["timer_period_min"][f] * 60
    if inst.source["timers"][f] == 1:
        assert np.allclose(gaps, period, atol=1e-5)


def test_presets_parameters_and_named_errors():
    a, b = generate(preset="tiny", seed=5), generate(preset="tiny", seed=5)
    assert a.digest() == b.digest() and generate(preset="tiny", seed=6).digest() != a.digest()
    custom = generate(preset="tiny", seed=0, capacity_fraction=0.3, region="r2", memory_weight=0.05)
    assert custom.name == "serverless-v1/tiny?seed=0&capacity_fraction=0.3&memory_weight=0.05&region=%22r2%22"
    assert sysgym.instance(custom.name).digest() == custom.digest()
    assert generate(num_functions=3, horizon_min=30, seed=1).name == "serverless-v1/custom?seed=1&horizon_min=30&" \
                                                                   "num_functions=3"
    old = generate(preset="tiny", seed=0, version=0, capacity_fraction=0.3)
    assert old.name == "serverless/tiny?seed=0&capacity_fraction=0.3"
    assert sysgym.instance(old.name).digest() == old.digest()
    with pytest.raises(UnknownNameError, match="region"):
        generate(preset="tiny", region="r9")
    with pytest.raises(InvalidInstanceError, match="capacity_fraction"):
        generate(preset="tiny", capacity_fraction=0)
    with pytest.raises(InvalidInstanceError, match="num_functions"):
        generate(horizon_min=10)
