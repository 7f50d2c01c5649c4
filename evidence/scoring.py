"""Proper scoring rules for density, quantile and interval forecasts, one row a bar (NaN = no forecast).

* :func:`log_likelihood_per_dim` -- mean and median log density per dimension (higher is better);
* :func:`pinball_loss` -- quantile loss (lower is better);
* :func:`interval_coverage` -- share of outcomes inside forecast intervals (compare with the nominal level);
* :func:`crps_gaussian`, :func:`crps_student_t` -- continuous ranked probability score in closed form (lower is
  better, in the outcome's units);
* :func:`nll_gaussian`, :func:`nll_student_t` -- negative log-likelihood (nats; lower is better);
* :func:`pit_values` -- probability integral transform, uniform on [0, 1] for a calibrated forecast.

The losses return the mean over the complete rows, or with ``per_bar=True`` one value a bar (NaN where a row
was dropped), the form the comparisons in :mod:`btdensity.evidence.comparison` take.

References: T. Gneiting and A. E. Raftery (2007), "Strictly proper scoring rules, prediction, and estimation",
JASA 102(477); A. Jordan, F. Krüger and S. Lerch (2019), "Evaluating probabilistic forecasts with
scoringRules", Journal of Statistical Software 90(12); R. Koenker and G. Bassett (1978), "Regression quantiles".
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np
from scipy import special, stats

from .rows import complete_rows, mean_or_per_bar

__all__ = ["LogLikelihood", "crps_gaussian", "crps_student_t", "interval_coverage", "log_likelihood_per_dim",
           "nll_gaussian", "nll_student_t", "pinball_loss", "pit_values"]


class LogLikelihood(NamedTuple):
    """Log-likelihood per dimension (nats): mean and median over the ``n`` scored rows."""
    mean: float
    median: float
    n: int


def _standardised(y: Any, mu: Any, scale: Any, scale_name: str, df: Any = None,
                  min_df: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Complete rows of a location-scale forecast: ``(keep, z = (y - mu) / scale, scale, df)``, the scale
    checked positive and ``df`` (NaN for a Gaussian, which has none) finite and above ``min_df``."""
    inputs = {"y": y, "mu": mu, scale_name: scale, **({} if df is None else {"df": df})}
    keep, arrays = complete_rows(**inputs)
    y, mu, scale = arrays[:3]
    if (scale <= 0).any() or np.isinf(scale).any():
        raise ValueError(f"{scale_name} must be positive and finite; "
                         f"found {int(((scale <= 0) | np.isinf(scale)).sum())} value(s) that are not")
    df = arrays[3] if df is not None else np.full_like(scale, np.nan)
    if (df <= min_df).any() or np.isinf(df).any():
        raise ValueError(f"df must be finite and > {min_df:g}; got min {df.min()}")
    return keep, (y - mu) / scale, scale, df


def log_likelihood_per_dim(logp: Any, n_dims: int) -> LogLikelihood:
    """Mean and median of ``logp / n_dims``: the log density of each outcome (nats, one value a bar, for the
    joint density of ``n_dims`` features) per dimension, so that models of different dimension compare.

    The mean is the log score, the strictly proper local scoring rule (Gneiting & Raftery 2007, sec. 4.1); the
    median shows whether a few very unlikely bars drive it. A ``-inf`` log density (an outcome the model calls
    impossible) stays and makes the mean ``-inf``. Needs 1 row.

    >>> log_likelihood_per_dim([-2.0, -4.0, -9.0], n_dims=2)
    LogLikelihood(mean=-2.5, median=-2.0, n=3)
    """
    if isinstance(n_dims, bool) or not isinstance(n_dims, (int, np.integer)) or n_dims < 1:
        raise ValueError(f"n_dims must be an integer >= 1; got {n_dims!r}")
    _, (logp,) = complete_rows(logp=logp)
    if logp.ndim != 1:
        raise ValueError(f"logp must have one value a row; got shape {logp.shape}")
    if (logp == np.inf).any():
        raise ValueError("logp contains +inf")
    return LogLikelihood(float(np.mean(logp)) / n_dims, float(np.median(logp)) / n_dims, int(logp.size))


def pinball_loss(y: Any, q_pred: Any, tau: Any, per_bar: bool = False) -> float | np.ndarray:
    """Pinball (quantile, check) loss of the forecast ``q_pred`` of the ``tau`` quantile of ``y``:

        L_tau(y, q) = max(tau (y - q), (tau - 1) (y - q)) = (1{y < q} - tau) (q - y),

    strictly consistent for the ``tau`` quantile (Koenker & Bassett 1978; Gneiting & Raftery 2007, sec. 9.1).
    Several quantiles at once: ``q_pred`` of shape (n, k) and ``tau`` of length k; each bar's loss is then the
    mean over the k quantiles (twice it, over a fine grid of tau, approaches the CRPS). Needs 1 row.

    >>> pinball_loss([1.0, 1.0], [0.0, 2.0], tau=0.9, per_bar=True).round(12).tolist()   # 0.9 * 1, 0.1 * 1
    [0.9, 0.1]
    """
    tau = np.asarray(tau, dtype=np.float64)
    if tau.ndim > 1 or not ((tau > 0) & (tau < 1)).all():
        raise ValueError(f"tau must be a level or a 1-D array of levels in (0, 1); got {tau}")
    keep, (y, q) = complete_rows(y=y, q_pred=q_pred)
    if q.ndim == 2:
        if tau.size != q.shape[1]:
            raise ValueError(f"q_pred has {q.shape[1]} columns but tau has {tau.size} level(s)")
        y = y[:, None]
    elif tau.ndim == 1:
        raise ValueError("several levels in tau need q_pred of shape (n, len(tau))")
    error = y - q
    loss = np.maximum(tau * error, (tau - 1.0) * error)
    return mean_or_per_bar(keep, loss.mean(axis=1) if loss.ndim == 2 else loss, per_bar)


def interval_coverage(y: Any, lower: Any, upper: Any, per_bar: bool = False) -> float | np.ndarray:
    """Share of bars with ``lower <= y <= upper`` (or, ``per_bar``, the 1/0 hit of each bar).

    Compare it with the interval's nominal level; coverage alone is not a proper score (a wide enough interval
    always covers), so read it beside the interval's width or the pinball losses of its two ends.
    Needs 1 row; ``lower > upper`` on a complete row is an error.

    >>> interval_coverage([0.0, 2.0, np.nan], [-1.0, -1.0, 0.0], [1.0, 1.0, 1.0])
    0.5
    """
    keep, (y, lower, upper) = complete_rows(y=y, lower=lower, upper=upper)
    if (lower > upper).any():
        raise ValueError(f"lower > upper on {int((lower > upper).sum())} row(s)")
    return mean_or_per_bar(keep, ((lower <= y) & (y <= upper)).astype(np.float64), per_bar)


def crps_gaussian(y: Any, mu: Any, sigma: Any, per_bar: bool = False) -> float | np.ndarray:
    """CRPS of the Gaussian forecast N(mu, sigma^2) for the outcome ``y``, in closed form
    (Gneiting & Raftery 2007, eq. 21): with z = (y - mu) / sigma,

        CRPS = sigma [ z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi) ].

    CRPS(F, y) = integral of (F(x) - 1{x >= y})^2 dx = E|X - y| - E|X - X'| / 2; it is in the units of ``y``
    and reduces to the absolute error for a point forecast. Needs 1 row; ``sigma`` must be positive.

    >>> round(crps_gaussian(0.0, 0.0, 1.0), 6)   # 2 phi(0) - 1 / sqrt(pi)
    0.233695
    """
    keep, z, sigma, _ = _standardised(y, mu, sigma, "sigma")
    crps = sigma * (z * (2.0 * special.ndtr(z) - 1.0) + 2.0 * stats.norm.pdf(z) - 1.0 / np.sqrt(np.pi))
    return mean_or_per_bar(keep, crps, per_bar)


def crps_student_t(y: Any, mu: Any, scale: Any, df: Any, per_bar: bool = False) -> float | np.ndarray:
    """CRPS of the location-scale Student-t forecast ``mu + scale * T_df`` for ``y``, in closed form
    (Jordan, Krüger & Lerch 2019, sec. on the t family): with z = (y - mu) / scale and F, f the standard t
    CDF and density with ``df`` = nu degrees of freedom,

        CRPS = scale [ z (2 F(z) - 1) + 2 f(z) (nu + z^2) / (nu - 1)
                       - 2 sqrt(nu) B(1/2, nu - 1/2) / ((nu - 1) B(1/2, nu / 2)^2) ],

    B the beta function (evaluated through log-beta, so large ``df`` tends to the Gaussian form). ``scale`` is
    the t's scale, not its standard deviation (which is scale * sqrt(nu / (nu - 2))). The CRPS is finite
    only when the mean is, so ``df`` must exceed 1; ``df`` may be one value or one a row. Needs 1 row.

    >>> round(crps_student_t(0.0, 0.0, 1.0, df=1e8), 5) == round(crps_gaussian(0.0, 0.0, 1.0), 5)
    True
    """
    keep, z, scale, df = _standardised(y, mu, scale, "scale", df, min_df=1.0)
    const = 2.0 * np.sqrt(df) / (df - 1.0) * np.exp(special.betaln(0.5, df - 0.5) - 2.0 * special.betaln(0.5, 0.5 * df))
    crps = scale * (z * (2.0 * stats.t.cdf(z, df) - 1.0) + 2.0 * stats.t.pdf(z, df) * (df + z * z) / (df - 1.0)
                    - const)
    return mean_or_per_bar(keep, crps, per_bar)


def nll_gaussian(y: Any, mu: Any, sigma: Any, per_bar: bool = False) -> float | np.ndarray:
    """Negative log-likelihood of ``y`` under N(mu, sigma^2), in nats:
    ``0.5 log(2 pi sigma^2) + (y - mu)^2 / (2 sigma^2)`` (the negated log score, Gneiting & Raftery 2007).
    Needs 1 row; ``sigma`` must be positive.

    >>> round(nll_gaussian(0.0, 0.0, 1.0), 6)   # log(2 pi) / 2
    0.918939
    """
    keep, z, sigma, _ = _standardised(y, mu, sigma, "sigma")
    nll = 0.5 * np.log(2.0 * np.pi) + np.log(sigma) + 0.5 * z * z
    return mean_or_per_bar(keep, nll, per_bar)


def nll_student_t(y: Any, mu: Any, scale: Any, df: Any, per_bar: bool = False) -> float | np.ndarray:
    """Negative log-likelihood of ``y`` under ``mu + scale * T_df`` (nats): with z = (y - mu) / scale,

        NLL = lnG(nu / 2) - lnG((nu + 1) / 2) + log(nu pi) / 2 + log(scale) + (nu + 1) / 2 log(1 + z^2 / nu),

    lnG the log gamma function.

    ``scale`` is the t's scale (not its standard deviation); ``df`` > 0, one value or one a row. Needs 1 row.

    >>> round(nll_student_t(0.0, 0.0, 1.0, df=1.0), 6)   # Cauchy: log(pi)
    1.14473
    """
    keep, z, scale, df = _standardised(y, mu, scale, "scale", df)
    log_pdf = (special.gammaln(0.5 * (df + 1.0)) - special.gammaln(0.5 * df) - 0.5 * np.log(df * np.pi)
               - np.log(scale) - 0.5 * (df + 1.0) * np.log1p(z * z / df))
    return mean_or_per_bar(keep, -log_pdf, per_bar)


def pit_values(y: Any, cdf_values: Any | Callable[[np.ndarray], Any]) -> np.ndarray:
    """Probability integral transform u_t = F_t(y_t) of the complete rows, in time order.

    ``cdf_values`` is either the forecast CDFs already evaluated at the outcomes (one value a bar), or a
    vectorised callable that evaluates them given ``y`` (all rows, NaN included), e.g.
    ``lambda v: scipy.stats.t.cdf((v - mu) / scale, df)``. Rows where ``y`` or F_t(y_t) is NaN are dropped.
    For a calibrated continuous forecast the values are i.i.d. uniform on [0, 1] (Dawid 1984; Diebold, Gunther
    & Tay 1998): check with a histogram or ``scipy.stats.kstest(u, "uniform")``, and their serial
    correlation with the VaR tests' logic. Needs 1 row; values outside [0, 1] are an error.

    >>> pit_values([0.0, np.nan, 1.0], lambda v: np.clip(v, 0, 1)).tolist()
    [0.0, 1.0]
    """
    y_all = np.asarray(y, dtype=np.float64)
    values = cdf_values(y_all) if callable(cdf_values) else cdf_values
    _, (_, u) = complete_rows(y=y_all, cdf_values=values)
    if u.ndim != 1:
        raise ValueError(f"cdf_values must have one value a row; got shape {u.shape}")
    if ((u < 0) | (u > 1)).any():
        raise ValueError(f"cdf values must lie in [0, 1]; {int(((u < 0) | (u > 1)).sum())} do not")
    return u
