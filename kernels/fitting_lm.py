"""A small Levenberg-Marquardt least-squares solver (numpy only; scipy is not a dependency)."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np


def levenberg_marquardt(residuals: Callable[[np.ndarray], np.ndarray], x0, *, max_iter: int = 200,
                        tol: float = 1e-10, xtol: float | None = None) -> np.ndarray:
    """Minimise sum(residuals(x)**2) from x0 with a forward-difference Jacobian.

    The models here have at most a handful of parameters, so a dense Jacobian is cheap. It stops when a step
    improves the cost by less than `tol` (relative); with `xtol` it also needs the step to move every parameter
    by less than xtol * (1 + |x|), which pins a solution in a flat valley down to that precision.
    """
    x = np.asarray(x0, dtype=float).copy()
    r = residuals(x)
    cost = float(r @ r)
    lam = 1e-3
    for _ in range(max_iter):
        jac = np.empty((r.size, x.size))
        for j in range(x.size):
            step = 1e-6 * max(1.0, abs(x[j]))
            xj = x.copy()
            xj[j] += step
            jac[:, j] = (residuals(xj) - r) / step
        jtj = jac.T @ jac
        grad = jac.T @ r
        improved = False
        while lam < 1e10:
            try:
                delta = np.linalg.solve(jtj + lam * np.diag(np.diag(jtj) + 1e-12), -grad)
            except np.linalg.LinAlgError:
                lam *= 10
                continue
            r_new = residuals(x + delta)
            cost_new = float(r_new @ r_new) if np.all(np.isfinite(r_new)) else np.inf
            if cost_new < cost:
                improved = cost - cost_new > tol * max(cost, 1e-30)
                if xtol is not None:
                    improved = improved or bool(np.any(np.abs(delta) > xtol * (1.0 + np.abs(x))))
                x, r, cost = x + delta, r_new, cost_new
                lam = max(lam / 10, 1e-12)
                break
            lam *= 10
        if not improved:
            break
    return x
