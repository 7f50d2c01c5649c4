"""Empirical tail probabilities against a held-out reference sample (the calibration tail of a window).

The reference is sorted once, when a window is calibrated (``sorted_reference``); each bar then costs one
binary search.
"""
from __future__ import annotations

import numpy as np

__all__ = ["lower_tail_pvalue", "sorted_reference", "upper_tail_pvalue"]


def sorted_reference(values: np.ndarray) -> np.ndarray:
    """The reference sample as the p-value functions take it: float64, sorted ascending, read-only."""
    ref = np.sort(np.asarray(values, dtype=np.float64).ravel())
    ref.flags.writeable = False
    return ref


def upper_tail_pvalue(ref: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``(1 + #{ref >= x}) / (1 + n)``: how often the reference (from ``sorted_reference``) is at least as high
    as ``x``.

    >>> upper_tail_pvalue(sorted_reference(np.array([3.0, 1.0, 2.0])), np.array([0.0, 2.5, 9.0])).tolist()
    [1.0, 0.5, 0.25]
    """
    above = ref.size - np.searchsorted(ref, x, side="left")
    return (1.0 + above) / (1.0 + ref.size)


def lower_tail_pvalue(ref: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``(1 + #{ref <= x}) / (1 + n)``: how often the reference (from ``sorted_reference``) is at most as high
    as ``x``.

    >>> lower_tail_pvalue(sorted_reference(np.array([3.0, 1.0, 2.0])), np.array([0.0, 2.5, 9.0])).tolist()
    [0.25, 0.75, 1.0]
    """
    below = np.searchsorted(ref, x, side="right")
    return (1.0 + below) / (1.0 + ref.size)
