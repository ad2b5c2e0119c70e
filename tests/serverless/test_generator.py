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


def test_generated_arrivals_have_the_drawn_burstiness():
    rng = np.random.default_rng(3)
    arr = G._arrivals(rng, 1 / 30.0, 86400.0 * 20, timer=False)
    gaps = np.diff(arr)
    assert gaps.mean() == pytest.approx(30.0, rel=0.15)
    timer = G._arrivals(np.random.default_rng(4), 1 / 3600.0, 86400.0, timer=True)
    assert len(timer) in (23, 24, 25)


def test_standard_preset_calibration():
    inst = generate(preset="standard", seed=0)
    assert inst.num_functions == 200 and 5e4 < inst.num_invocations < 3e5
    share = np.bincount(inst.trigger, minlength=len(TRIGGERS)) / inst.num_functions
    assert share[TRIGGERS.index("http")] == pytest.approx(0.55, abs=0.08)  # SitW Fig. 2
    assert share[TRIGGERS.index("timer")] == pytest.approx(0.156, abs=0.06)
    assert set(inst.mem_mb.tolist()) <= set(G.POOL_MB)
    assert inst.capacity_mb >= max(peak_busy_memory(inst), 0.5 * inst.mem_mb.sum())
    assert inst.memory_weight == pytest.approx(3.24 / 150)
    counts = np.bincount(inst.inv_func, minlength=inst.num_functions)
    assert counts.min() >= 2 and counts.max() <= 8640 * 1.1  # redraw below 2; rate cap 8640/day (Weibull noise)


def test_presets_parameters_and_named_errors():
    a, b = generate(preset="tiny", seed=5), generate(preset="tiny", seed=5)
    assert a.digest() == b.digest() and generate(preset="tiny", seed=6).digest() != a.digest()
    custom = generate(preset="tiny", seed=0, capacity_fraction=0.3, region="r2", memory_weight=0.05)
    assert custom.name == "serverless/tiny?seed=0&capacity_fraction=0.3&memory_weight=0.05&region=%22r2%22"
    assert sysgym.instance(custom.name).digest() == custom.digest()
    assert generate(num_functions=3, horizon_min=30, seed=1).name == "serverless/custom?seed=1&horizon_min=30&" \
                                                                   "num_functions=3"
    with pytest.raises(UnknownNameError, match="region"):
        generate(preset="tiny", region="r9")
    with pytest.raises(InvalidInstanceError, match="capacity_fraction"):
        generate(preset="tiny", capacity_fraction=0)
    with pytest.raises(InvalidInstanceError, match="num_functions"):
        generate(horizon_min=10)
