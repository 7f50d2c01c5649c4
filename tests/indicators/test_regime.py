"""Regime labelling against DESIGN's rule, re-implemented with plain loops: the label of bar t comes from bars
t+1 .. t+h ('volatile' above the training window's 75th percentile of realised volatility, else 'bull' / 'bear'
above / below +- half the window's standard deviation of the return, else 'ranging')."""
import math
from types import SimpleNamespace

import backtrader as bt
import numpy as np
import pytest

from btdensity.feeds import DataFrameFeed, synthetic_market
from btdensity.indicators import Regime
from btdensity.indicators.regime import REGIME_NAMES, regime_labels
from btdensity.indicators.walkforward import FitCache
from btdensity.models import JointEnergyClassifier

BULL, BEAR, RANGING, VOLATILE = (REGIME_NAMES.index(name) for name in ("bull", "bear", "ranging", "volatile"))


def ahead(close, t, h):
    """(log return, realised volatility) of bars t+1 .. t+h: the volatility is the standard deviation of
    their h one-bar log returns (population; the labels do not depend on ddof, only the ranking counts)."""
    rets = [math.log(close[t + j] / close[t + j - 1]) for j in range(1, h + 1)]
    mean = sum(rets) / h
    return math.log(close[t + h] / close[t]), math.sqrt(sum((r - mean) ** 2 for r in rets) / h)


def brute_labels(close, h, rows, window):
    """DESIGN's label of each bar in ``rows``, thresholds from the bars in ``window``; None where not known yet."""
    ref = [ahead(close, t, h) for t in window]
    vols = sorted(v for _, v in ref)
    pos = 0.75 * (len(vols) - 1)                      # 75th percentile, linear between the order statistics
    lo = int(pos)
    cut = vols[lo] + (vols[min(lo + 1, len(vols) - 1)] - vols[lo]) * (pos - lo)
    mean = sum(r for r, _ in ref) / len(ref)
    half_sd = 0.5 * math.sqrt(sum((r - mean) ** 2 for r, _ in ref) / len(ref))
    out = []
    for t in rows:
        if t + h > len(close) - 1:
            out.append(None)
            continue
        r, v = ahead(close, t, h)
        out.append(VOLATILE if v > cut else BULL if r > half_sd else BEAR if r < -half_sd else RANGING)
    return out


def forward_rows(close, h):
    """``Regime.labels``: the [return, realised vol] rows the indicator labels (needs only the horizon)."""
    return Regime.labels(SimpleNamespace(spec=SimpleNamespace(horizon=h)), np.asarray(close, dtype=float))


def implemented(close, h, rows, window):
    fwd = forward_rows(close, h)
    return regime_labels(fwd[rows.start:rows.stop], reference=fwd[window.start:window.stop]).tolist()


@pytest.fixture(scope="module")
def close():
    """160 bars: calm (sd 0.5 %) with an up drift, then a down drift, then wild (sd 2 %) from bar 100 on."""
    rng = np.random.default_rng(7)
    r = rng.normal(0.0, 0.005, 160)
    r[20:50] += 0.003
    r[60:90] -= 0.003
    r[100:] *= 4.0
    return 100.0 * np.exp(np.cumsum(np.r_[0.0, r[1:]]))


def test_hand_made_rows_get_the_known_labels():
    # reference: vols 1..6 -> 75th percentile 4.75 (between 4 and 5); returns -2..2 and 0 -> sd sqrt(10/6)
    reference = np.array([[-2.0, 1.0], [-1.0, 2.0], [0.0, 3.0], [1.0, 4.0], [2.0, 5.0], [0.0, 6.0]])
    half_sd = 0.5 * math.sqrt(10 / 6)  # 0.645
    rows = np.array([[0.0, 4.75],       # at the percentile, not above it
                     [0.0, 4.76],       # above: volatile
                     [0.7, 1.0], [-0.7, 1.0], [0.6, 1.0], [-0.6, 1.0],
                     [half_sd, 1.0],    # on the threshold, not above it
                     [5.0, 9.0]])       # volatile before bull
    assert regime_labels(rows, reference=reference).tolist() == [RANGING, VOLATILE, BULL, BEAR, RANGING, RANGING,
                                                                 RANGING, VOLATILE]


@pytest.mark.parametrize("h", [3, 8])
@pytest.mark.parametrize("window", [range(0, 60), range(30, 140), range(0, 152)])
def test_labels_equal_a_loop_over_the_rule(close, h, window):
    rows = range(0, len(close) - h)
    expected = brute_labels(close, h, rows, window)
    assert implemented(close, h, rows, window) == expected
    assert set(expected) == {BULL, BEAR, RANGING, VOLATILE}


def test_alignment_label_of_t_reads_bars_t_to_t_plus_h_only(close):
    h, t = 5, 30                                                        # bar 30: ranging
    fwd = forward_rows(close, h)
    assert np.isnan(fwd[-h:]).all() and np.isfinite(fwd[:-h]).all()     # the last h bars: not known yet
    assert brute_labels(close, h, range(len(close) - h - 1, len(close)), range(0, 60))[1:] == [None] * h
    later = close.copy()
    later[t + h + 1:] *= 1.5                                            # after the bars that label t reads
    earlier = close.copy()
    earlier[:t] *= 1.5                                                  # before them
    moved = close.copy()
    moved[t + h:] *= 1.5                                                # bar t + h is the last one it reads
    f_later, f_earlier, f_moved = (forward_rows(c, h) for c in (later, earlier, moved))
    np.testing.assert_array_equal(f_later[:t + 1], fwd[:t + 1])
    assert (f_later[t + 1] != fwd[t + 1]).all()
    np.testing.assert_array_equal(f_earlier[t:], fwd[t:])
    assert (f_earlier[t - 1] != fwd[t - 1]).all()
    assert f_moved[t, 0] == pytest.approx(fwd[t, 0] + math.log(1.5)) and f_moved[t, 1] > fwd[t, 1]
    # the labels follow with the thresholds of a fixed window
    window = range(0, 60)
    for shifted in (later, earlier):
        assert implemented(shifted, h, range(t, t + 1), window) == brute_labels(shifted, h, [t], window)
    assert implemented(moved, h, range(t, t + 1), window) == [VOLATILE] != implemented(close, h, range(t, t + 1),
                                                                                       window)


def test_thresholds_come_from_the_training_window_only(close):
    h, window = 6, range(0, 80)                     # the calm part: the window's labels know nothing of the rest
    rows = range(0, len(close) - h)
    own = implemented(close, h, rows, window)
    wilder = close.copy()
    wilder[100:] = wilder[99] * (wilder[100:] / wilder[99]) ** 3   # bars after the window's reach, 3x the moves
    assert implemented(wilder, h, window, window) == own[:80]
    assert own[:80] != implemented(close, h, window, rows)          # thresholds of all the rows would differ
    assert own[100:].count(VOLATILE) > own[:80].count(VOLATILE)   # the calm window's percentile: wild is volatile


def small_regime(df):
    """A Regime (horizon 6, windows of 240 rows every 200 bars, a tiny network) run over ``df``, batched."""
    class Holder(bt.Strategy):
        def __init__(self):
            self.regime = Regime(self.data, horizon=6, train_bars=240, retrain_every=200, cache_dir=None,
                                 model_kwargs={"hidden": (8,)}, fit_kwargs={"epochs": 2})

    FitCache.forget()
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(DataFrameFeed(dataname=df))
    cerebro.addstrategy(Holder)
    return cerebro.run()[0].regime


def test_regime_fits_on_labels_from_its_own_training_window(monkeypatch):
    df = synthetic_market(720, freq="1h", seed=4)
    fits = []
    fit = JointEnergyClassifier.fit

    def capture(self, X, y, X_val=None, y_val=None, **kwargs):
        fits.append((np.asarray(y).tolist(), np.asarray(y_val).tolist()))
        return fit(self, X, y, X_val=X_val, y_val=y_val, **kwargs)

    monkeypatch.setattr(JointEnergyClassifier, "fit", capture)
    monkeypatch.setenv("BTDENSITY_JOBS", "1")       # fits in this process, where the capture is
    spec = small_regime(df).spec
    close = df["close"].to_numpy()
    assert len(fits) == 3
    differs = 0
    for k, (y, y_val) in enumerate(fits):
        fit_rows, val_rows = spec.training_rows(k)
        assert y == brute_labels(close, 6, fit_rows, fit_rows)
        assert y_val == brute_labels(close, 6, val_rows, fit_rows)    # the held-out tail: the same thresholds
        assert set(y) == {BULL, BEAR, RANGING, VOLATILE}
        differs += y != brute_labels(close, 6, fit_rows, range(spec.first_row, len(close) - 6))
    assert differs >= 1  # thresholds of the whole data set would have labelled some window differently


@pytest.mark.parametrize("horizon", [0, 1])
def test_a_horizon_without_realised_volatility_is_refused(horizon):
    class Holder(bt.Strategy):
        def __init__(self):
            self.regime = Regime(self.data, horizon=horizon, cache_dir=None)

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(DataFrameFeed(dataname=synthetic_market(100)))
    cerebro.addstrategy(Holder)
    with pytest.raises(ValueError, match=rf"Regime\(horizon={horizon}\): labels need at least 2 forward bars"):
        cerebro.run()


def test_probability_lines_sum_to_one_and_their_argmax_is_the_regime():
    ind = small_regime(synthetic_market(720, freq="1h", seed=4))
    assert ind.lines.getlinealiases() == ("regime", "confidence", "energy", "p_bull", "p_bear", "p_ranging",
                                          "p_volatile")
    served = slice(ind.spec.first_fit, None)
    proba = np.column_stack([np.asarray(getattr(ind, f"p_{name}").array)[served] for name in REGIME_NAMES])
    regime = np.asarray(ind.regime.array)[served]
    assert np.isfinite(proba).all() and (proba >= 0).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(proba.argmax(axis=1), regime)
    np.testing.assert_array_equal(proba.max(axis=1), np.asarray(ind.confidence.array)[served])
    assert len(set(regime)) >= 2
