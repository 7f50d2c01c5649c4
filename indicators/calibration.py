"""Empirical tail probabilities against a held-out reference sample (the calibration tail of a window)."""
from __future__ import annotations

import numpy as np

__all__ = ["lower_tail_pvalue", "upper_tail_pvalue"]


def upper_tail_pvalue(reference: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``(1 + #{ref >= x}) / (1 + n)``: how often the reference is at least as high as ``x``.

    >>> upper_tail_pvalue(np.array([1.0, 2.0, 3.0]), np.array([0.0, 2.5, 9.0])).tolist()
    [1.0, 0.5, 0.25]
    """
    ref = np.sort(np.asarray(reference, dtype=np.float64))
    above = ref.size - np.searchsorted(ref, np.asarray(x, dtype=np.float64), side="left")
    return (1.0 + above) / (1.0 + ref.size)


def lower_tail_pvalue(reference: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``(1 + #{ref <= x}) / (1 + n)``: how often the reference is at most as high as ``x``."""
    ref = np.sort(np.asarray(reference, dtype=np.float64))
    below = np.searchsorted(ref, np.asarray(x, dtype=np.float64), side="right")
    return (1.0 + below) / (1.0 + ref.size)
