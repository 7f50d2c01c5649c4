"""VolatilityRegime: class probabilities of a volatility forecast's scenarios, against an analytic truth, a count by
hand, and the window's own fit."""
import numpy as np
import pytest
from scipy.stats import norm

from btdensity.feeds import synthetic_market
from btdensity.indicators.features import VOLATILITY_FEATURES, market_features
from btdensity.indicators.regime import REGIME_NAMES, forward_rows, label_regimes, regime_thresholds
from btdensity.indicators.volatility_regime import VolatilityRegime, VolatilityRegimeForecast

from .conftest import run_alone

A, B, SIGMA = -4.0, 0.6, 0.3      # log V = A + B x + SIGMA e;  R = z V with z standard normal, independent of e


def simulated(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    vol = np.exp(A + B * x + SIGMA * rng.normal(size=n))
    return x[:, None], np.column_stack([rng.normal(size=n) * vol, vol])


def true_proba(x, half_sd, vol_cut):
    """P(class | x) by quadrature over log V: volatile above the cut; below it bull / bear when |z V| > half_sd."""
    u = np.linspace(A + B * x - 8 * SIGMA, np.log(vol_cut), 4001)
    density = norm.pdf(u, A + B * x, SIGMA)
    bull = np.trapezoid(density * norm.sf(half_sd / np.exp(u)), u)
    volatile = norm.sf(np.log(vol_cut), A + B * x, SIGMA)
    return np.array([bull, bull, 1.0 - volatile - 2 * bull, volatile])


def test_recovers_the_regression_and_the_true_class_probabilities():
    X, y = simulated(6000, seed=0)
    model = VolatilityRegimeForecast(1).fit(X[:4000], y[:4000], X[4000:], y[4000:])
    np.testing.assert_allclose(model.thresholds_, regime_thresholds(y[:4000]))   # thresholds of the fit rows
    np.testing.assert_allclose(model.coef_, [A, B], atol=0.02)
    grid = np.linspace(-2.5, 2.5, 11)
    got = model.predict_proba(grid[:, None])
    truth = np.array([true_proba(x, *model.thresholds_) for x in grid])
    np.testing.assert_allclose(truth.sum(axis=1), 1.0, atol=1e-6)
    assert np.abs(got - truth).max() < 0.025              # 6,000 pairs: sampling error ~0.006 a class
    assert got[0, 3] < 0.01 and got[-1, 3] > 0.99         # calm states are never volatile, wild ones always
    # out of sample its log loss is the truth's within 0.01 nats, far below a forecast that ignores x
    X2, y2 = simulated(3000, seed=1)
    labels = label_regimes(y2, *model.thresholds_)
    p = model.predict_proba(X2)
    t = np.array([true_proba(x, *model.thresholds_) for x in X2[:, 0]])
    loss, true_loss = (-np.log(q[np.arange(len(labels)), labels]).mean() for q in (p, t))
    marginal = np.bincount(label_regimes(y, *model.thresholds_), minlength=4) / len(y)
    assert loss - true_loss < 0.01 and loss < -np.log(marginal[labels]).mean() - 0.2


def test_probabilities_are_hand_counted_scenario_shares():
    X, y = simulated(40, seed=2)
    model = VolatilityRegimeForecast(1, smoothing=0.5).fit(X, y)
    half_sd, vol_cut = model.thresholds_
    rows = np.array([[-1.0], [0.0], [1.5]])
    for row, proba in zip(rows, model.predict_proba(rows)):
        counts = [0] * 4
        forecast = model.coef_[0] + model.coef_[1] * row[0]
        for residual, ratio in model.pairs_:          # each fitted row's residual and return / volatility
            vol = np.exp(forecast + residual)
            ret = ratio * vol
            name = ("volatile" if vol > vol_cut else "bull" if ret > half_sd else "bear" if ret < -half_sd
                    else "ranging")
            counts[REGIME_NAMES.index(name)] += 1
        np.testing.assert_allclose(proba, (np.array(counts) + 0.5) / (40 + 4 * 0.5), rtol=1e-12)


def test_flat_rows_and_bad_input():
    X, y = simulated(50, seed=3)
    y[:5] = 0.0                                          # flat stretches: no return, no volatility
    model = VolatilityRegimeForecast(1).fit(X, y)
    assert np.isfinite(model.pairs_).all() and (model.pairs_[:5, 1] == 0).all()
    with pytest.raises(ValueError, match=r"X must have shape \(n, 1\)"):
        model.predict_proba(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="needs more rows than coefficients"):
        VolatilityRegimeForecast(1).fit(X[:2], y[:2])
    with pytest.raises(RuntimeError, match="not fitted yet"):
        VolatilityRegimeForecast(1).predict_proba(X)
    with pytest.raises(ValueError, match="smoothing must be >= 0"):
        VolatilityRegimeForecast(1, smoothing=-1)


def test_save_load_round_trip(tmp_path):
    X, y = simulated(200, seed=4)
    model = VolatilityRegimeForecast(1, smoothing=2.0).fit(X, y)
    model.save(tmp_path / "v.json", meta={"key": "k"})
    loaded = VolatilityRegimeForecast.load(tmp_path / "v.json")
    assert loaded.meta_ == {"key": "k"} and loaded.smoothing == 2.0
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))   # to the bit
    with pytest.raises(ValueError, match="not a VolatilityRegimeForecast"):
        from btdensity.indicators.persistence import RegimeTransitions
        RegimeTransitions().fit(y, y).save(tmp_path / "t.json")
        VolatilityRegimeForecast.load(tmp_path / "t.json")


def test_indicator_lines_are_the_window_models_probabilities():
    df = synthetic_market(1000, seed=8)
    ind, lines = run_alone(lambda data: VolatilityRegime(data, horizon=24, train_bars=300, retrain_every=200,
                                                         cache_dir=None), df)
    assert ind.spec.first_fit == 48 + 300 + 24          # Regime's schedule
    bars = [df[k].to_numpy() for k in ("open", "high", "low", "close", "volume")]
    X, fwd = market_features(*bars, spec=VOLATILITY_FEATURES), forward_rows(df["close"].to_numpy(), 24)
    n, n_windows = len(df), ind.spec.fit_index(len(df) - 1) + 1
    assert n_windows >= 3 and np.isnan(lines["regime"][:ind.spec.first_fit]).all()
    for k in range(n_windows):
        fit_rows, val_rows = ind.spec.training_rows(k)
        assert val_rows.stop + 24 <= ind.spec.fit_bar(k)      # every forward row used is known at the fit bar
        model = VolatilityRegimeForecast(5).fit(X[fit_rows.start:fit_rows.stop], fwd[fit_rows.start:fit_rows.stop],
                                                X[val_rows.start:val_rows.stop], fwd[val_rows.start:val_rows.stop])
        served = np.array(list(ind.spec.served(k, n)))
        proba = model.predict_proba(X[served])
        got = np.column_stack([lines[f"p_{name}"][served] for name in REGIME_NAMES])
        np.testing.assert_allclose(got, proba, rtol=1e-12)
        np.testing.assert_array_equal(lines["regime"][served], proba.argmax(axis=1))
        np.testing.assert_allclose(lines["confidence"][served], proba.max(axis=1), rtol=1e-12)
