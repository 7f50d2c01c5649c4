"""Flat minute markets run end to end; a bar whose features cannot be computed never aborts a run."""
import logging

import backtrader as bt
import numpy as np
import pytest

from btdensity.feeds import DataFrameFeed, synthetic_market
from btdensity.indicators import Energy, WalkForwardSettings
from btdensity.indicators.features import DEFAULT_FEATURES, market_features
from btdensity.runner import BacktestConfig, backtest

ENERGY = dict(train_bars=200, retrain_every=150, cache_dir=None, model_kwargs={"hidden": (8,)},
              fit_kwargs={"epochs": 2})


def flat_hours(df, starts):
    """``df`` with the hour from each start flat: open = high = low = close = the close before, zero volume."""
    df = df.copy()
    for s in starts:
        df.iloc[s:s + 60, :4], df.iloc[s:s + 60, 4] = df["close"].iloc[s - 1], 0.0
    return df


class Holder(bt.Strategy):
    params = (("make", None),)

    def __init__(self):
        self.ind = self.p.make(self.data)


def energy_values(df, runonce):
    """Energy's lines over ``df`` as an array (bars x lines), and the indicator."""
    cerebro = bt.Cerebro(stdstats=False, runonce=runonce)
    cerebro.adddata(DataFrameFeed(dataname=df))
    cerebro.addstrategy(Holder, make=lambda data: Energy(data, **ENERGY))
    ind = cerebro.run()[0].ind
    return np.column_stack([np.asarray(ind.lines[j].array, dtype=float)[:len(df)] for j in range(ind.size())]), ind


def test_minute_backtest_with_flat_hours_runs_with_finite_lines(tmp_path):
    """Flat hours in the first training window (bars 250-309 of rows 48-347) and in the evaluated span (every model
    line from bar 492: the BNN's volatility regression reads a week of bars), some of which later windows train on
    too: the run finishes and every model line is finite."""
    df = flat_hours(synthetic_market(1600, freq="1min", seed=5), (250, 700, 1200, 1500))
    settings = WalkForwardSettings(train_bars=300, retrain_every=400, cache_dir=str(tmp_path), fit_kwargs={"epochs": 3})
    result = backtest(df, BacktestConfig("density_gated", walk_forward=settings))
    lines = result.lines.to_numpy()
    warm = settings.warmup_bars() - 1                   # the first bar with a value of every model indicator
    assert lines.shape[0] == len(df) and result.lines.columns.str.startswith("LogDensity.").any()
    assert np.isfinite(lines[warm:]).all()
    first = settings.warmup_bars(horizon=0, features=DEFAULT_FEATURES) - 1   # the earliest first fit of any of them
    assert np.isnan(lines[:first]).all()                # nothing before the first fit


@pytest.mark.parametrize("runonce", [True, False])
def test_flat_hours_batched_and_bar_by_bar_agree(runonce):
    df = flat_hours(synthetic_market(700, freq="1min", seed=6), (120, 300, 520))
    values, ind = energy_values(df, runonce)
    first = ind.spec.first_fit
    assert np.isfinite(values[first:]).all() and np.isnan(values[:first]).all()
    if not runonce:
        np.testing.assert_allclose(values, energy_values(df, True)[0], rtol=1e-10, atol=1e-10)


def test_bad_bars_give_nan_values_and_one_warning(caplog):
    """A NaN close in the first training window, a zero close and a negative volume in the evaluated span (and
    in later training windows): what validate_ohlcv rejects, but a frame can hold. The rows whose features read
    them are NaN in both paths, every other bar has its value, and one warning names the first."""
    df = synthetic_market(900, seed=3)
    df.iloc[150, 3], df.iloc[450, 3], df.iloc[700, 4] = np.nan, 0.0, -1.0
    o, h, l, c, v = (df[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    bad = ~np.isfinite(market_features(o, h, l, np.where(c > 0, c, np.nan), np.where(v >= 0, v, np.nan))).all(axis=1)
    runs = {}
    for runonce in (True, False):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="btdensity.indicators.base"):
            runs[runonce], ind = energy_values(df, runonce)
        assert [r.getMessage().split(":")[0] for r in caplog.records] == ["Energy"]
        assert "bar 150 " in caplog.records[0].getMessage()
    first = ind.spec.first_fit
    values = runs[True]
    assert bad[450] and bad[700] and np.isnan(values[first:][bad[first:]]).all()
    assert np.isfinite(values[first:][~bad[first:]]).all() and (~bad[first:]).sum() > 500
    np.testing.assert_allclose(runs[False], values, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("runonce", [True, False])
def test_window_of_mostly_bad_bars_is_not_fitted(runonce):
    """NaN volumes on bars 190-260 spoil the rows 190-308 (volume_z reads 48 bars back): window 0 keeps 2 of its
    60 calibration rows, window 1 29 of its 140 fit rows, so neither is fitted and bars 248-547 are NaN; window 2
    (rows 348-547) serves bars 548 on."""
    df = synthetic_market(800, seed=3)
    df.iloc[190:261, 4] = np.nan
    values, ind = energy_values(df, runonce)
    assert ind.spec.first_fit == 248 and ind.cache.fits + ind.cache.hits == 2     # windows 2 and 3
    assert np.isnan(values[:548]).all() and np.isfinite(values[548:]).all()
