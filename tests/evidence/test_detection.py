"""Ranking and detection scores against brute force and hand-counted cases."""
import itertools

import numpy as np
import pytest
from scipy import stats

from btdensity.evidence.detection import (anomaly_windows, auroc, detection_latency, precision_at_k,
                                          top_share_labels)
from btdensity.evidence.rows import InsufficientData


def _pairs_auroc(score, label):
    """Every (event, non-event) pair: 1 when the event scores higher, 1/2 on a tie."""
    pos, neg = score[label == 1], score[label == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (pos.size * neg.size)


def test_auroc_equals_brute_force_pair_count_and_mann_whitney():
    rng = np.random.default_rng(0)
    for _ in range(20):
        label = (rng.random(300) < 0.2).astype(float)
        score = rng.integers(0, 6, size=300) + label * rng.integers(0, 3, size=300)   # many ties
        expected = _pairs_auroc(score, label)
        assert auroc(score, label) == pytest.approx(expected, rel=1e-12)
        u = stats.mannwhitneyu(score[label == 1], score[label == 0]).statistic
        assert auroc(score, label) == pytest.approx(u / ((label == 1).sum() * (label == 0).sum()), rel=1e-12)


def test_auroc_orientation_and_edge_cases():
    assert auroc([1.0, 2.0, 3.0, 4.0], [0, 0, 1, 1]) == 1.0
    assert auroc([1.0, 2.0, 3.0, 4.0], [1, 1, 0, 0]) == 0.0
    assert auroc([5.0, 5.0, 5.0, 5.0], [1, 0, 1, 0]) == 0.5
    assert auroc([1.0, np.nan, 3.0, 2.0], [0, 1, 1, np.nan]) == 1.0      # rows with a NaN are dropped
    with pytest.raises(InsufficientData, match="events and non-events"):
        auroc([1.0, 2.0], [1, 1])
    with pytest.raises(ValueError, match="0 / 1"):
        auroc([1.0, 2.0], [0, 2])


def test_precision_at_k_equals_the_mean_over_orders_of_the_ties():
    score = np.array([0.9, 0.7, 0.7, 0.7, 0.7, 0.2, 0.1])
    label = np.array([1, 1, 0, 0, 1, 1, 0])
    for k in range(1, 8):
        tied = np.flatnonzero(score == 0.7)
        precisions = []
        for order in itertools.permutations(tied):   # every way a sort could break the tie
            ranking = np.concatenate([[0], order, [5, 6]])
            precisions.append(label[ranking[:k]].mean())
        assert precision_at_k(score, label, k) == pytest.approx(np.mean(precisions), rel=1e-12), k
    assert precision_at_k(score, label, 1) == 1.0
    with pytest.raises(InsufficientData):
        precision_at_k(score, label, 8)
    with pytest.raises(ValueError, match="k must be"):
        precision_at_k(score, label, 0)


def test_top_share_labels_marks_the_top_share():
    rng = np.random.default_rng(1)
    x = np.abs(rng.normal(size=1000))
    x[-3:] = np.nan
    labels = top_share_labels(x, 0.01)
    assert np.isnan(labels[-3:]).all()
    assert np.nansum(labels) == 10                                   # ceil(0.01 * 997)
    assert x[labels == 1].min() > x[labels == 0].max()
    assert np.nansum(top_share_labels(x, 0.05)) == 50
    assert top_share_labels([1.0, 3.0, 3.0, 2.0], 0.25).tolist() == [0.0, 1.0, 1.0, 0.0]   # ties at the threshold
    with pytest.raises(InsufficientData):
        top_share_labels(x[:50], 0.01)                                # 50 rows cannot hold a top 1 %
    with pytest.raises(ValueError, match=">= 0"):
        top_share_labels(-x[:-3], 0.05)


def test_anomaly_windows():
    assert anomaly_windows([1, 1, 0, 0, 1, 0, 1, 1]) == [(0, 2), (4, 5), (6, 8)]
    assert anomaly_windows(np.zeros(5, dtype=bool)) == []


def test_detection_latency_counts_bars_from_window_start():
    alarm = np.array([0, 0, 0, 1, 0, 0, 0, 0, 1, 1, np.nan, 0, 0, 1, 0])
    windows = [(1, 5), (5, 8), (8, 9), (10, 12), (12, 15)]
    result = detection_latency(alarm, windows)
    # (1, 5): first alarm at bar 3 -> 2 bars; (5, 8): none -> missed; (8, 9): at once -> 0;
    # (10, 12): bar 10 has no forecast -> not scored; (12, 15): bar 13 -> 1
    assert result.latency == pytest.approx([2.0, np.nan, 0.0, np.nan, 1.0], nan_ok=True)
    assert result.scored.tolist() == [True, True, True, False, True]
    assert result.n_scored == 4
    assert result.detected_share == 0.75
    assert result.median_latency == 1.0
    # bars outside every window with a value: 0 and 9; the alarm is on at 9
    assert result.false_alarm_rate == 0.5


def test_detection_latency_always_on_alarm_pays_in_false_alarms():
    windows = [(3, 6), (10, 12)]
    on = detection_latency(np.ones(20), windows)
    assert on.detected_share == 1.0 and on.median_latency == 0.0 and on.false_alarm_rate == 1.0
    off = detection_latency(np.zeros(20), windows)
    assert off.detected_share == 0.0 and np.isnan(off.median_latency) and off.false_alarm_rate == 0.0
    with pytest.raises(InsufficientData):
        detection_latency(np.full(20, np.nan), windows)
    with pytest.raises(ValueError, match="half-open"):
        detection_latency(np.ones(20), [(5, 5)])
