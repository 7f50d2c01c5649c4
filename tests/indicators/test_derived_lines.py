"""The lines derived from a model line: Energy's ``regime`` and ``spike_resolved`` (from its z-score) and
ScoreDirection's ``consistency`` and ``score_var`` (from its direction), against hand-computed values on scripted
sequences — the functions alone, and the indicators themselves with a scripted "model" whose z-score / direction is
the bar's close minus 100 — batched and bar by bar, with bad bars, and wherever the data ends. The walk-forward
contract on the real models (truncation invariance, mode parity, replay) is in test_contract.py."""
import doctest
import importlib
import math

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from btdensity.feeds import DataFrameFeed
from btdensity.indicators import Energy, ScoreDirection
from btdensity.indicators.calibration import sorted_reference
from btdensity.indicators.energy import energy_regime, spike_peak, spike_resolved
from btdensity.indicators.score_direction import direction_consistency

NAN = float("nan")


# ------------------------------------------------------------------------------------------------ the functions
def test_spike_resolved_fires_once_on_the_first_bar_back_below_release():
    z = [0.0, 3.0, 2.0, 1.0, 0.99, 0.5, 3.0, 2.6, 2.4, 2.0, 1.5, 0.0, 2.5, 0.0, 2.7, NAN, NAN, 0.2, 0.1]
    # bar 4: first bar below 1.0 (1.0 itself is not below) after the spike at 1; bar 5 is not a new resolution;
    # bar 11: the spike at 6-7 resolves (last bar above 2.5 is 7, 4 bars before); bar 12: exactly 2.5 is no spike;
    # bar 17: the spike at 14 resolves across two NaN bars (3 bars after it); NaN where z is NaN
    expected = [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, NAN, NAN, 1, 0]
    np.testing.assert_array_equal(spike_resolved(z, 2.5, 1.0, 24), expected)
    # at most 4 bars after the spike's last bar above threshold: bar 11 is 4 after bar 7, bar 17 is 3 after 14
    np.testing.assert_array_equal(spike_resolved(z, 2.5, 1.0, 4), expected)
    # at most 3: bar 11 no longer fires
    np.testing.assert_array_equal(spike_resolved(z, 2.5, 1.0, 3), expected[:11] + [0] + expected[12:])
    # each value depends on the last bars + 1 z-scores only: the last value of every window equals the full run's
    full = spike_resolved(z, 2.5, 1.0, 4)
    for t in range(len(z)):
        np.testing.assert_array_equal(spike_resolved(z[max(0, t - 4):t + 1], 2.5, 1.0, 4)[-1], full[t])


def test_spike_peak_is_the_highest_z_of_the_resolved_spike():
    z = [0.0, 5.0, 0.5, 1.5, 2.7, 3.5, 3.5, 3.1, 1.2, 0.4]
    # fires at 9; the spike since the last bar below release (2): bars 3-8, highest 3.5 at 5 (the first of two)
    assert spike_peak(z, 2.5, 1.0, 24) == 4 and spike_resolved(z, 2.5, 1.0, 24)[-1] == 1.0
    # within the last 3 bars (6-8) only: the peak is bar 6
    assert spike_peak(z, 2.5, 1.0, 3) == 3
    assert spike_peak(z[:-1], 2.5, 1.0, 24) is None and spike_peak([], 2.5, 1.0, 24) is None


def test_energy_regime_counts_the_thresholds_at_or_below():
    z = [-3.0, -0.5, -0.25, 0.999, 1.0, 2.49, 2.5, 9.0, NAN]
    np.testing.assert_array_equal(energy_regime(z, (-0.5, 1.0, 2.5)), [0, 1, 1, 1, 2, 2, 3, 3, NAN])


def test_direction_consistency_and_variance_by_hand():
    d = [1.0, 2.0, -1.0, 0.5, 0.0, 0.0, 0.0, NAN, 3.0, 3.0, 3.0, -3.0]
    out = direction_consistency(d, 3)
    # windows of 3: [1, 2, -1] today negative: 1/3, var of (1, 2, -1) = 14/9; [2, -1, 0.5] positive: 2/3;
    # [-1, 0.5, 0] zero: 1/3; [0.5, 0, 0]: 2/3; [0, 0, 0]: 1, var 0; NaN at 7 makes 7-9 NaN; [3, 3, 3]: 1, 0;
    # [3, 3, -3]: 1/3, var 8
    c = [NAN, NAN, 1 / 3, 2 / 3, 1 / 3, 2 / 3, 1.0, NAN, NAN, NAN, 1.0, 1 / 3]
    v = [NAN, NAN, 14 / 9, np.var([2, -1, 0.5]), np.var([-1, 0.5, 0]), np.var([0.5, 0, 0]), 0.0, NAN, NAN, NAN,
         0.0, 8.0]
    np.testing.assert_allclose(out[:, 0], c, rtol=0, atol=1e-15)
    np.testing.assert_allclose(out[:, 1], v, rtol=1e-14, atol=1e-15)
    assert np.var([2, -1, 0.5]) == pytest.approx(1.5) and np.var([0.5, 0, 0]) == pytest.approx(1 / 18)


def test_doctests():
    for name in ("indicators.energy", "indicators.score_direction"):
        result = doctest.testmod(importlib.import_module(f"btdensity.{name}"))
        assert result.failed == 0 and result.attempted > 0, name


# ------------------------------------------------------------------------------------------------ the indicators
class _Identity:
    """A "model" whose energy (and direction) is the row's one input."""

    def fit(self, *args, **kwargs):
        return self

    def double(self):
        return self

    def energy(self, X):
        return np.array(X[:, 0], dtype=np.float64)


def _scripted(base):
    """``base`` with a scripted "model": the row of bar t is its close minus 100, the fit does nothing. (A subclass,
    not a mixin: backtrader's metaclass would count the lines of a mixed-in base twice.)"""

    class Scripted(base):
        takes_fit_kwargs = False

        def inputs(self, arrays):
            return (arrays["close"] - 100.0)[:, None]

        def input_lookback(self):
            return 0

        def input_key(self):
            return (type(self).__name__,)

        def model_class(self):
            return _Identity

        def make_model(self, n_features):
            return _Identity()

        def fit_model(self, model, X, y, X_val, y_val):
            pass

    return Scripted


class ScriptedEnergy(_scripted(Energy)):
    def calibrate(self, model, X_val, y_val):
        return {"mean": 0.0, "std": 1.0, "reference": sorted_reference(X_val[:, 0])}


class ScriptedDirection(_scripted(ScoreDirection)):
    def calibrate(self, model, X_val, y_val):
        return 1.0

    def _direction(self, model, X):
        return np.array(X[:, 0], dtype=np.float64)


WALK = dict(train_bars=20, retrain_every=7, cache_dir=None)
WARMUP = [0.25 * (i % 5) for i in range(21)]       # bars 0-20 (Energy's first value is at bar 20)
# from bar 20: a spike resolved at 27; 29 is exactly release (not below); bar 32 a bad bar (NaN) inside a spike
# that resolves at 34; a spike (36) that is still above release 4 bars later and resolves at 41: too late for
# resolve_bars=4; a spike (43) resolved exactly 4 bars later (47)
Z = WARMUP[:20] + [0.0, 0.5, 3.0, 2.75, 2.0, 1.25, 1.0, 0.75, 0.25, 1.0, -1.0, 2.75, NAN, 1.5, 0.5, -0.75,
                   3.25, 1.5, 1.5, 1.5, 1.5, 0.0, 0.5, 2.75, 2.25, 2.0, 1.75, -0.5, 0.0]
SPIKE = [NAN] * 20 + [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, NAN, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]
REGIME = [NAN] * 20 + [1, 1, 3, 3, 2, 2, 2, 1, 1, 2, 0, 3, NAN, 2, 1, 0, 3, 2, 2, 2, 2, 1, 1, 3, 2, 2, 2, 1, 1]


def frame(values):
    """Hourly bars whose close is 100 + value (a NaN value: a bar of NaN prices, which the indicators reject)."""
    close = 100.0 + np.asarray(values, dtype=np.float64)
    idx = pd.date_range("2024-01-01", periods=len(close), freq="1h", tz="UTC")
    return pd.DataFrame({"open": close, "high": close + 0.5, "low": close - 0.5, "close": close, "volume": 1.0},
                        index=idx)


def run(cls, values, runonce, indicator=False, **params):
    class Holder(bt.Strategy):
        def __init__(self):
            self.ind = cls(self.data, **WALK, **params)

    cerebro = bt.Cerebro(stdstats=False, runonce=runonce)
    cerebro.adddata(DataFrameFeed(dataname=frame(values)))
    cerebro.addstrategy(Holder)
    ind = cerebro.run()[0].ind
    lines = {alias: np.asarray(ind.lines[i].array, dtype=float)[:len(values)]
             for i, alias in enumerate(ind.lines.getlinealiases())}
    return (lines, ind) if indicator else lines


@pytest.mark.parametrize("runonce", [True, False])
def test_energy_regime_and_spike_resolved_on_a_scripted_z_score(runonce):
    lines = run(ScriptedEnergy, Z, runonce, threshold=2.5, release=1.0, resolve_bars=4)
    z = np.array([NAN] * 20 + Z[20:])
    np.testing.assert_array_equal(lines["zscore"], z)
    np.testing.assert_array_equal(lines["spike_resolved"], SPIKE)
    np.testing.assert_array_equal(lines["regime"], REGIME)
    # wherever the data ends (mid-spike, on a resolution, on the bad bar), the bars before keep their values
    for m in (21, 27, 28, 32, 34, 40, 47):
        cut = run(ScriptedEnergy, Z[:m], runonce, threshold=2.5, release=1.0, resolve_bars=4)
        for name in ("zscore", "regime", "spike_resolved"):
            np.testing.assert_array_equal(cut[name], lines[name][:m])


def test_energy_spike_parameters_and_regime_thresholds():
    lines = run(ScriptedEnergy, Z, True, threshold=2.5, release=1.0, resolve_bars=5, regime_thresholds=(0, 1, 2))
    # with 5 bars the spike of 36 resolves at 41 (its last bar above 2.5 is 36, 5 bars before)
    np.testing.assert_array_equal(lines["spike_resolved"], SPIKE[:41] + [1] + SPIKE[42:])
    np.testing.assert_array_equal(lines["regime"], energy_regime([NAN] * 20 + Z[20:], (0.0, 1.0, 2.0)))
    assert lines["regime"][30] == 0 and lines["regime"][26] == 2 and lines["regime"][22] == 3
    for bad in ((1.0, 0.5, 2.0), (0.0, 1.0), (0.0, 1.0, NAN), "abc"):
        with pytest.raises(ValueError, match="regime_thresholds"):
            run(ScriptedEnergy, Z, True, regime_thresholds=bad)
    with pytest.raises(ValueError, match="release must be"):
        run(ScriptedEnergy, Z, True, threshold=1.0, release=1.0)
    with pytest.raises(ValueError, match="resolve_bars"):
        run(ScriptedEnergy, Z, True, resolve_bars=0)


# the direction from bar 21 (ScoreDirection's first value: 20 rows and a label); a bad bar at 27
D = WARMUP + [1.0, 2.0, -1.0, 0.5, 0.0, 0.0, NAN, 0.25, 0.5, 0.75, 1.0, -2.0, -2.0]
CONSISTENCY = [NAN] * 23 + [1 / 3, 2 / 3, 1 / 3, 2 / 3, NAN, NAN, NAN, 1.0, 1.0, 1 / 3, 2 / 3]
SCORE_VAR = [NAN] * 23 + [14 / 9, 1.5, np.var([-1, 0.5, 0]), 1 / 18, NAN, NAN, NAN, np.var([0.25, 0.5, 0.75]),
                          np.var([0.5, 0.75, 1.0]), np.var([0.75, 1.0, -2.0]), np.var([1.0, -2.0, -2.0])]


@pytest.mark.parametrize("runonce", [True, False])
def test_direction_consistency_and_score_var_on_a_scripted_direction(runonce):
    lines = run(ScriptedDirection, D, runonce, consistency_bars=3)
    np.testing.assert_array_equal(lines["direction"], [NAN] * 21 + D[21:])
    np.testing.assert_allclose(lines["consistency"], CONSISTENCY, rtol=0, atol=1e-15)
    np.testing.assert_allclose(lines["score_var"], SCORE_VAR, rtol=1e-14, atol=1e-15)
    for m in (22, 23, 24, 27, 28, 30, 31):
        cut = run(ScriptedDirection, D[:m], runonce, consistency_bars=3)
        for name in ("direction", "consistency", "score_var"):
            np.testing.assert_array_equal(cut[name], lines[name][:m])
    with pytest.raises(ValueError, match="consistency_bars"):
        run(ScriptedDirection, D, runonce, consistency_bars=0)


def test_the_derived_lines_parameters_do_not_change_the_fits():
    """The model cache's keys (and so the fits) are those of the default parameters."""
    keys = []
    for cls, params in ((ScriptedEnergy, {}), (ScriptedEnergy, dict(threshold=3.0, release=0.0, resolve_bars=9,
                                                                     regime_thresholds=(0, 1, 2))),
                        (ScriptedDirection, {}), (ScriptedDirection, dict(consistency_bars=9))):
        _, ind = run(cls, Z, True, indicator=True, **params)
        keys.append([ind._windows[k].key for k in sorted(ind._windows)])
    assert keys[0] == keys[1] and keys[2] == keys[3] and len(keys[0]) == 5 and keys[0] != keys[2]


def test_the_scripted_model_is_what_the_real_indicator_evaluates():
    """The scripted indicators change only the model: their lines come out of Energy / ScoreDirection's own
    evaluate, once() and next() (the values above are not produced by the test itself)."""
    for cls, real in ((ScriptedEnergy, Energy), (ScriptedDirection, ScoreDirection)):
        for name in ("evaluate", "once", "next"):
            assert getattr(cls, name) is getattr(real, name)
    assert math.isnan(run(ScriptedEnergy, Z[:20], True)["spike_resolved"][-1])
