"""Value-at-risk and expected shortfall of a predictive distribution, in numpy: from a mixture of Student-t laws (a
Bayesian network's posterior predictive), from a log-density on a grid (a score model's conditional), from samples
(Monte Carlo), and the quadrature that averages a monotone map of a normal or Student-t variable over its lower tail
(a 1-D flow).

Conventions, for a forward log return ``r`` and a tail probability ``prob`` (0.05 for a 95 % VaR):

* ``var`` is the ``prob`` quantile of ``r`` (a return, negative in a loss: a long loses ``1 - exp(var)`` of its
  value with probability ``prob``);
* ``cvar`` (expected shortfall) is ``E[r | r <= var]``, never above ``var``.

Every function works row by row: a row's result does not depend on the other rows given with it.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import special

__all__ = ["grid_tail", "lower_tail_nodes", "mixture_t_tail", "sample_tail"]

_BISECTION_STEPS = 80


def _check_prob(prob: float) -> float:
    prob = float(prob)
    if not 0.0 < prob < 0.5:
        raise ValueError(f"prob is the tail probability in (0, 0.5), e.g. 0.05 for a 95 % VaR; got {prob}")
    return prob


def lower_tail_nodes(prob: float, n: int = 64, df: float = math.inf) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``z`` and weights ``w`` (summing to 1) with ``sum(w * g(z)) ≈ E[g(Z) | Z <= F⁻¹(prob)]``, Z a standard
    Student-t with ``df`` degrees of freedom (``inf``: standard normal), for ``g`` of at most linear growth. For a
    flow ``r = g(z)`` (increasing) on that base, the expected shortfall of ``r``.

    The tail mean is ``(1/prob) ∫_0^prob g(F⁻¹(u)) du``; with ``u = prob · v⁴`` it becomes ``∫_0^1 g(F⁻¹(prob v⁴))
    4 v³ dv``, whose integrand vanishes at ``v = 0`` even for heavy tails (``df`` > 4/3 for a linear ``g``), and
    ``n`` Gauss–Legendre nodes in ``v`` integrate it (measured relative error for the identity: 3e-15 normal, 7e-13
    at ``df = 5``, 5e-11 at ``df = 3``, with 64 nodes).

    >>> from scipy import stats
    >>> z, w = lower_tail_nodes(0.05)
    >>> round(float(w @ z), 10), round(float(-stats.norm.pdf(stats.norm.ppf(0.05)) / 0.05), 10)
    (-2.0627128075, -2.0627128075)
    """
    from scipy import stats   # imported when used: it costs half a second
    prob = _check_prob(prob)
    x, weights = np.polynomial.legendre.leggauss(int(n))
    v = (x + 1.0) / 2.0
    u = prob * v ** 4
    z = stats.norm.ppf(u) if math.isinf(df) else stats.t.ppf(u, df)
    w = 2.0 * v ** 3 * weights
    return z, w / w.sum()


def _t_cdf(a: np.ndarray, df: float) -> np.ndarray:
    return special.ndtr(a) if math.isinf(df) else special.stdtr(df, a)


def _t_partial_mean(a: np.ndarray, df: float) -> np.ndarray:
    """``∫_{-∞}^{a} t f(t) dt`` of a standard Student-t (``df`` > 1) or, ``df = inf``, normal: ``-(df + a²) / (df - 1)
    f(a)``, and ``-φ(a)``."""
    from scipy import stats   # imported when used: it costs half a second
    if math.isinf(df):
        return -stats.norm.pdf(a)
    return -(df + a * a) / (df - 1.0) * stats.t.pdf(a, df)


def mixture_t_tail(loc: Any, scale: Any, df: float, prob: float) -> tuple[np.ndarray, np.ndarray]:
    """``(var, cvar)`` of the equally weighted mixture of ``loc + scale · T_df`` over the last axis (one row a
    forecast, one column a component, e.g. a posterior draw), exact: the quantile by bisection of the mixture's CDF
    to float precision, the shortfall in closed form, ``E[r 1{r <= q}] = Σ loc F(a) + scale ∫^a t f(t) dt`` with
    ``a = (q - loc) / scale``. ``df`` > 1 (``inf``: normal components); ``scale`` is the t's scale, not its std.

    >>> v, c = mixture_t_tail([[0.0, 0.0]], [[1.0, 1.0]], float("inf"), 0.05)
    >>> round(float(v[0]), 6), round(float(c[0]), 6)
    (-1.644854, -2.062713)
    """
    from scipy import stats   # imported when used: it costs half a second
    prob = _check_prob(prob)
    loc, scale = np.atleast_2d(np.asarray(loc, dtype=np.float64)), np.atleast_2d(np.asarray(scale, dtype=np.float64))
    if not (df > 1.0):
        raise ValueError(f"df must exceed 1 (the shortfall of a t needs a mean); got {df}")
    if (scale <= 0).any():
        raise ValueError("scale must be positive")
    t_q = stats.norm.ppf(prob) if math.isinf(df) else stats.t.ppf(prob, df)
    lo = (loc + scale * t_q).min(axis=1)      # the mixture's quantile lies between its components' quantiles
    hi = (loc + scale * t_q).max(axis=1)
    lo, hi = lo - 1e-12 * (1.0 + np.abs(lo)), hi + 1e-12 * (1.0 + np.abs(hi))
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        below = _t_cdf((mid[:, None] - loc) / scale, df).mean(axis=1) < prob
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    q = 0.5 * (lo + hi)
    a = (q[:, None] - loc) / scale
    partial = (loc * _t_cdf(a, df) + scale * _t_partial_mean(a, df)).mean(axis=1)
    return q, np.minimum(partial / prob, q)


def grid_tail(grid: Any, log_density: Any, prob: float) -> tuple[np.ndarray, np.ndarray]:
    """``(var, cvar)`` of the densities ``exp(log_density)`` (one row a forecast, unnormalised) tabulated on the
    increasing points ``grid`` (shape ``(G,)`` or one row a forecast): trapezoid CDF and first moment, the quantile
    and the partial moment interpolated linearly inside the cell that holds it. Error O(spacing²) for a smooth
    density whose tail mass outside the grid is negligible.

    >>> g = np.linspace(-9, 9, 4001); v, c = grid_tail(g, [-g * g / 2], 0.05)
    >>> round(float(v[0]), 3), round(float(c[0]), 3)
    (-1.645, -2.063)
    """
    prob = _check_prob(prob)
    logp = np.atleast_2d(np.asarray(log_density, dtype=np.float64))
    g = np.broadcast_to(np.asarray(grid, dtype=np.float64), logp.shape)
    p = np.exp(logp - logp.max(axis=1, keepdims=True))
    dg = np.diff(g, axis=1)
    mass = np.concatenate([np.zeros((p.shape[0], 1)), np.cumsum(0.5 * dg * (p[:, 1:] + p[:, :-1]), axis=1)], axis=1)
    gp = g * p
    moment = np.concatenate([np.zeros((p.shape[0], 1)), np.cumsum(0.5 * dg * (gp[:, 1:] + gp[:, :-1]), axis=1)],
                            axis=1)
    total = mass[:, -1:]
    cdf, moment = mass / total, moment / total
    k = np.clip((cdf < prob).sum(axis=1), 1, g.shape[1] - 1)
    rows = np.arange(g.shape[0])
    frac = (prob - cdf[rows, k - 1]) / np.maximum(cdf[rows, k] - cdf[rows, k - 1], 1e-300)
    q = g[rows, k - 1] + frac * (g[rows, k] - g[rows, k - 1])
    partial = moment[rows, k - 1] + frac * (moment[rows, k] - moment[rows, k - 1])
    return q, np.minimum(partial / prob, q)


def sample_tail(samples: Any, prob: float) -> tuple[np.ndarray, np.ndarray]:
    """``(var, cvar)`` of the empirical law of each row of ``samples``: the lower ``prob`` quantile (inverted CDF,
    ``x_(⌈S·prob⌉)``) and the Acerbi–Tasche shortfall ``(Σ_{i<k} x_(i) + (S·prob - k) x_(k+1)) / (S·prob)``,
    ``k = ⌊S·prob⌋``, consistent for the expected shortfall of a continuous law.

    >>> sample_tail([[4.0, 1.0, 3.0, 2.0]], 0.25)
    (array([1.]), array([1.]))
    """
    prob = _check_prob(prob)
    x = np.sort(np.atleast_2d(np.asarray(samples, dtype=np.float64)), axis=1)
    size = x.shape[1]
    k = int(math.floor(size * prob))
    q = x[:, max(int(math.ceil(size * prob)) - 1, 0)]
    head = x[:, :k].sum(axis=1) + (size * prob - k) * x[:, min(k, size - 1)]
    return q, np.minimum(head / (size * prob), q)
