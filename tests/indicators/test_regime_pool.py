"""RegimePool (Regime's model): the equal-weight mixture of its JEM, persistence and the volatility forecast, each
fitted on the same rows; its checkpoint keeps all three."""
import numpy as np
import pytest

from btdensity.feeds import synthetic_market
from btdensity.indicators import Regime
from btdensity.indicators.features import DEFAULT_FEATURES, VOLATILITY_FEATURES, market_features
from btdensity.indicators.persistence import RegimeTransitions
from btdensity.indicators.regime import forward_rows, previous_forward_rows, regime_labels
from btdensity.indicators.regime_pool import RegimePool
from btdensity.indicators.volatility_regime import VolatilityRegimeForecast
from btdensity.models import JointEnergyClassifier

from .conftest import run_alone

JEM = dict(n_classes=4, hidden=(8,), generative_weight=0.1, seed=3)
FIT = dict(epochs=3)


@pytest.fixture(scope="module")
def rows():
    df = synthetic_market(900, seed=6)
    bars = [df[k].to_numpy() for k in ("open", "high", "low", "close", "volume")]
    X = np.column_stack([market_features(*bars, spec=DEFAULT_FEATURES), market_features(*bars, spec=VOLATILITY_FEATURES),
                         previous_forward_rows(bars[3], 24)])
    y = forward_rows(bars[3], 24)
    ok = np.isfinite(X).all(axis=1) & np.isfinite(y).all(axis=1)
    X, y = X[ok], y[ok]
    return X[:500], y[:500], X[500:650], y[500:650], X[650:]


def test_probabilities_are_the_mean_of_the_three_and_energy_the_jems(rows):
    Xf, yf, Xv, yv, Xt = rows
    k, v = len(DEFAULT_FEATURES), len(VOLATILITY_FEATURES)
    pool = RegimePool(JointEnergyClassifier(k, **JEM), v).fit(Xf, yf, Xv, yv, **FIT)
    jem = JointEnergyClassifier(k, **JEM).fit(Xf[:, :k], regime_labels(yf), X_val=Xv[:, :k],
                                              y_val=regime_labels(yv, reference=yf), **FIT)
    persistence = RegimeTransitions().fit(Xf[:, k + v:], yf, Xv[:, k + v:], yv)
    volatility = VolatilityRegimeForecast(v).fit(Xf[:, k:k + v], yf, Xv[:, k:k + v], yv)
    proba, energy = pool.proba_and_energy(Xt)
    jem_proba, jem_energy = jem.proba_and_energy(Xt[:, :k])
    expected = (jem_proba + persistence.predict_proba(Xt[:, k + v:]) + volatility.predict_proba(Xt[:, k:k + v])) / 3
    np.testing.assert_allclose(proba, expected, rtol=1e-6)
    np.testing.assert_allclose(energy, jem_energy, rtol=1e-6)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    # each member differs from the mixture: none of them is ignored
    for member in (jem_proba, persistence.predict_proba(Xt[:, k + v:]), volatility.predict_proba(Xt[:, k:k + v])):
        assert np.abs(member - proba).max() > 0.05


def test_checkpoint_round_trip_and_refusals(rows, tmp_path):
    Xf, yf, Xv, yv, Xt = rows
    k, v = len(DEFAULT_FEATURES), len(VOLATILITY_FEATURES)
    pool = RegimePool(JointEnergyClassifier(k, **JEM), v).fit(Xf, yf, Xv, yv, **FIT)
    pool.save(tmp_path / "pool.pt", meta={"key": "abc"})
    loaded = RegimePool.load(tmp_path / "pool.pt")
    assert loaded.meta_ == {"key": "abc"}                 # what the cache checks; the pool's state is not in it
    for a, b in zip(loaded.double().proba_and_energy(Xt), pool.double().proba_and_energy(Xt)):
        np.testing.assert_array_equal(a, b)
    JointEnergyClassifier(k, **JEM).fit(Xf[:, :k], regime_labels(yf), **FIT).save(tmp_path / "jem.pt")
    with pytest.raises(ValueError, match="without the state of a RegimePool"):
        RegimePool.load(tmp_path / "jem.pt")
    with pytest.raises(ValueError, match=r"RegimePool rows have 15 columns \(JEM features 8, volatility features 5"):
        pool.proba_and_energy(Xt[:, :-1])


def test_warm_start_passes_the_jem_on(rows):
    Xf, yf, Xv, yv, _ = rows
    k, v = len(DEFAULT_FEATURES), len(VOLATILITY_FEATURES)
    first = RegimePool(JointEnergyClassifier(k, **JEM), v).fit(Xf, yf, Xv, yv, **FIT)
    second = RegimePool(JointEnergyClassifier(k, **JEM), v).warm_start(first).fit(Xf, yf, Xv, yv, **FIT)
    cold = RegimePool(JointEnergyClassifier(k, **JEM), v).warm_start(None).fit(Xf, yf, Xv, yv, **FIT)
    assert second.jem.warm_started_ and not cold.jem.warm_started_


@pytest.mark.parametrize("pool, model", [(None, RegimePool), (False, JointEnergyClassifier)])
def test_regime_pools_by_default_and_the_jem_alone_on_request(pool, model):
    given = {} if pool is None else {"pool": pool}
    ind, _ = run_alone(lambda data: Regime(data, horizon=6, train_bars=240, retrain_every=200, cache_dir=None,
                                           model_kwargs={"hidden": (8,)}, fit_kwargs={"epochs": 2}, **given),
                       synthetic_market(500, seed=2), runonce=False)
    assert type(ind._model) is model          # the model that served the last bar
    assert ind.spec.first_fit == 48 + 240 + 6   # the pool keeps the JEM's schedule (lookback 48)
    assert ind._warm                            # warm start reaches the JEM inside the pool


def test_pool_must_be_a_bool():
    with pytest.raises(ValueError, match=r"Regime\(pool='yes'\): True \(pool the JEM"):
        run_alone(lambda data: Regime(data, cache_dir=None, pool="yes"), synthetic_market(100))
