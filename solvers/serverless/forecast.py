"""The time-series forecast of the hybrid histogram policy: the next idle time of a function whose idle times
mostly fall beyond the histogram's range.

Shahrad et al. (ATC'20, Sec. 4.2) fit an ARIMA model to such a function's idle times and pre-warm around its
one-step-ahead forecast. statsmodels is not a dependency of sysgym, so this module fits the autoregressive part
itself: AR(p) with an intercept, p = 0 .. `max_order`, by conditional least squares on the idle-time history, the
order chosen by the corrected Akaike criterion (AICc) over a common window of residuals (as auto-ARIMA chooses an
order). Differencing (the "I") and moving-average terms are left out: a function's idle times are stationary in
level (renewal and cron arrivals), and MA terms need an iterative likelihood fit for what a low-order AR
approximates. With fewer than four idle times no order can be compared and the forecast is their mean (ARIMA(0,0,0));
a forecast is clipped to the range of the observed idle times (a one-step-ahead forecast of a stationary series
outside it is an artefact of a fit on few points).
"""
from __future__ import annotations

import math

import numpy as np

MAX_ORDER = 2  # auto.arima's stepwise search starts from orders <= 2 (Hyndman and Khandakar, 2008)


def ar_forecast(history: list[float] | np.ndarray, max_order: int = MAX_ORDER) -> float:
    """One-step-ahead forecast of the next value of `history` (non-empty) by the AICc-best AR(p), p <= max_order."""
    y = np.asarray(history, float)
    n = len(y)
    if n == 0:
        raise ValueError("ar_forecast needs at least one value")
    lo, hi = float(y.min()), float(y.max())
    if n < 4 or hi - lo <= 1e-9 * max(1.0, hi):
        return float(y.mean()) if n < 4 else float(y[-1])
    top = int(min(max_order, (n - 4) // 2))  # every candidate keeps n - top >= p + 4 residuals (AICc defined)
    m = n - top  # the common residual window: t = top .. n-1
    best, best_aicc = float(y.mean()), math.inf
    for p in range(top + 1):
        cols = [np.ones(m)] + [y[top - i:n - i] for i in range(1, p + 1)]
        x = np.stack(cols, axis=1)
        target = y[top:]
        beta, *_ = np.linalg.lstsq(x, target, rcond=None)
        rss = float(((target - x @ beta) ** 2).sum())
        sigma2 = max(rss / m, 1e-12 * max(1.0, hi * hi))
        k = p + 2  # intercept, p coefficients, the residual variance
        aicc = m * math.log(sigma2) + 2 * k + 2 * k * (k + 1) / (m - k - 1)
        if aicc < best_aicc - 1e-12:
            nxt = np.concatenate([[1.0], y[::-1][:p]])
            best, best_aicc = float(nxt @ beta), aicc
    return min(max(best, lo), hi)
