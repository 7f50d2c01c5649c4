"""Calibration of predictive distributions given as a mean and a standard deviation per point.

Every function here describes the predictive distribution of each target by its ``mean`` and its
standard deviation ``std``: a Gaussian when ``df`` is None, otherwise a Student-t with ``df > 2``
degrees of freedom whose scale is set so that its standard deviation equals ``std``
(scale = std * sqrt((df - 2) / df)). This is how :class:`btdensity.models.bnn.BayesianNN` reports its
posterior predictive (moment matched), so its ``Prediction`` feeds these functions directly.

* :func:`interval_coverage` -- fraction of targets inside the central intervals at several levels;
* :func:`crps` -- the continuous ranked probability score (closed forms, lower is better);
* :func:`calibration_error` -- regression calibration error of Kuleshov et al. (2018): mean squared
  gap between nominal quantile levels and the observed frequency of the PIT below them;
* :func:`predictive_nll` -- mean negative log-likelihood;
* :func:`fit_variance_scale` -- post-hoc recalibration: the factor ``c`` on the predictive variance
  (std -> std * sqrt(c)) that minimises the NLL of held-out data, or that makes its central intervals
  cover held-out data as close to their nominal levels as one factor can (``criterion="coverage"``);
* :func:`fit_shape_and_scale` -- the same coverage criterion over the Student-t shape too;
* :func:`moved_targets` -- the return targets those fits should read: the bars that moved.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence

import numpy as np
from scipy import optimize, special

__all__ = [
    "COVERAGE_LEVELS",
    "calibration_error",
    "central_quantile",
    "crps",
    "fit_shape_and_scale",
    "fit_variance_scale",
    "interval_coverage",
    "moved_targets",
    "predictive_nll",
]

_LOG_C_BOUND = 12.0  # the variance scale is searched in [exp(-12), exp(12)]
#: central levels whose coverage the ``"coverage"`` criterion matches (0.05, 0.10, ..., 0.95)
COVERAGE_LEVELS = tuple(round(0.05 * k, 2) for k in range(1, 20))
#: the Student-t shapes :func:`fit_shape_and_scale` chooses from (100: as good as normal at these levels)
SHAPE_GRID = (2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 30.0, 100.0)
_COVERAGE_GRID = np.linspace(-_LOG_C_BOUND, _LOG_C_BOUND, 4801)   # log c in steps of 0.005


def _check_df(df: float | None) -> float | None:
    if df is None:
        return None
    if not np.isfinite(df) or df <= 2:
        raise ValueError(f"df must be a finite number > 2 (the Student-t then has a finite variance); got {df}")
    return float(df)


def _standardise(y: Any, mean: Any, std: Any, df: float | None) -> tuple[np.ndarray, float | None]:
    """Check the arrays; return ``(y - mean) / scale`` of the standard Gaussian or Student-t, and ``df``."""
    df = _check_df(df)
    arrays = []
    for name, a in (("y", y), ("mean", mean), ("std", std)):
        a = np.asarray(a, dtype=np.float64)
        if a.size == 0:
            raise ValueError(f"{name} is empty")
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        arrays.append(a)
    y, mean, std = arrays
    if not y.shape == mean.shape == std.shape:
        raise ValueError(f"y, mean and std must have the same shape; got {y.shape}, {mean.shape}, {std.shape}")
    if (std <= 0).any():
        raise ValueError(f"std must be positive; found {(std <= 0).sum()} value(s) <= 0")
    scale = std if df is None else std * np.sqrt((df - 2.0) / df)
    return (y - mean) / scale, df


def _cdf(z: np.ndarray, df: float | None) -> np.ndarray:
    from scipy import stats   # imported when used: it costs half a second
    return stats.norm.cdf(z) if df is None else stats.t.cdf(z, df)


@lru_cache(maxsize=256)
def central_quantile(level: float, df: float | None = None) -> float:
    """Half-width of the central ``level`` interval in units of the predictive standard deviation.

    >>> round(central_quantile(0.95), 3)
    1.96
    """
    from scipy import stats   # imported when used: it costs half a second
    df = _check_df(df)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1); got {level}")
    p = 0.5 * (1.0 + level)
    if df is None:
        return float(stats.norm.ppf(p))
    return float(stats.t.ppf(p, df) * np.sqrt((df - 2.0) / df))


def interval_coverage(y: Any, mean: Any, std: Any, levels: Sequence[float] = (0.5, 0.8, 0.95),
                      df: float | None = None) -> dict[float, float]:
    """Observed fraction of ``y`` inside the central interval of each nominal level.

    >>> rng = np.random.default_rng(0); y = rng.normal(size=20000)
    >>> abs(interval_coverage(y, np.zeros_like(y), np.ones_like(y), levels=[0.8])[0.8] - 0.8) < 0.01
    True
    """
    z, df = _standardise(y, mean, std, df)
    sd_z = 1.0 if df is None else np.sqrt(df / (df - 2.0))  # std of the standardised variable
    return {float(lv): float(np.mean(np.abs(z) <= central_quantile(float(lv), df) * sd_z)) for lv in levels}


def crps(y: Any, mean: Any, std: Any, df: float | None = None) -> float:
    """Mean continuous ranked probability score (in the units of ``y``; lower is better).

    Closed forms: Gaussian (Gneiting & Raftery 2007) and Student-t (Jordan, Krueger & Lerch 2019).

    >>> round(crps([0.0], [0.0], [1.0]), 4)  # sigma * (2 phi(0) - 1/sqrt(pi))
    0.2337
    """
    from scipy import stats   # imported when used: it costs half a second
    z, df = _standardise(y, mean, std, df)
    scale = np.asarray(std, dtype=np.float64)
    if df is None:
        per_unit = z * (2.0 * stats.norm.cdf(z) - 1.0) + 2.0 * stats.norm.pdf(z) - 1.0 / np.sqrt(np.pi)
    else:
        scale = scale * np.sqrt((df - 2.0) / df)
        const = (2.0 * np.sqrt(df) * special.beta(0.5, df - 0.5)
                 / ((df - 1.0) * special.beta(0.5, 0.5 * df) ** 2))
        per_unit = (z * (2.0 * stats.t.cdf(z, df) - 1.0)
                    + 2.0 * stats.t.pdf(z, df) * (df + z * z) / (df - 1.0) - const)
    return float(np.mean(scale * per_unit))


def calibration_error(y: Any, mean: Any, std: Any, df: float | None = None, n_levels: int = 19) -> float:
    """Regression calibration error: mean over levels p of (p - observed frequency of PIT <= p)^2.

    The levels are ``n_levels`` evenly spaced points in (0, 1) (0.05, 0.10, ..., 0.95 by default).
    A calibrated forecast scores near 0; the worst possible score is about 1/3.
    """
    if n_levels < 1:
        raise ValueError(f"n_levels must be >= 1; got {n_levels}")
    z, df = _standardise(y, mean, std, df)
    pit = _cdf(z, df).ravel()
    levels = np.arange(1, n_levels + 1) / (n_levels + 1)
    observed = np.mean(pit[None, :] <= levels[:, None], axis=1)
    return float(np.mean((levels - observed) ** 2))


def predictive_nll(y: Any, mean: Any, std: Any, df: float | None = None) -> float:
    """Mean negative log-likelihood of ``y`` under the predictive distributions (nats per value)."""
    from scipy import stats   # imported when used: it costs half a second
    z, df = _standardise(y, mean, std, df)
    scale = np.asarray(std, dtype=np.float64)
    if df is None:
        return float(np.mean(-stats.norm.logpdf(z) + np.log(scale)))
    scale = scale * np.sqrt((df - 2.0) / df)
    return float(np.mean(-stats.t.logpdf(z, df) + np.log(scale)))


def fit_variance_scale(y: Any, mean: Any, std: Any, df: float | None = None, criterion: str = "nll",
                       moved: Any = None) -> float:
    """Variance factor ``c`` for the predictive ``(mean, std * sqrt(c))`` of held-out ``y``.

    ``criterion="nll"``: ``c`` minimises :func:`predictive_nll`; for a Gaussian the optimum is the mean
    squared standardised residual. ``criterion="coverage"``: ``c`` minimises the squared gaps between the
    observed and nominal coverage of the central intervals at ``COVERAGE_LEVELS`` (searched on a grid of
    log c in steps of 0.005; the middle of the best grid points). The two agree when the forecast's shape
    is right; when it is not (residuals heavier- or lighter-tailed than the forecast family, as a model's
    misfit of the mean makes them), the NLL factor matches the variance and leaves the inner intervals
    too wide and the outer too narrow, the coverage factor balances them.

    Fit it on a held-out (validation) split, then report ``std * sqrt(c)``. ``moved``: the targets to fit on (a
    boolean array shaped like ``y``; see :func:`moved_targets`), all of them when None.

    >>> round(fit_variance_scale([2.0, -2.0], [0.0, 0.0], [1.0, 1.0]), 4)
    4.0
    """
    z, df = _standardise(y, mean, std, df)  # fail early, before the search, on bad input
    keep = _kept(moved, z.shape)
    if criterion == "coverage":
        return _coverage_fit(np.abs(z[keep]), df)[0]
    if criterion != "nll":
        raise ValueError(f"criterion must be 'nll' or 'coverage'; got {criterion!r}")
    y, mean, std = (np.asarray(a, dtype=np.float64)[keep] for a in (y, mean, std))   # one shape: checked above
    res = optimize.minimize_scalar(lambda log_c: predictive_nll(y, mean, std * np.exp(0.5 * log_c), df),
                                   bounds=(-_LOG_C_BOUND, _LOG_C_BOUND), method="bounded",
                                   options={"xatol": 1e-8})
    return float(np.exp(res.x))


def fit_shape_and_scale(y: Any, mean: Any, std: Any, dfs: Sequence[float] = SHAPE_GRID,
                        moved: Any = None) -> tuple[float, float]:
    """``(df, c)``: the Student-t shape among ``dfs`` and the variance factor whose predictive
    ``(mean, std * sqrt(c))`` covers held-out ``y`` closest to the nominal levels (``criterion="coverage"`` of
    :func:`fit_variance_scale`, searched over both). One factor cannot make a predictive of the wrong shape cover
    at every level (a t3 on normal residuals covers its 90 % interval 95 % of the time when its 50 % interval is
    right); a shape and a scale can. ``moved``: the targets to fit on, as in :func:`fit_variance_scale`.

    >>> rng = np.random.default_rng(0)
    >>> y = rng.standard_t(3, 20000) * np.sqrt(3.0)          # standard deviation 3, tails of a t3
    >>> df, c = fit_shape_and_scale(y, np.zeros_like(y), np.ones_like(y))
    >>> df, round(float(np.sqrt(c)), 1)
    (3.0, 3.0)
    """
    z, _ = _standardise(y, mean, std, None)
    if not dfs or any(_check_df(d) is None for d in dfs):
        raise ValueError(f"dfs must be Student-t degrees of freedom (> 2); got {dfs!r}")
    abs_z = np.abs(z[_kept(moved, z.shape)])
    fits = [(*_coverage_fit(abs_z * np.sqrt(d / (d - 2.0)), float(d)), float(d)) for d in dfs]
    c, _, df = min(fits, key=lambda fit: fit[1])
    return df, c


def moved_targets(y: Any) -> np.ndarray:
    """Where a return target moved (is not exactly 0), for the ``moved`` argument of the fits above.

    A flat bar (an illiquid market's minute with no trade) returns exactly 0: inside every central interval, a point
    mass no continuous law has. Fitted to a held-out stretch with such bars, a law shrinks until the bars that move
    are under-covered. Fitted on the targets that moved, its intervals cover those at their levels, and every bar at
    least at the level. On BTC/USDT hourly with 9 % of its bars made flat in runs of 4-12, the HAR forecast's 90 %
    interval covered 87.3 % of all bars fitted on every target, 88.8 % fitted on the moved ones (the moving bars right
    after a flat one: 84 %, 87 %); what is left is the volatility features' (a flat stretch reads as calm)."""
    return np.asarray(y, dtype=np.float64) != 0.0


def _kept(moved: Any, shape: tuple[int, ...]) -> np.ndarray:
    """The boolean mask of the elements a fit reads: ``moved``, or every element when None or when nothing moved."""
    if moved is None:
        return np.ones(shape, dtype=bool)
    moved = np.asarray(moved)
    if moved.dtype != bool or moved.shape != shape:
        raise ValueError(f"moved must be a boolean array of the targets' shape {shape}; got {moved.dtype} {moved.shape}")
    return moved if moved.any() else np.ones(shape, dtype=bool)


def _coverage_fit(abs_z: np.ndarray, df: float | None) -> tuple[float, float]:
    """``(c, loss)``: the ``"coverage"`` criterion of :func:`fit_variance_scale` on standardised absolute residuals,
    and its sum of squared coverage gaps at that factor."""
    sd_z = 1.0 if df is None else np.sqrt(df / (df - 2.0))
    levels = np.array(COVERAGE_LEVELS)
    q = np.array([central_quantile(float(lv), df) * sd_z for lv in levels])
    ordered = np.sort(abs_z)
    # coverage of level j at factor c: share of |z| <= q_j * sqrt(c)
    inside = np.searchsorted(ordered, np.exp(0.5 * _COVERAGE_GRID)[:, None] * q[None, :], side="right")
    loss = np.sum((inside / ordered.size - levels[None, :]) ** 2, axis=1)
    best = np.flatnonzero(loss == loss.min())
    return float(np.exp(_COVERAGE_GRID[best[best.size // 2]])), float(loss.min())

