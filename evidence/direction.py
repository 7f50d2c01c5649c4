"""Direction forecasts against the returns that followed: hit rate of the sign, and the rank information
coefficient with a standard error that survives overlapping returns and persistent signals."""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from scipy import stats

from .hac import default_lags, long_run_variance
from .rows import InsufficientData, complete_rows

__all__ = ["RankIC", "rank_ic", "sign_agreement"]


def _pair(direction: Any, forward_return: Any, need: int) -> tuple[np.ndarray, np.ndarray]:
    _, (d, r) = complete_rows(need=need, direction=direction, forward_return=forward_return)
    if d.ndim != 1:
        raise ValueError(f"direction and forward_return must be 1-D; got shape {d.shape}")
    return d, r


def sign_agreement(direction: Any, forward_return: Any) -> float:
    """Share of bars where ``sign(direction) == sign(forward_return)``, over the complete rows where neither is
    0 (a flat signal calls nothing, a zero return has no sign). 0.5 is chance for a sign that ignores the
    future; compare with the share of up bars too, which an always-long signal scores. Needs 1 row with both
    non-zero.

    >>> sign_agreement([1.0, -2.0, 0.0, 0.5, np.nan], [0.1, 0.2, 0.3, 0.4, 0.5])   # 2 agree of 3 counted
    0.6666666666666666
    """
    d, r = _pair(direction, forward_return, need=1)
    counted = (d != 0) & (r != 0)
    if not counted.any():
        raise InsufficientData("needs 1 complete row where neither direction nor forward_return is 0")
    return float(np.mean(np.sign(d[counted]) == np.sign(r[counted])))


class RankIC(NamedTuple):
    """Spearman rank correlation ``ic``, its HAC standard error ``se``, ``t = ic / se``, the two-sided normal
    ``pvalue`` of t, the ``lags`` used and the number ``n`` of complete rows."""
    ic: float
    se: float
    t: float
    pvalue: float
    lags: int
    n: int


def rank_ic(direction: Any, forward_return: Any, lags: int | None = None) -> RankIC:
    """Rank information coefficient: Spearman's rho of ``direction`` and ``forward_return``, with a Newey–West
    standard error.

    Construction: rank both series (average ranks for ties), centre and scale each by its standard deviation
    (divisor n) to u_t and v_t. Then rho = mean_t(z_t) with z_t = u_t v_t exactly (it is the Pearson
    correlation of the ranks), and se = sqrt(LRV(z) / n), LRV the Newey–West long-run variance with the
    Bartlett kernel and ``lags`` lags (default floor(4 (n / 100)^(2/9)); ``lags=0`` is the i.i.d. error, about
    1 / sqrt(n)). Why this is the right error under the null of no predictive power: when the signal and the return
    are independent at each bar, the projection (Hajek) of Spearman's rho on the observations is the mean of
    12 (U_t - 1/2)(V_t - 1/2), U, V the marginal probability transforms; the ranks' own estimation error adds
    nothing at first order, so rho behaves like the mean of the products z_t. Those products are serially
    correlated when both series are (a persistent signal, and h-bar forward returns that overlap h - 1 bars),
    which inflates a 1/sqrt(n) error's t-statistic; the HAC variance of the mean of z_t accounts for it
    (Newey & West 1987). Away from the null it is an approximation: it omits the term -rho (u^2 + v^2) / 2 of the
    correlation's influence function, which for Gaussian-like data makes the error too large (variance
    1 + rho^2 instead of (1 - rho^2)^2), i.e. conservative; the t-statistic is for testing rho = 0.

    Needs 3 complete rows, more than ``lags``, and neither series constant.

    >>> r = rank_ic([1.0, 2.0, 3.0, 4.0, 5.0], [0.1, 0.3, 0.2, 0.5, 0.4], lags=0)
    >>> round(r.ic, 6), round(r.t, 4)
    (0.8, 2.3905)
    """
    d, r = _pair(direction, forward_return, need=3)
    n = d.size
    lags = default_lags(n) if lags is None else lags
    if isinstance(lags, bool) or not isinstance(lags, (int, np.integer)) or not 0 <= lags < n:
        raise ValueError(f"lags must be an integer in [0, {n - 1}]; got {lags!r}")
    standardised = []
    for name, x in (("direction", d), ("forward_return", r)):
        ranks = stats.rankdata(x)
        if ranks.std() == 0:
            raise ValueError(f"{name} is constant on the complete rows: its rank correlation is undefined")
        standardised.append((ranks - ranks.mean()) / ranks.std())
    z = standardised[0] * standardised[1]
    ic = float(z.mean())
    se = float(np.sqrt(max(long_run_variance(z, int(lags)), 0.0) / n))
    t = ic / se if se > 0 else float(np.sign(ic) * np.inf if ic else 0.0)
    return RankIC(ic, se, t, float(2.0 * stats.norm.sf(abs(t))), int(lags), n)
