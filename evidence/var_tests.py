"""Backtests of value-at-risk forecasts from their exceedance series (1 = the loss exceeded the VaR on that bar,
0 = it did not, NaN = no forecast): likelihood-ratio tests of Kupiec (1995) and Christoffersen (1998).

* :func:`kupiec_pof` -- unconditional coverage: is the exceedance rate the nominal ``1 - level``? (chi2, 1 dof)
* :func:`christoffersen_independence` -- do exceedances cluster? first-order Markov alternative (chi2, 1 dof)
* :func:`christoffersen_conditional_coverage` -- both at once: the sum of the two statistics (chi2, 2 dof)

Degenerate counts follow the standard convention 0 * log 0 = 0 (a likelihood term whose count is zero
contributes nothing, whatever its probability): with no exceedance at all the POF statistic is
``-2 n log(1 - p)`` and the independence statistic 0; with no pair of consecutive exceedances (n11 = 0) the
estimate pi11 = 0 makes its two terms vanish. The chi-square limits are asymptotic: with few expected
exceedances (n p below about 5) treat the p-values as rough.

References: P. Kupiec (1995), "Techniques for verifying the accuracy of risk measurement models", Journal of
Derivatives 3(2); P. F. Christoffersen (1998), "Evaluating interval forecasts", International Economic Review
39(4).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from scipy import special, stats

from .rows import InsufficientData, complete_rows

__all__ = ["LRTest", "christoffersen_conditional_coverage", "christoffersen_independence", "kupiec_pof"]


class LRTest(NamedTuple):
    """A likelihood-ratio statistic and its asymptotic chi-square p-value (small p: reject the forecasts)."""
    statistic: float
    pvalue: float


def _bernoulli_loglik(zeros: float, ones: float, prob: float) -> float:
    """log[(1 - prob)^zeros prob^ones] with 0 * log 0 = 0."""
    return float(special.xlogy(zeros, 1.0 - prob) + special.xlogy(ones, prob))


def _share(part: float, whole: float) -> float:
    """``part / whole``, 0 when ``whole`` is 0 (then every term the share enters has a zero count)."""
    return part / whole if whole else 0.0


def _lr(statistic: float, dof: int) -> LRTest:
    statistic = max(statistic, 0.0)   # rounding can leave -1e-16 where the two likelihoods coincide
    return LRTest(statistic, float(stats.chi2.sf(statistic, dof)))


def _exceedances(exceedances: Any) -> np.ndarray:
    """The series as floats (NaN kept), checked to hold only 0, 1 and NaN."""
    e = np.asarray(exceedances, dtype=np.float64)
    if e.ndim != 1:
        raise ValueError(f"exceedances must be 1-D; got shape {e.shape}")
    if not np.isin(e[~np.isnan(e)], (0.0, 1.0)).all():
        raise ValueError("exceedances must be 0 / 1 (or booleans), NaN where there is no forecast")
    return e


def kupiec_pof(exceedances: Any, level: float) -> LRTest:
    """Kupiec's proportion-of-failures test of unconditional coverage (chi2 with 1 dof).

    ``level`` is the VaR's confidence level (0.99 for a 99 % VaR), so the nominal exceedance probability is
    p = 1 - level. With x exceedances in n complete bars and pi = x / n,

        LR_POF = -2 [ (n - x) log(1 - p) + x log p - (n - x) log(1 - pi) - x log pi ],

    0 * log 0 = 0 (no exceedance: LR = -2 n log(1 - p)). Needs 1 row.

    >>> round(kupiec_pof([1] * 5 + [0] * 245, 0.99).statistic, 4)   # 5 in 250 at 1 %: 2.5 expected
    1.9568
    """
    if not 0.5 < level < 1.0:
        raise ValueError(f"level is the VaR confidence level in (0.5, 1), e.g. 0.99 (exceedance probability "
                         f"1 - level); got {level}")
    _, (e,) = complete_rows(exceedances=_exceedances(exceedances))
    n, x = float(e.size), float(e.sum())
    p = 1.0 - level
    return _lr(-2.0 * (_bernoulli_loglik(n - x, x, p) - _bernoulli_loglik(n - x, x, x / n)), 1)


def _transition_counts(exceedances: Any) -> tuple[float, float, float, float]:
    """(n00, n01, n10, n11): pairs of consecutive bars (I_{t-1}, I_t), both with a value, by state."""
    e = _exceedances(exceedances)
    prev, cur = e[:-1], e[1:]
    both = ~np.isnan(prev) & ~np.isnan(cur)
    if not both.any():
        raise InsufficientData(f"needs two consecutive bars with a value; got {int((~np.isnan(e)).sum())} "
                               f"value(s) in {e.size} bars and no such pair")
    prev, cur = prev[both], cur[both]
    return tuple(float(np.sum((prev == i) & (cur == j))) for i in (0, 1) for j in (0, 1))


def christoffersen_independence(exceedances: Any) -> LRTest:
    """Christoffersen's test of independence against a first-order Markov chain (chi2 with 1 dof).

    Count the pairs of consecutive bars (I_{t-1}, I_t) by state, n_ij, and estimate pi01 = n01 / (n00 + n01),
    pi11 = n11 / (n10 + n11), pi = (n01 + n11) / (n00 + n01 + n10 + n11). Then

        LR_ind = -2 [ log L(pi) - log L(pi01, pi11) ],
        log L(pi) = (n00 + n10) log(1 - pi) + (n01 + n11) log pi,
        log L(pi01, pi11) = n00 log(1 - pi01) + n01 log pi01 + n10 log(1 - pi11) + n11 log pi11,

    with 0 * log 0 = 0 (module docstring). Only pairs whose two bars both have a value count, so a gap in the
    forecasts never joins two distant bars into a pair. Clustered exceedances (pi11 >> pi01) give a large
    statistic. Needs 2 consecutive rows with a value.

    >>> christoffersen_independence([0, 1, 0, 1, 0, 1, 0, 0]).statistic > 0   # alternating: pi11 = 0 < pi01
    True
    """
    n00, n01, n10, n11 = _transition_counts(exceedances)
    pi = _share(n01 + n11, n00 + n01 + n10 + n11)
    restricted = _bernoulli_loglik(n00 + n10, n01 + n11, pi)
    markov = (_bernoulli_loglik(n00, n01, _share(n01, n00 + n01))
              + _bernoulli_loglik(n10, n11, _share(n11, n10 + n11)))
    return _lr(-2.0 * (restricted - markov), 1)


def christoffersen_conditional_coverage(exceedances: Any, level: float) -> LRTest:
    """Christoffersen's conditional coverage test: LR_CC = LR_POF + LR_ind, chi2 with 2 dof.

    The textbook sum: :func:`kupiec_pof` on all complete bars plus :func:`christoffersen_independence` on the
    pairs of consecutive bars. (Christoffersen's exact decomposition conditions on the first bar, i.e. runs
    the POF part on the n - 1 later bars; the two differ by one bar's term and agree asymptotically.)
    Needs 2 consecutive rows with a value.

    >>> round(christoffersen_conditional_coverage([0] * 100, 0.99).statistic, 4)   # -2 * 100 * log(0.99)
    2.0101
    """
    pof = kupiec_pof(exceedances, level)
    ind = christoffersen_independence(exceedances)
    return _lr(pof.statistic + ind.statistic, 2)
