"""Ranking and detection: how well a score picks out rare events (big moves, anomalies).

* :func:`auroc` -- area under the ROC curve (0.5 = chance, 1 = every event outranks every non-event);
* :func:`precision_at_k` -- share of events among the k highest scores;
* :func:`top_share_labels` -- the event "this bar's forward absolute return is in its top share";
* :func:`anomaly_windows` -- the runs of a per-bar truth mask as (start, end) windows;
* :func:`detection_latency` -- bars from each anomaly window's start to the first alarm inside it.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np
from scipy import stats

from .rows import InsufficientData, complete_rows, scatter

__all__ = ["Detection", "anomaly_windows", "auroc", "detection_latency", "precision_at_k", "top_share_labels"]


def _labels(name: str, label: np.ndarray) -> np.ndarray:
    if not np.isin(label, (0.0, 1.0)).all():
        raise ValueError(f"{name} must be 0 / 1 (or booleans), NaN where unknown")
    return label.astype(bool)


def _scored(score: Any, label: Any) -> tuple[np.ndarray, np.ndarray]:
    """Complete rows of a 1-D score and its 0/1 label, with at least one event and one non-event."""
    _, (score, label) = complete_rows(need=2, score=score, label=label)
    if score.ndim != 1:
        raise ValueError(f"score and label must be 1-D; got shape {score.shape}")
    positive = _labels("label", label)
    if positive.all() or not positive.any():
        raise InsufficientData(f"needs both events and non-events; got {int(positive.sum())} of {positive.size}")
    return score, positive


def auroc(score: Any, label: Any) -> float:
    """Probability that an event's score exceeds a non-event's, ties counted one half:

        AUROC = (R_1 - n_1 (n_1 + 1) / 2) / (n_1 n_0) = U / (n_1 n_0),

    R_1 the sum of the events' ranks among all scores (average ranks for ties), U the Mann–Whitney statistic
    (Hanley & McNeil 1982). Needs at least one event and one non-event among the complete rows.

    >>> auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75
    """
    score, positive = _scored(score, label)
    n1, n0 = int(positive.sum()), int((~positive).sum())
    ranks = stats.rankdata(score)   # average ranks
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def precision_at_k(score: Any, label: Any, k: int) -> float:
    """Share of events among the ``k`` highest-scoring complete rows.

    Ties at the k-th score are resolved by expectation, not by row order: the rows strictly above the k-th
    score count in full, and the remaining places are filled at the event share of the rows tied at it (the
    mean precision over all orders of the ties). Compare with the base rate, the share of events overall.
    Needs ``k`` complete rows with at least one event and one non-event.

    >>> precision_at_k([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0], k=2)   # 1 + one place at the tie's share 1/2
    0.75
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1; got {k!r}")
    score, positive = _scored(score, label)
    if k > score.size:
        raise InsufficientData(f"k = {k} exceeds the {score.size} complete rows")
    kth = np.sort(score)[::-1][k - 1]
    above, tied = score > kth, score == kth
    filled = positive[above].sum() + (k - above.sum()) * positive[tied].mean()
    return float(filled / k)


def top_share_labels(abs_forward_return: Any, share: float) -> np.ndarray:
    """1.0 where a bar's value is among the top ``share`` of all complete bars, 0.0 elsewhere, NaN where the
    value is NaN (the last bars, whose future is not known yet): the event "the next h bars' absolute return
    is in its top 1 % / 5 %", whose prediction :func:`auroc` and :func:`precision_at_k` score.

    The threshold is the m-th largest value, m = ceil(share * n); ties with it are all events. It uses the whole
    sample, which is right for a ground-truth label (never for a forecast's input). The result is float, not
    bool, so that "unknown" can be NaN; ``labels == 1`` is the boolean. Values must be >= 0 (pass ``abs(r)``).
    Needs ceil(1 / share) complete rows (so that one row is at most ``share`` of them).

    >>> top_share_labels([0.1, 0.5, np.nan, 0.3, 0.2], share=0.25).tolist()
    [0.0, 1.0, nan, 0.0, 0.0]
    """
    if not 0.0 < share < 1.0:
        raise ValueError(f"share must be in (0, 1); got {share}")
    keep, (x,) = complete_rows(need=int(np.ceil(1.0 / share - 1e-9)), abs_forward_return=abs_forward_return)
    if x.ndim != 1:
        raise ValueError(f"abs_forward_return must be 1-D; got shape {x.shape}")
    if (x < 0).any():
        raise ValueError("abs_forward_return must be >= 0; pass the absolute forward returns")
    m = int(np.ceil(share * x.size - 1e-9))
    threshold = np.partition(x, x.size - m)[x.size - m]
    return scatter(keep, (x >= threshold).astype(np.float64))


def anomaly_windows(mask: Any) -> list[tuple[int, int]]:
    """The runs of True in a per-bar truth mask (e.g. the synthetic market's ``anomaly`` column) as half-open
    (start, end) index windows.

    >>> anomaly_windows([0, 1, 1, 0, 0, 1])
    [(1, 3), (5, 6)]
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 1:
        raise ValueError(f"mask must be 1-D; got shape {m.shape}")
    edges = np.diff(np.concatenate(([0], m.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


class Detection(NamedTuple):
    """Per window: ``latency`` (bars from its start to the first alarm in it; NaN when missed or not scored) and
    ``scored`` (False when the alarm has no value on some bar of it). Summary over the scored windows:
    ``detected_share``, ``median_latency`` of the detected ones (NaN if none), ``false_alarm_rate`` (share of
    alarms on the bars with a value outside every window: an alarm that is always on detects everything with
    latency 0, this is its price), ``n_scored``."""
    latency: np.ndarray
    scored: np.ndarray
    detected_share: float
    median_latency: float
    false_alarm_rate: float
    n_scored: int


def detection_latency(alarm: Any, windows: Sequence[tuple[int, int]]) -> Detection:
    """For each ground-truth anomaly window [start, end) (half-open bar indices, as :func:`anomaly_windows`
    gives), the number of bars from ``start`` to the first bar inside the window with ``alarm == 1`` (0 = raised
    on the first bar); NaN when no alarm is raised inside (missed). ``alarm`` is 0 / 1 per bar, NaN where there
    is no forecast; a window with a NaN bar is not scored. Needs 1 scored window.

    >>> d = detection_latency([0, 0, 1, 0, 1, 0, 0, 0], [(1, 3), (5, 7)])
    >>> d.latency.tolist(), d.detected_share, d.false_alarm_rate   # found 1 bar in; missed; 1 alarm in 4 bars
    ([1.0, nan], 0.5, 0.25)
    """
    a = np.asarray(alarm, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"alarm must be 1-D; got shape {a.shape}")
    known = ~np.isnan(a)
    on = _labels("alarm", a[known])
    fired = np.zeros(a.size, dtype=bool)
    fired[known] = on
    outside = known.copy()
    latency = np.full(len(windows), np.nan)
    scored = np.zeros(len(windows), dtype=bool)
    for i, (start, end) in enumerate(windows):
        if not 0 <= start < end <= a.size:
            raise ValueError(f"window {i} = ({start}, {end}) is not a half-open range inside [0, {a.size})")
        outside[start:end] = False
        scored[i] = known[start:end].all()
        hits = np.flatnonzero(fired[start:end])
        if scored[i] and hits.size:
            latency[i] = float(hits[0])
    if not scored.any():
        raise InsufficientData(f"needs 1 window whose bars all have an alarm value; got 0 of {len(windows)}")
    found = latency[scored][~np.isnan(latency[scored])]
    return Detection(latency, scored, float(found.size / scored.sum()),
                     float(np.median(found)) if found.size else float("nan"),
                     float(fired[outside].mean()) if outside.any() else float("nan"), int(scored.sum()))
