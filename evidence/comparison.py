"""Is model A's score really different from model B's on the same bars? Two answers for the per-bar loss
difference d_t = loss_A,t - loss_B,t, both allowing for serial dependence (losses of volatility or density
forecasts cluster, so an i.i.d. error would find differences that are not there), and the verdict that reads
the interval.

* :func:`block_bootstrap_mean_diff` -- circular block bootstrap percentile interval of mean(d);
* :func:`diebold_mariano` -- the Diebold–Mariano test of equal expected loss;
* :func:`verdict` -- "better" / "no different" / "worse" for A from an interval of mean(d).
"""
from __future__ import annotations

from typing import Any, Callable, Literal, NamedTuple, Sequence

import numpy as np
from scipy import stats

from .hac import long_run_variance
from .rows import InsufficientData, complete_rows

__all__ = ["BootstrapInterval", "DMTest", "block_bootstrap_mean_diff", "block_bootstrap_statistic_diff",
           "circular_block_indices", "diebold_mariano", "verdict"]


def _difference(loss_a: Any, loss_b: Any, need: int) -> np.ndarray:
    """d_t = a_t - b_t over the bars where both have a value."""
    _, (a, b) = complete_rows(need=need, loss_a=loss_a, loss_b=loss_b)
    if a.ndim != 1:
        raise ValueError(f"loss_a and loss_b must be 1-D (one value a bar); got shape {a.shape}")
    d = a - b
    if not np.isfinite(d).all():
        raise ValueError("the loss difference is infinite on some bar (an infinite loss: report that instead)")
    return d


class BootstrapInterval(NamedTuple):
    """``mean_diff`` = mean(loss_A - loss_B) over ``n`` bars, and its bootstrap percentile interval
    [``lower``, ``upper``] from blocks of ``block`` bars."""
    mean_diff: float
    lower: float
    upper: float
    block: int
    n: int

    @property
    def interval(self) -> tuple[float, float]:
        return self.lower, self.upper


def block_bootstrap_mean_diff(loss_a: Any, loss_b: Any, block: int | None = None, n_boot: int = 2000,
                              seed: int = 0, level: float = 0.95) -> BootstrapInterval:
    """Mean of d_t = loss_A,t - loss_B,t and its circular block bootstrap percentile interval.

    Each resample strings together ceil(n / block) blocks of ``block`` consecutive bars with uniform random
    starts, wrapping round the end of the series (the circular block bootstrap of Politis & Romano 1992, a
    variant of Künsch's 1989 moving-block bootstrap in which every bar is equally likely to be drawn, so the
    resampled means are centred on the sample mean), cut to n bars. Blocks keep the serial dependence within
    them that an i.i.d. bootstrap (``block=1``) destroys. The interval is the (1 - level) / 2 and
    (1 + level) / 2 quantiles of the ``n_boot`` resampled means.

    Block length: ``None`` means ceil(n^(1/3)). For the variance and distribution of a sample mean the block
    length that minimises the bootstrap's mean squared error grows like n^(1/3) (Hall, Horowitz & Jing 1995;
    Lahiri 2003, ch. 7), the constant depending on the autocorrelation (Politis & White 2004 estimate it);
    n^(1/3) is the rate with constant 1: 8 bars for 500, 22 for 10 000. For strongly persistent losses pass a
    longer block. Needs 2 complete rows and ``block <= n``.

    >>> r = block_bootstrap_mean_diff([1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 2.0, 3.0], n_boot=100)
    >>> r.mean_diff, r.interval   # a constant difference: the interval is that constant
    (1.0, (1.0, 1.0))
    """
    d = _difference(loss_a, loss_b, need=2)
    n = d.size
    block = int(np.ceil(n ** (1.0 / 3.0) - 1e-9)) if block is None else block
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or not 1 <= block <= n:
        raise ValueError(f"block must be an integer in [1, {n}]; got {block!r}")
    if n_boot < 1 or not 0.0 < level < 1.0:
        raise ValueError(f"n_boot must be >= 1 and level in (0, 1); got {n_boot} and {level}")
    mean = float(d.mean())
    # sums of the circular blocks of `length` bars starting at each bar, from one cumulative sum (centred
    # first, so that long series lose no precision); a resample's mean is a sum of such block sums / n
    cumulative = np.concatenate(([0.0], np.cumsum(np.concatenate((d - mean, d[:block - 1] - mean)))))
    starts = np.arange(n)

    def block_sums(length: int) -> np.ndarray:
        return cumulative[starts + length] - cumulative[starts]

    rng = np.random.default_rng(seed)
    n_full, rest = divmod(n, block)
    total = block_sums(block)[rng.integers(0, n, size=(n_boot, n_full))].sum(axis=1)
    if rest:
        total += block_sums(rest)[rng.integers(0, n, size=n_boot)]
    lower, upper = np.quantile(mean + total / n, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return BootstrapInterval(mean, float(lower), float(upper), int(block), n)


class DMTest(NamedTuple):
    """The Diebold–Mariano statistic (negative: A's loss is lower) and its two-sided p-value."""
    statistic: float
    pvalue: float


def diebold_mariano(loss_a: Any, loss_b: Any, horizon: int = 1) -> DMTest:
    """Diebold–Mariano test of equal expected loss, with the Harvey–Leybourne–Newbold correction.

    With d_t = loss_A,t - loss_B,t over n bars, h = ``horizon``,

        DM = mean(d) / sqrt(V / n),  V = gamma_0 + 2 sum_{k=1}^{h-1} gamma_k

    (autocovariances with divisor n: the truncated, unweighted sum of Diebold & Mariano 1995, since optimal
    h-step forecast errors are MA(h - 1); when it comes out <= 0, which it can for h > 1, the Bartlett-weighted
    Newey–West sum with the same lags is used instead). The statistic reported is Harvey, Leybourne & Newbold's
    (1997) small-sample version DM* = DM sqrt((n + 1 - 2h + h (h - 1) / n) / n), referred to Student's t with
    n - 1 dof. For h = 1 this is exactly the one-sample t-test of mean(d) = 0. It trusts the MA(h - 1) structure;
    when the loss differences are more persistent than that, prefer :func:`block_bootstrap_mean_diff`.
    A constant non-zero difference gives +-inf and p = 0; all-zero differences give (0, 1).
    Needs 2 h + 1 complete rows.

    >>> dm = diebold_mariano([1.0, 2.0, 3.0, 4.0], [1.5, 1.5, 3.5, 3.5])   # d = -0.5, 0.5, -0.5, 0.5
    >>> dm.statistic, dm.pvalue
    (0.0, 1.0)
    """
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"horizon must be an integer >= 1; got {horizon!r}")
    d = _difference(loss_a, loss_b, need=2 * horizon + 1)
    n, mean = d.size, float(d.mean())
    variance = long_run_variance(d, horizon - 1, kernel="uniform")
    if variance <= 0:
        variance = long_run_variance(d, horizon - 1, kernel="bartlett")
    if variance <= 0:
        return DMTest(0.0, 1.0) if mean == 0 else DMTest(float(np.sign(mean) * np.inf), 0.0)
    statistic = mean / np.sqrt(variance / n) * np.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    return DMTest(float(statistic), float(2.0 * stats.t.sf(abs(statistic), n - 1)))


def verdict(diff_interval: Sequence[float] | BootstrapInterval,
            lower_is_better: bool = True) -> Literal["better", "no different", "worse"]:
    """Model A against model B from an interval (lower, upper) of mean(score_A - score_B), e.g.
    ``block_bootstrap_mean_diff(...).interval`` (or the result itself).

    For losses (``lower_is_better``): "better" when the whole interval lies below 0, "worse" when it lies
    above 0, "no different" when it contains 0 (an end exactly at 0 included). For scores where higher is
    better (log-likelihood, AUROC, rank IC) the opposite.

    >>> verdict((-0.3, -0.1)), verdict((-0.3, -0.1), lower_is_better=False), verdict((-0.1, 0.2))
    ('better', 'worse', 'no different')
    """
    lower, upper = diff_interval.interval if isinstance(diff_interval, BootstrapInterval) else diff_interval
    lower, upper = float(lower), float(upper)
    if np.isnan(lower) or np.isnan(upper) or lower > upper:
        raise ValueError(f"diff_interval must be (lower, upper) with lower <= upper; got ({lower}, {upper})")
    if upper < 0:
        return "better" if lower_is_better else "worse"
    if lower > 0:
        return "worse" if lower_is_better else "better"
    return "no different"


def circular_block_indices(n: int, block: int, rng: np.random.Generator) -> np.ndarray:
    """One circular block bootstrap resample of ``range(n)``: ceil(n / block) runs of ``block`` consecutive
    indices from uniform random starts, wrapping round the end, cut to ``n`` (the scheme of
    :func:`block_bootstrap_mean_diff`, as indices for statistics that are not means)."""
    starts = rng.integers(0, n, size=-(-n // block))
    return ((starts[:, None] + np.arange(block)[None, :]) % n).ravel()[:n]


def block_bootstrap_statistic_diff(statistic: Callable[[np.ndarray], float], n: int, block: int | None = None,
                                   n_boot: int = 500, seed: int = 0, level: float = 0.95) -> BootstrapInterval:
    """``statistic(indices)`` (a difference of two models' statistic on the bars ``indices``, e.g. of AUROC) on
    all ``n`` bars and its circular block bootstrap percentile interval; resamples on which the statistic is
    undefined (NaN, e.g. no event drawn) are left out. Block length as in :func:`block_bootstrap_mean_diff`."""
    block = int(np.ceil(n ** (1.0 / 3.0) - 1e-9)) if block is None else int(block)
    if not 1 <= block <= n:
        raise ValueError(f"block must be an integer in [1, {n}]; got {block!r}")
    rng = np.random.default_rng(seed)
    draws = np.array([statistic(circular_block_indices(n, block, rng)) for _ in range(n_boot)])
    draws = draws[np.isfinite(draws)]
    if draws.size < 2:
        raise InsufficientData("the statistic is undefined on almost every bootstrap resample")
    lower, upper = np.quantile(draws, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return BootstrapInterval(float(statistic(np.arange(n))), float(lower), float(upper), block, n)
