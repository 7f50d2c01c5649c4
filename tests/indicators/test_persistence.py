"""PersistenceRegime: the regime of bar t is the label of bar t - h (known at t), its probabilities the training
window's add-one smoothed transition frequencies, counted by hand here."""
from collections import Counter

import backtrader as bt
import numpy as np
import pytest

from btdensity.feeds import DataFrameFeed, synthetic_market
from btdensity.indicators.persistence import PersistenceRegime, RegimeTransitions
from btdensity.indicators.regime import REGIME_NAMES, forward_rows, regime_labels
from btdensity.indicators.walkforward import FitCache

from .conftest import run_alone

#: a forward row [return, realised vol] of each class; thresholds from a sequence of them: half the sd of the
#: returns (< 0.5: returns in {-1, 0, 1}) and the 75th percentile of the volatilities (0.1 while fewer than a
#: quarter of the rows are volatile), so every row gets its own class
ROW = {"bull": (1.0, 0.1), "bear": (-1.0, 0.1), "ranging": (0.0, 0.1), "volatile": (0.0, 10.0)}
SCRIPT = ("bull bull bear ranging ranging bull volatile ranging bear bear bear ranging bull bull ranging volatile "
          "ranging ranging bull bear bull bull ranging bear").split()
K = len(REGIME_NAMES)


def smoothed(pairs, smoothing=1.0):
    """Transition rows from (before, after) class pairs, counted in a plain loop and add-``smoothing`` smoothed."""
    counts = Counter(pairs)
    out = np.zeros((K, K))
    for i in range(K):
        total = sum(counts[i, j] for j in range(K)) + K * smoothing
        for j in range(K):
            out[i, j] = (counts[i, j] + smoothing) / total
    return out


@pytest.mark.parametrize("h", [1, 3])
def test_scripted_labels_give_hand_counted_smoothed_frequencies(h):
    labels = [REGIME_NAMES.index(name) for name in SCRIPT]
    y = np.array([ROW[name] for name in SCRIPT])
    # row s: X = the forward row of s - h, y = that of s; the first h rows have no past row
    X, y = y[:-h], y[h:]
    model = RegimeTransitions().fit(X[:15], y[:15], X[15:], y[15:])       # fit rows and held-out tail
    np.testing.assert_array_equal(model.label(y), labels[h:])
    expected = smoothed(zip(labels[:-h], labels[h:]))
    np.testing.assert_allclose(model.transition_, expected, rtol=1e-15)
    np.testing.assert_allclose(model.predict_proba(X), expected[labels[:-h]], rtol=1e-15)
    assert model.counts_.sum() == len(SCRIPT) - h
    if h == 1:  # a transition never seen (volatile -> bear) is 1 / (n + 4), not 0
        assert model.counts_[REGIME_NAMES.index("volatile"), REGIME_NAMES.index("bear")] == 0
        assert model.transition_[REGIME_NAMES.index("volatile"), REGIME_NAMES.index("bear")] == 1 / (2 + 4)


def test_save_load_round_trip(tmp_path):
    y = np.array([ROW[name] for name in SCRIPT])
    model = RegimeTransitions(smoothing=0.5).fit(y[:-2], y[2:])
    model.save(tmp_path / "t.pt", meta={"key": "k"})
    loaded = RegimeTransitions.load(tmp_path / "t.pt")
    assert loaded.meta_ == {"key": "k"} and loaded.smoothing == 0.5
    np.testing.assert_array_equal(loaded.predict_proba(y), model.predict_proba(y))


@pytest.fixture(scope="module")
def persistence():
    df = synthetic_market(1000, seed=8)
    ind, lines = run_alone(lambda data: PersistenceRegime(data, horizon=24, train_bars=300, retrain_every=200,
                                                          cache_dir=None), df)
    return df["close"].to_numpy(), ind, lines


def test_regime_is_the_label_of_t_minus_h_and_probabilities_the_windows_transitions(persistence):
    close, ind, lines = persistence
    h, n = 24, len(close)
    assert ind.lines.getlinealiases() == ("regime", "confidence", "p_bull", "p_bear", "p_ranging", "p_volatile")
    assert ind.spec.first_fit == 48 + 300 + h        # Regime's schedule: the default features' lookback first
    assert np.isnan(lines["regime"][:ind.spec.first_fit]).all()
    fwd = forward_rows(close, h)
    n_windows = ind.spec.fit_index(n - 1) + 1
    assert n_windows >= 3
    for k in range(n_windows):
        fit_rows, val_rows = ind.spec.training_rows(k)
        assert val_rows.stop + h <= ind.spec.fit_bar(k)          # every label counted is known before the fit bar
        reference = fwd[fit_rows.start:fit_rows.stop]            # Regime's thresholds: the fit rows'
        rows = range(fit_rows.start, val_rows.stop)
        label = {s: int(regime_labels(fwd[s:s + 1], reference=reference)[0])
                 for s in range(rows.start - h, min(ind.spec.fit_bar(k) + ind.spec.retrain_every, n))}
        expected = smoothed([(label[s - h], label[s]) for s in rows])
        for t in ind.spec.served(k, n):
            last = label[t - h]
            assert lines["regime"][t] == last
            proba = np.array([lines[f"p_{name}"][t] for name in REGIME_NAMES])
            np.testing.assert_allclose(proba, expected[last], rtol=1e-14)
            assert lines["confidence"][t] == proba[last]
    served = np.arange(ind.spec.first_fit, n)
    np.testing.assert_allclose(sum(lines[f"p_{name}"][served] for name in REGIME_NAMES), 1.0, rtol=1e-14)
    assert set(lines["regime"][served]) == {0.0, 1.0, 2.0, 3.0}


@pytest.mark.parametrize("runonce", [True, False])
def test_a_horizon_longer_than_the_features_lookback_starts_the_rows_later(runonce):
    class Holder(bt.Strategy):
        def __init__(self):
            self.ind = PersistenceRegime(self.data, horizon=60, train_bars=100, retrain_every=100, cache_dir=None)

    FitCache.forget()
    cerebro = bt.Cerebro(stdstats=False, runonce=runonce)
    cerebro.adddata(DataFrameFeed(dataname=synthetic_market(400, seed=2)))
    cerebro.addstrategy(Holder)
    ind = cerebro.run()[0].ind
    regime = np.asarray(ind.regime.array)
    assert ind.spec.first_row == 60 and ind.spec.first_fit == 60 + 100 + 60
    assert np.isnan(regime[:220]).all() and np.isfinite(regime[220:]).all()
