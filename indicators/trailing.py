"""Trailing statistics of closes, the inputs of the classical baseline indicators: causal (the value at bar ``t``
reads bars ``t - lookback … t``), NaN until the lookback is full, and computed over fixed windows, so a bar's
value is the same number from the whole history or from its last ``lookback + 1`` bars (the batched and the
bar-by-bar paths agree exactly). Log returns and momentum are those of ``features.py`` (``ret_1``, ``ret_24``).
"""
from __future__ import annotations

import numpy as np

from .features import _lag, _rolling, _windows

__all__ = ["log_returns", "momentum", "realized_volatility", "trailing_windows"]


def log_returns(close: np.ndarray) -> np.ndarray:
    """``log(close[t] / close[t - 1])``, NaN at bar 0 (``ret_1`` of the features).

    >>> log_returns(np.array([1.0, np.e, np.e])).tolist()
    [nan, 1.0, 0.0]
    """
    logc = np.log(np.asarray(close, dtype=np.float64))
    return np.concatenate(([np.nan], np.diff(logc)))


def trailing_windows(x: np.ndarray, size: int) -> np.ndarray:
    """Row ``t`` holds ``x[t - size + 1 … t]``, oldest first; rows before ``size - 1`` are padded with NaN in front.
    A read-only view of shape ``(len(x), size)`` (no copy of the rows).

    >>> trailing_windows(np.array([1.0, 2.0, 3.0]), 2).tolist()
    [[nan, 1.0], [1.0, 2.0], [2.0, 3.0]]
    """
    padded = np.concatenate((np.full(size - 1, np.nan), np.asarray(x, dtype=np.float64)))
    rows = _windows(padded, size)
    rows.flags.writeable = False
    return rows


def realized_volatility(close: np.ndarray, window: int) -> np.ndarray:
    """Root mean square of the last ``window`` log returns (not demeaned), NaN before bar ``window``.

    >>> realized_volatility(np.exp([0.0, 0.3, 0.0, 0.4]), 2).round(6).tolist()
    [nan, nan, 0.3, 0.353553]
    """
    r = log_returns(close)
    return np.sqrt(_rolling(r * r, window, lambda w: w.sum(axis=-1) / window))


def momentum(close: np.ndarray, bars: int) -> np.ndarray:
    """``log close[t] - log close[t - bars]``: the trailing log return over ``bars`` bars, NaN before bar ``bars``.

    >>> momentum(np.exp([0.0, 0.1, 0.3]), 2).round(6).tolist()
    [nan, nan, 0.3]
    """
    logc = np.log(np.asarray(close, dtype=np.float64))
    return logc - _lag(logc, bars)
