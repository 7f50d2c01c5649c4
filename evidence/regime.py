"""Regime classification scores: the share of bars labelled right, and the log loss of the class
probabilities (the proper score: it rewards a forecast that knows when it is unsure)."""
from __future__ import annotations

from typing import Any

import numpy as np

from .rows import complete_rows, mean_or_per_bar

__all__ = ["accuracy", "log_loss"]


def accuracy(pred_labels: Any, true_labels: Any, per_bar: bool = False) -> float | np.ndarray:
    """Share of complete rows where the predicted label equals the true one (or, ``per_bar``, each bar's
    1 / 0 hit, NaN where dropped). Labels are class numbers, NaN where unknown. Needs 1 row.

    >>> accuracy([0, 1, 2, np.nan], [0, 2, 2, 1])
    0.6666666666666666
    """
    keep, (pred, true) = complete_rows(pred_labels=pred_labels, true_labels=true_labels)
    if pred.ndim != 1:
        raise ValueError(f"labels must be 1-D; got shape {pred.shape}")
    return mean_or_per_bar(keep, (pred == true).astype(np.float64), per_bar)


def log_loss(prob_matrix: Any, true_labels: Any, eps: float = 1e-12, per_bar: bool = False) -> float | np.ndarray:
    """Mean negative log probability given to the class that occurred (nats; lower is better):

        LL = -(1 / n) sum_t log max(p_{t, y_t}, eps),

    the multi-class logarithmic score (Good 1952; Gneiting & Raftery 2007, sec. 3). ``prob_matrix`` has one row
    of K class probabilities a bar (each row sums to 1 within 1e-6; a row with a NaN is dropped), ``true_labels``
    the class numbers 0 .. K - 1. ``eps`` bounds one confident miss at -log(eps) (27.6 nats by default) instead
    of infinity. A uniform forecast scores log K. Needs 1 row.

    >>> round(log_loss([[0.5, 0.5], [0.9, 0.1]], [1, 0]), 6)   # (log 2 - log 0.9) / 2
    0.399254
    """
    if not 0.0 < eps < 1.0:
        raise ValueError(f"eps must be in (0, 1); got {eps}")
    keep, (prob, label) = complete_rows(prob_matrix=prob_matrix, true_labels=true_labels)
    if prob.ndim != 2 or label.ndim != 1:
        raise ValueError(f"prob_matrix must be (n, K) and true_labels (n,); got {prob.shape} and {label.shape}")
    n_classes = prob.shape[1]
    if not (np.isin(label, np.arange(n_classes))).all():
        raise ValueError(f"true_labels must be class numbers in 0 .. {n_classes - 1}")
    if (prob < 0).any() or (np.abs(prob.sum(axis=1) - 1.0) > 1e-6).any():
        raise ValueError("each row of prob_matrix must be probabilities (>= 0) that sum to 1")
    p = prob[np.arange(prob.shape[0]), label.astype(np.intp)]
    return mean_or_per_bar(keep, -np.log(np.maximum(p, eps)), per_bar)
