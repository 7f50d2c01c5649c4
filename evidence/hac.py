"""Long-run (HAC) variance of a serially dependent series, for standard errors of its mean.

The variance of the mean of n dependent observations is about LRV / n, where the long-run variance
LRV = gamma_0 + 2 sum_{k >= 1} gamma_k adds up the autocovariances. The Newey–West estimator truncates the sum
at ``lags`` and weights it with the Bartlett kernel 1 - k / (lags + 1), which keeps it non-negative.

References: W. K. Newey and K. D. West (1987), "A simple, positive semi-definite, heteroskedasticity and
autocorrelation consistent covariance matrix", Econometrica 55(3); W. K. Newey and K. D. West (1994),
"Automatic lag selection in covariance matrix estimation", Review of Economic Studies 61(4).
"""
from __future__ import annotations

import numpy as np

__all__ = ["default_lags", "long_run_variance"]


def default_lags(n: int) -> int:
    """The common rule-of-thumb truncation lag floor(4 (n / 100)^(2/9)) (Newey & West 1994), at most n - 1.

    >>> default_lags(100), default_lags(500), default_lags(10_000)
    (4, 5, 11)
    """
    return int(min(np.floor(4.0 * (n / 100.0) ** (2.0 / 9.0)), max(n - 1, 0)))


def long_run_variance(x: np.ndarray, lags: int, kernel: str = "bartlett") -> float:
    """gamma_0 + 2 sum_{k=1}^{lags} w_k gamma_k of the series ``x`` (no NaN), with the autocovariances
    gamma_k = sum_t (x_t - mean)(x_{t-k} - mean) / n and weights w_k = 1 - k / (lags + 1) (``"bartlett"``,
    Newey–West: never negative) or w_k = 1 (``"uniform"``, the truncated sum of Diebold & Mariano 1995: can be
    negative). ``lags=0`` gives the i.i.d. variance gamma_0.

    >>> long_run_variance(np.array([1.0, -1.0, 1.0, -1.0]), lags=1)   # 1 + 2 * (1/2) * (-3/4)
    0.25
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    if not 0 <= lags < n:
        raise ValueError(f"lags must be in [0, n - 1] = [0, {n - 1}]; got {lags}")
    if kernel not in ("bartlett", "uniform"):
        raise ValueError(f"kernel must be 'bartlett' or 'uniform'; got {kernel!r}")
    x = x - x.mean()
    total = float(x @ x) / n
    for k in range(1, lags + 1):
        weight = 1.0 - k / (lags + 1.0) if kernel == "bartlett" else 1.0
        total += 2.0 * weight * float(x[k:] @ x[:-k]) / n
    return total
