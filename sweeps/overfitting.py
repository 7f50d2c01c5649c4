"""Selection-bias statistics of a sweep: the deflated Sharpe ratio and the probability of backtest overfitting.

Pure numerics on arrays of per-period returns (numpy / scipy only); Sharpe ratios are per period, never
annualised, in every function here.

- :func:`deflated_sharpe_ratio` (Bailey and López de Prado, "The Deflated Sharpe Ratio", 2014): the
  probabilistic Sharpe ratio :func:`probabilistic_sharpe_ratio` of the selected trial measured against
  :func:`expected_max_sharpe`, the Sharpe ratio the best of ``n_trials`` skill-less trials would show::

      PSR(SR*) = Φ((SR − SR*)·√(T − 1) / √(1 − γ3·SR + (γ4 − 1)/4·SR²))
      SR*      = √V[SR_n] · ((1 − γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e)))

  with ``γ3`` the skewness and ``γ4`` the (non-excess) kurtosis of the selected trial's returns, ``T``
  their number, ``V[SR_n]`` the variance of the ``N`` trials' Sharpe ratios and ``γ`` Euler's constant.
- :func:`probability_of_backtest_overfitting` (Bailey, Borwein, López de Prado and Zhu, "The Probability
  of Backtest Overfitting", 2017): combinatorially symmetric cross-validation (CSCV) of a ``T × N``
  matrix of the trials' returns cut into ``S`` contiguous blocks. Each of the ``C(S, S/2)`` ways of
  choosing half of the blocks is an in-sample set, the other half its out-of-sample set; the trial with
  the best in-sample Sharpe ratio gets its out-of-sample relative rank ``ω = rank / (N + 1)`` and the
  logit ``λ = log(ω / (1 − ω))``. PBO is the share of splits with ``λ ≤ 0`` (at or below the median).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy.special import comb, ndtr, ndtri

__all__ = ["DEFAULT_BLOCKS", "MIN_BLOCK_LENGTH", "PBOResult", "cscv_blocks", "deflated_sharpe_ratio",
           "expected_max_sharpe", "probabilistic_sharpe_ratio", "probability_of_backtest_overfitting",
           "return_moments", "sharpe_ratios"]

#: CSCV blocks by default: C(16, 8) = 12,870 splits, as recommended by Bailey et al. (enough splits for a
#: smooth logit distribution, halves of T/2 returns; 20 blocks would be 184,756 splits for little gain)
DEFAULT_BLOCKS = 16
#: fewest returns in a CSCV block; shorter series get fewer blocks (and none below 4 blocks)
MIN_BLOCK_LENGTH = 4

_TINY = 64 * np.finfo(float).eps   # a variance below this share of the mean square is rounding: no variation


def _ratio(total: np.ndarray, total_sq: np.ndarray, count: np.ndarray | float) -> np.ndarray:
    """Sharpe ratios (mean / standard deviation with ddof=1) from sums, sums of squares and counts;
    0 where the returns do not vary (or there are fewer than two)."""
    count = np.asarray(count, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / count
        var = (total_sq - total * mean) / (count - 1.0)
        ok = (count > 1) & (var > _TINY * total_sq / count)
        return np.where(ok, mean / np.sqrt(np.where(ok, var, 1.0)), 0.0)


def sharpe_ratios(returns: np.ndarray) -> np.ndarray:
    """Per-period Sharpe ratio (mean / std, ddof=1) of each column of ``returns`` (T × N, or a vector);
    0 for a column that does not vary."""
    r = np.asarray(returns, dtype=float)
    return _ratio(r.sum(axis=0), np.square(r).sum(axis=0), r.shape[0])


def return_moments(returns: np.ndarray) -> tuple[float, float]:
    """Skewness ``γ3`` and non-excess kurtosis ``γ4`` (3 for a normal law) of a return vector.

    The plain (biased) sample moments: they are the moments of the empirical distribution, so
    ``γ4 ≥ 1 + γ3²`` holds and the PSR denominator stays positive. Returns that do not vary give
    the normal law's (0, 3).
    """
    r = np.asarray(returns, dtype=float)
    d = r - r.mean()
    m2 = float(np.mean(d * d))
    if not m2 > _TINY * float(np.mean(r * r)):
        return 0.0, 3.0
    return float(np.mean(d ** 3)) / m2 ** 1.5, float(np.mean(d ** 4)) / m2 ** 2


def probabilistic_sharpe_ratio(sr: float, sr_benchmark: float, n_obs: int, skew: float = 0.0,
                               kurtosis: float = 3.0) -> float:
    """PSR: the probability that the true per-period Sharpe ratio exceeds ``sr_benchmark``, given the
    estimate ``sr`` from ``n_obs`` returns with skewness ``skew`` and non-excess ``kurtosis``."""
    if n_obs < 2:
        return math.nan
    denom = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    return float(ndtr((sr - sr_benchmark) * math.sqrt(n_obs - 1.0) / math.sqrt(max(denom, 1e-12))))


def expected_max_sharpe(n_trials: int, sr_variance: float) -> float:
    """SR*: the expected largest of ``n_trials`` per-period Sharpe ratios whose true value is 0 and whose
    estimates vary with variance ``sr_variance`` (0 for a single trial: nothing was selected)."""
    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1; got {n_trials}")
    if n_trials == 1 or sr_variance <= 0:
        return 0.0
    z = (1.0 - np.euler_gamma) * ndtri(1.0 - 1.0 / n_trials) + np.euler_gamma * ndtri(1.0 - 1.0 / (n_trials * math.e))
    return float(math.sqrt(sr_variance) * z)


def deflated_sharpe_ratio(sr: float, sr_variance: float, n_trials: int, n_obs: int, skew: float = 0.0,
                          kurtosis: float = 3.0) -> float:
    """DSR: the probability that the selected trial's true per-period Sharpe ratio exceeds 0, given that it
    was the pick of ``n_trials`` whose Sharpe ratios have variance ``sr_variance``: its PSR against
    :func:`expected_max_sharpe`."""
    return probabilistic_sharpe_ratio(sr, expected_max_sharpe(n_trials, sr_variance), n_obs, skew, kurtosis)


def cscv_blocks(n_obs: int, max_blocks: int = DEFAULT_BLOCKS, min_length: int = MIN_BLOCK_LENGTH) -> int:
    """The even number of CSCV blocks for ``n_obs`` returns: ``max_blocks``, fewer when a block would hold
    fewer than ``min_length`` returns; 0 when not even 4 blocks fit (PBO is then not computed)."""
    s = min(max_blocks, n_obs // min_length) // 2 * 2
    return s if s >= 4 else 0


@dataclass(frozen=True)
class PBOResult:
    """CSCV's outcome: ``pbo`` (NaN when it could not be computed), the logit ``λ`` of every split, the
    number of blocks ``S`` and of splits ``C(S, S/2)``."""

    pbo: float
    logits: np.ndarray
    n_blocks: int
    n_splits: int


def _rank_of(values: np.ndarray, col: np.ndarray) -> np.ndarray:
    """Per row, the rank (1 = lowest, ties averaged) of ``values[row, col[row]]`` within the row."""
    x = values[np.arange(len(col)), col][:, None]
    return (values < x).sum(axis=1) + ((values == x).sum(axis=1) - 1) / 2.0 + 1.0


def probability_of_backtest_overfitting(returns: np.ndarray, n_blocks: int | None = None,
                                        max_cells: int = 16_384) -> PBOResult:
    """PBO of the trials whose per-period returns are the columns of ``returns`` (T × N) by CSCV over
    ``n_blocks`` contiguous blocks (default :func:`cscv_blocks`; ``np.array_split`` sizes).

    Vectorised: per block the sums of returns and of squared returns; per split those of the in-sample
    half are a 0/1 matrix product, the out-of-sample half the totals minus them. Splits are processed in
    chunks of at most ``max_cells`` split × trial cells: memory stays bounded for any number of trials, and
    arrays of 128 KiB stay in the CPU cache (larger chunks were several times slower, not faster).
    """
    r = np.asarray(returns, dtype=float)
    if r.ndim != 2:
        raise ValueError(f"returns must be a T x N matrix; got shape {r.shape}")
    t, n = r.shape
    s = cscv_blocks(t) if n_blocks is None else int(n_blocks)
    if s and (s % 2 or s < 2 or s > t):
        raise ValueError(f"n_blocks must be even, at least 2 and at most the {t} returns; got {s}")
    if n < 2 or s == 0:
        return PBOResult(math.nan, np.empty(0), s, 0)
    bounds = np.r_[0, np.cumsum([len(b) for b in np.array_split(np.arange(t), s)])]
    sums, sq = np.add.reduceat(r, bounds[:-1], axis=0), np.add.reduceat(r * r, bounds[:-1], axis=0)
    counts = np.diff(bounds).astype(float)
    total, total_sq = sums.sum(axis=0), sq.sum(axis=0)
    n_splits = int(comb(s, s // 2, exact=True))
    combos = np.fromiter(itertools.chain.from_iterable(itertools.combinations(range(s), s // 2)), dtype=np.intp,
                         count=n_splits * (s // 2)).reshape(n_splits, s // 2)
    logits = np.empty(n_splits)
    step = max(1, max_cells // n)
    for lo in range(0, n_splits, step):
        member = np.zeros((min(step, n_splits - lo), s))
        np.put_along_axis(member, combos[lo:lo + step], 1.0, axis=1)
        is_sum, is_sq, is_n = member @ sums, member @ sq, member @ counts
        sr_in = _ratio(is_sum, is_sq, is_n[:, None])
        sr_out = _ratio(total - is_sum, total_sq - is_sq, (t - is_n)[:, None])
        omega = _rank_of(sr_out, np.argmax(sr_in, axis=1)) / (n + 1.0)
        logits[lo:lo + step] = np.log(omega / (1.0 - omega))
    return PBOResult(float(np.mean(logits <= 0.0)), logits, s, n_splits)
