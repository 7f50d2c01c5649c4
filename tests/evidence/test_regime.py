"""Regime scores: hand-computed accuracy and log loss."""
import numpy as np
import pytest

from btdensity.evidence.regime import accuracy, log_loss


def test_accuracy():
    assert accuracy([0, 1, 2, 3, np.nan], [0, 1, 3, 3, 2]) == 0.75
    assert accuracy([0, 1], [0, 2], per_bar=True).tolist() == [1.0, 0.0]


def test_log_loss_hand_values():
    prob = np.array([[0.7, 0.2, 0.1], [0.25, 0.5, 0.25], [np.nan, 0.5, 0.5], [0.0, 1.0, 0.0]])
    labels = np.array([0, 2, 1, 1])
    # -(log 0.7 + log 0.25 + log 1) / 3, the NaN row dropped
    assert log_loss(prob, labels) == pytest.approx(-(np.log(0.7) + np.log(0.25) + 0.0) / 3)
    assert log_loss(np.full((5, 4), 0.25), [0, 1, 2, 3, 0]) == pytest.approx(np.log(4))   # uniform: log K
    # a confident miss costs -log(eps) instead of infinity
    assert log_loss([[1.0, 0.0]], [1]) == pytest.approx(-np.log(1e-12))
    assert log_loss([[1.0, 0.0]], [1], eps=1e-3) == pytest.approx(-np.log(1e-3))


def test_log_loss_rejects_bad_input():
    with pytest.raises(ValueError, match="sum to 1"):
        log_loss([[0.6, 0.6]], [0])
    with pytest.raises(ValueError, match="class numbers"):
        log_loss([[0.5, 0.5]], [2])
    with pytest.raises(ValueError, match="class numbers"):
        log_loss([[0.5, 0.5]], [0.5])
