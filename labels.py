"""What the model indicators' labels and categorical lines mean, in plain numpy (no torch, no backtrader):
the forward log return a label-using indicator learns, and the names of the ``Regime`` classes. Reports read
these without loading the models."""
from __future__ import annotations

import numpy as np

__all__ = ["REGIME_NAMES", "forward_log_returns"]

#: ``Regime.regime`` line values index this tuple
REGIME_NAMES = ("bull", "bear", "ranging", "volatile")


def forward_log_returns(close: np.ndarray, horizon: int) -> np.ndarray:
    """``log(close[t + horizon] / close[t])``, NaN where the future is not there yet.

    >>> forward_log_returns(np.array([1.0, np.e, np.e]), 1)
    array([ 1.,  0., nan])
    """
    close = np.asarray(close, dtype=np.float64)
    out = np.full(close.shape[0], np.nan)
    if horizon < close.shape[0]:
        out[:close.shape[0] - horizon] = np.log(close[horizon:] / close[:close.shape[0] - horizon])
    return out
