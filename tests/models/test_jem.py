"""JointEnergyClassifier on synthetic_market's ground truth: regimes as labels, anomalies as outliers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from feeds import synthetic_market
from feeds.synthetic import REGIMES
from models.jem import JointEnergyClassifier, expected_calibration_error


def regime_features(df: pd.DataFrame) -> np.ndarray:
    """Causal features: shock sizes against the past 24 bars (anomalies) and volatility / volume levels (regimes)."""
    ret = np.log(df.close).diff()
    vol = ret.rolling(24).std().shift(1)
    log_volume = np.log(df.volume)
    volume_z = (log_volume - log_volume.rolling(24).mean().shift(1)) / log_volume.rolling(24).std().shift(1)
    return np.column_stack([
        ret / vol, volume_z, np.log(df.high / df.low) / vol,
        np.log(ret.abs().rolling(12).median()), np.log(ret.rolling(48).std()), log_volume.rolling(24).median(),
    ])


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    ranks = rankdata(scores)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@pytest.fixture(scope="module")
def market():
    df = synthetic_market(5000, seed=5, anomaly_rate=0.01)
    X = regime_features(df)
    y = pd.Categorical(df.regime.astype(str), categories=list(REGIMES)).codes.astype(np.int64)
    anomaly = df.anomaly.to_numpy()
    ok = np.isfinite(X).all(1)
    early = np.arange(len(df)) < 3000
    train, test = ok & early & ~anomaly, ok & ~early
    model = JointEnergyClassifier(X.shape[1], len(REGIMES), hidden=(32, 32), sgld_steps=10, seed=0)
    model.fit(X[train], y[train], epochs=15)
    return model, X[test], y[test], anomaly[test]


def test_regime_accuracy(market):
    model, X, y, _ = market
    assert len(np.unique(y)) >= 3
    accuracy = (model.predict(X) == y).mean()
    assert accuracy >= 0.6, f"accuracy {accuracy:.3f}"
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)
    # it is better than always predicting the most frequent class
    assert accuracy > np.bincount(y).max() / len(y) + 0.1


def test_energy_ranks_anomalies_above_normal_bars(market):
    model, X, _, anomaly = market
    assert anomaly.sum() >= 10
    score = auroc(model.energy(X), anomaly)
    assert score >= 0.8, f"AUROC {score:.3f}"


def test_energy_is_minus_logsumexp_of_the_logits(market):
    model, X, _, _ = market
    import torch
    with torch.no_grad():
        logits = model.module(model._prepare(X[:50])).double().numpy()
    expected = -np.logaddexp.reduce(logits, axis=1) - model.scaler.log_det
    np.testing.assert_allclose(model.energy(X[:50]), expected, atol=1e-4)


def test_calibration_error_is_reported_and_small(market):
    model, X, y, _ = market
    ece = expected_calibration_error(model.predict_proba(X), y)
    assert 0.0 <= ece < 0.2


def test_expected_calibration_error_hand_computed():
    proba = np.array([[0.95, 0.05], [0.85, 0.15], [0.4, 0.6], [0.3, 0.7], [0.55, 0.45]])
    y = np.array([0, 1, 1, 0, 0])
    # bins of width 0.5 (n_bins=2): [0.5, 1.0] holds all five confidences 0.95, 0.85, 0.6, 0.7, 0.55
    # with correctness 1, 0, 1, 0, 1: |3/5 − 3.65/5| = 0.13.
    assert expected_calibration_error(proba, y, n_bins=2) == pytest.approx(0.13)
    # ten bins: 0.95 → bin 9 (correct), 0.85 → bin 8 (wrong), 0.6 → bin 6 (correct), 0.7 → bin 7 (wrong),
    # 0.55 → bin 5 (correct): (0.05 + 0.85 + 0.4 + 0.7 + 0.45) / 5 = 0.49
    assert expected_calibration_error(proba, y, n_bins=10) == pytest.approx(0.49)
    assert expected_calibration_error(np.eye(3), [0, 1, 2]) == 0.0
    with pytest.raises(ValueError, match="labels outside"):
        expected_calibration_error(proba, [0, 1, 2, 0, 0])


def test_save_load_and_seed_determinism(tmp_path):
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(-1, 1, (100, 3)), rng.normal(1, 1, (100, 3))]
    y = np.r_[np.zeros(100), np.ones(100)].astype(int)
    kw = dict(hidden=(8,), buffer_size=200, sgld_steps=3)
    a = JointEnergyClassifier(3, 2, seed=1, **kw).fit(X, y, epochs=2)
    b = JointEnergyClassifier(3, 2, seed=1, **kw).fit(X, y, epochs=2)
    c = JointEnergyClassifier(3, 2, seed=2, **kw).fit(X, y, epochs=2)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    np.testing.assert_array_equal(a.energy(X), b.energy(X))
    assert not np.allclose(a.energy(X), c.energy(X))
    a.save(tmp_path / "jem.pt")
    loaded = JointEnergyClassifier.load(tmp_path / "jem.pt")
    np.testing.assert_array_equal(loaded.predict_proba(X), a.predict_proba(X))
    np.testing.assert_array_equal(loaded.energy(X), a.energy(X))


def test_bad_input_raises_value_error_naming_the_problem():
    X = np.random.default_rng(0).normal(size=(50, 3))
    y = np.arange(50) % 3
    with pytest.raises(ValueError, match="n_classes"):
        JointEnergyClassifier(3, 1)
    model = JointEnergyClassifier(3, 3, hidden=(4,), generative_weight=0.0)
    with pytest.raises(ValueError, match="rows"):
        model.fit(X, y[:-1])
    with pytest.raises(ValueError, match="outside"):
        model.fit(X, y + 1)
    with pytest.raises(ValueError, match="integer class labels"):
        model.fit(X, y + 0.5)
    with pytest.raises(ValueError, match="n_features=3"):
        model.fit(X[:, :2], y)
    with pytest.raises(ValueError, match="y_val"):
        model.fit(X, y, X_val=X)
    bad = X.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.fit(bad, y)
    model.fit(X, y, epochs=1)
    with pytest.raises(ValueError, match="2-D"):
        model.predict(X[0])
