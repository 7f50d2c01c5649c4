"""What a forecast indicator's lines say, in numpy and scipy only: the predictive law of the forward log return is
a location-scale Student-t, ``mean + std · T`` with T a unit-variance t (a Gaussian in the limit), as both the BNN
(Student-t likelihood, recalibrated) and GARCH-t forecasts are. Its degrees of freedom are read off the lines: the
half-width of the central interval at the indicator's ``level`` over its ``std`` is the unit-variance t's central
quantile, which fixes ``df``. The scorecard and the adaptive intervals both read forecasts this way."""
from __future__ import annotations

import numpy as np
from scipy.special import ndtri, stdtrit   # scipy.special, not scipy.stats: half a second less to import

__all__ = ["df_from_interval", "unit_t_quantile"]

#: degrees of freedom of the grid ``df`` is read from; an interval as wide as a Gaussian's or wider reads as inf
_DF_GRID = np.geomspace(2.05, 400.0, 600)


def unit_t_quantile(p: np.ndarray | float, df: np.ndarray | float) -> np.ndarray:
    """The ``p`` quantile of a unit-variance Student-t with ``df`` > 2 (``inf``: the standard normal).

    >>> float(unit_t_quantile(0.975, np.inf)).__round__(3), float(unit_t_quantile(0.975, 5.0)).__round__(3)
    (1.96, 1.991)
    """
    p, df = np.broadcast_arrays(np.asarray(p, dtype=np.float64), np.asarray(df, dtype=np.float64))
    finite = np.isfinite(df)
    safe = np.where(finite, df, 3.0)
    return np.where(finite, stdtrit(safe, p) * np.sqrt((safe - 2.0) / safe), ndtri(p))


def df_from_interval(std: np.ndarray, lower: np.ndarray, upper: np.ndarray, level: float) -> np.ndarray:
    """Per bar, the ``df`` whose unit-variance t has the central ``level`` interval ``[lower, upper]`` for ``std``
    (``inf`` for a Gaussian's width; NaN where a line is missing)."""
    ratio = (np.asarray(upper, dtype=np.float64) - np.asarray(lower, dtype=np.float64)) / (2.0 * np.asarray(std))
    p = (1.0 + level) / 2.0
    grid = unit_t_quantile(p, _DF_GRID)
    order = np.argsort(grid)
    df = np.interp(ratio, grid[order], _DF_GRID[order], left=_DF_GRID[order][0], right=np.inf)
    df[np.abs(ratio - ndtri(p)) < 1e-6] = np.inf
    df[~np.isfinite(ratio)] = np.nan
    return df
