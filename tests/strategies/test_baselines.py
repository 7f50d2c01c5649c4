"""Baselines and the backtest runner: fills at the next bar's open, fees and value computed by hand."""
import numpy as np
import pandas as pd
import pytest

from btdensity.feeds import synthetic_market
from btdensity.runner import BacktestConfig, backtest


def frame_from_closes(closes, opens=None):
    closes = np.asarray(closes, dtype=float)
    opens = np.r_[closes[0], closes[:-1]] if opens is None else np.asarray(opens, dtype=float)
    idx = pd.date_range("2024-01-01", periods=len(closes), freq="1h", tz="UTC")
    return pd.DataFrame({"open": opens, "high": np.maximum(opens, closes) * 1.001,
                         "low": np.minimum(opens, closes) * 0.999, "close": closes, "volume": 1.0}, index=idx)


def test_buy_and_hold_fills_at_next_open_with_fee():
    opens = [100, 101, 103, 104, 110]
    closes = [101, 102, 104, 108, 111]
    df = frame_from_closes(closes, opens)
    fee, cash, target = 0.001, 10_000.0, 0.95
    res = backtest(df, BacktestConfig("buy_and_hold", cash=cash, commission=fee, params={"target": target}))
    size = target * cash / closes[0]          # sized on bar 0's close (value = cash) ...
    fill = opens[1]                            # ... filled at bar 1's open
    cash_left = cash - size * fill - size * fill * fee
    expected = [cash] + [cash_left + size * c for c in closes[1:]]
    np.testing.assert_allclose(res.values.to_numpy(), expected, rtol=1e-12)
    assert res.positions.iloc[0] == 0 and res.positions.iloc[1] == pytest.approx(size)


def test_slippage_moves_the_fill_against_the_trader():
    df = frame_from_closes([100, 100, 100, 100], [100, 100, 100, 100])
    res = backtest(df, BacktestConfig("buy_and_hold", cash=1000, commission=0.0, slippage=0.001))
    size = 0.95 * 1000 / 100
    # the fill price is capped by the bar's high (100.1) in backtrader: 100 * 1.001 = 100.1
    assert res.values.iloc[-1] == pytest.approx(1000 - size * 100.1 + size * 100)


def test_sma_cross_trades_at_the_open_after_the_cross():
    closes = np.r_[np.linspace(110, 100, 30), np.linspace(100, 130, 30), np.linspace(130, 90, 40)]
    df = frame_from_closes(closes)
    res = backtest(df, BacktestConfig("sma_cross", params={"fast": 5, "slow": 20}, commission=0.0))
    lines = res.lines
    fast, slow = lines["SMA.sma"].to_numpy(), lines["SMA_2.sma"].to_numpy()
    np.testing.assert_allclose(fast[-1], closes[-5:].mean())
    diff = np.sign(fast - slow)
    ups = [i for i in range(1, len(diff)) if diff[i] > 0 and diff[i - 1] <= 0 and np.isfinite(slow[i - 1])]
    downs = [i for i in range(1, len(diff)) if diff[i] < 0 and diff[i - 1] >= 0 and np.isfinite(slow[i - 1])]
    assert len(res.trades) == 1
    trade = res.trades.iloc[0]
    assert trade["open"] == df.index[ups[0] + 1].tz_localize(None)
    assert trade["close"] == df.index[downs[0] + 1].tz_localize(None)
    pos = res.positions.to_numpy()
    assert pos[ups[0]] == 0 and pos[ups[0] + 1] > 0


def test_buy_and_hold_tracks_benchmark_on_sample():
    df = synthetic_market(2000, seed=1)
    res = backtest(df, BacktestConfig("buy_and_hold", commission=0.0, params={"target": 1.0 - 1e-9}))
    # full investment from bar 1's open: the value tracks the benchmark from then on
    ratio = res.values.iloc[1:] / res.benchmark.iloc[1:]
    assert ratio.std() / ratio.mean() < 1e-6
    assert res.exposure == pytest.approx(1999 / 2000)


def test_bad_config_is_named():
    with pytest.raises(ValueError, match="cash"):
        BacktestConfig(cash=0)
    with pytest.raises(ValueError, match="unknown strategy 'nope'"):
        backtest(synthetic_market(50), BacktestConfig("nope"))
    with pytest.raises(ValueError, match="fast < slow"):
        backtest(synthetic_market(100), BacktestConfig("sma_cross", params={"fast": 30, "slow": 10}))
