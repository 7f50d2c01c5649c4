"""Rows of forecasts and outcomes, bar by bar: NaN means "no forecast here", and a row counts only when every
input has a value in it. Every score in :mod:`btdensity.evidence` goes through :func:`complete_rows`, so they all
drop the same rows, and all raise :class:`InsufficientData` when too few are left."""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["InsufficientData", "complete_rows", "mean_or_per_bar", "scatter"]


class InsufficientData(ValueError):
    """Fewer complete rows (no NaN in any input) than a score needs; a ``ValueError``, so a scorecard can catch it
    alone and report "not enough forecasts" for that cell."""


def complete_rows(need: int = 1, **inputs: Any) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """The rows where no input is NaN, and each input restricted to them, in the order given.

    Inputs are array-likes of floats (bools and ints convert; ``None`` becomes NaN): a scalar applies to every
    row, a 1-D array has one value a row, a 2-D array one row of values a row (the row is dropped when any of
    them is NaN). All non-scalar inputs must have the same number of rows ``n``. Only NaN drops a row: an
    infinite value (a log density of ``-inf``, say) is a real value and stays.

    Returns ``(keep, arrays)``: ``keep`` is a boolean mask over the ``n`` rows, each array has ``keep.sum()``
    rows. Raises :class:`InsufficientData` when fewer than ``need`` rows are complete.

    >>> keep, (y, mu) = complete_rows(y=[1.0, np.nan, 3.0], mu=0.5)
    >>> keep.tolist(), y.tolist(), mu.tolist()
    ([True, False, True], [1.0, 3.0], [0.5, 0.5])
    """
    arrays = {}
    for name, value in inputs.items():
        a = np.asarray(value, dtype=np.float64)
        if a.ndim > 2:
            raise ValueError(f"{name} must be a scalar, a 1-D or a 2-D array; got shape {a.shape}")
        arrays[name] = a
    lengths = {name: a.shape[0] for name, a in arrays.items() if a.ndim > 0}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"inputs must have the same number of rows; got {lengths}")
    n = next(iter(lengths.values()), 1)
    keep = np.ones(n, dtype=bool)
    for a in arrays.values():
        missing = np.isnan(a)
        keep &= ~(missing.reshape(a.shape[0], -1).any(axis=1) if a.ndim else np.broadcast_to(missing, n))
    kept = int(keep.sum())
    if kept < need:
        raise InsufficientData(f"needs at least {need} complete row(s) (no NaN in {', '.join(arrays)}); "
                               f"got {kept} of {n}")
    return keep, tuple(a[keep] if a.ndim else np.full(kept, float(a)) for a in arrays.values())


def scatter(keep: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` of the kept rows back in place over all rows, NaN in the dropped ones."""
    out = np.full(keep.shape[0], np.nan)
    out[keep] = values
    return out


def mean_or_per_bar(keep: np.ndarray, values: np.ndarray, per_bar: bool) -> float | np.ndarray:
    """The mean of the kept rows' ``values``, or (``per_bar``) the values aligned with the input rows, NaN where
    a row was dropped: the form :func:`btdensity.evidence.comparison.block_bootstrap_mean_diff` compares."""
    return scatter(keep, values) if per_bar else float(np.mean(values))
