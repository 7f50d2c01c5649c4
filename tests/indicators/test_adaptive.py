"""Adaptive conformal calibration: it reaches its target where a static calibration misses under drift, and it is
causal (truncation invariant) and identical batched and bar by bar."""
import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from btdensity import DataFrameFeed
from btdensity.evidence.replay import replay_indicator
from btdensity.indicators.adaptive import AdaptiveGate, AdaptiveInterval

N = 6000
Z90 = 1.6448536269514722


def drifting_market(n=N, seed=0):
    """Volatility drifting from 0.5 % to 0.75 % a bar; a forecast that keeps the first bars' 0.5 % (stale)."""
    rng = np.random.default_rng(seed)
    vol = np.linspace(0.005, 0.0075, n)
    r = vol * rng.standard_normal(n)
    close = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(r[:-1])]))
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    df = pd.DataFrame({"open": close, "high": close * 1.001, "low": close * 0.999, "close": close,
                       "volume": 1.0}, index=index)
    std = np.full(n, 0.005)
    forecast = np.column_stack([np.zeros(n), std, -Z90 * std, Z90 * std])   # mean, std, lower, upper
    forecast[:50] = np.nan                                                   # warm-up
    return df, forecast, r


def run(df, forecast, pvalues=None, runonce=True, **kwargs):
    Forecast = replay_indicator("Forecast", ("mean", "std", "lower", "upper"))
    Density = replay_indicator("Density", ("pvalue",))

    class S(bt.Strategy):
        def __init__(self):
            self.f = Forecast(self.data, values=forecast)
            self.ai = AdaptiveInterval(self.data, forecast=self.f, level=0.9, gamma=0.02, horizon=1)
            if pvalues is not None:
                self.d = Density(self.data, values=pvalues[:, None])
                self.ag = AdaptiveGate(self.data, density=self.d, alpha=0.05, **kwargs)

    cerebro = bt.Cerebro(stdstats=False, runonce=runonce)
    cerebro.adddata(DataFrameFeed(dataname=df))
    cerebro.addstrategy(S)
    s = cerebro.run()[0]
    n = len(df)
    out = {"lower": np.array(s.ai.lower.array[:n]), "upper": np.array(s.ai.upper.array[:n])}
    if pvalues is not None:
        out["gate"] = np.array(s.ag.gate.array[:n])
    return out


def coverage(lower, upper, r, start):
    ok = np.isfinite(lower[start:-1])
    y = r[start:-1][ok]
    return float(((y >= lower[start:-1][ok]) & (y <= upper[start:-1][ok])).mean())


def test_adaptive_interval_reaches_its_coverage_where_the_static_one_misses():
    df, forecast, r = drifting_market()
    out = run(df, forecast)
    static = coverage(forecast[:, 2], forecast[:, 3], r, 1000)
    adaptive = coverage(out["lower"], out["upper"], r, 1000)
    assert static < 0.87                                  # off by more than 3 points (measured 0.80)
    assert adaptive == pytest.approx(0.9, abs=0.01)


def test_adaptive_gate_closes_on_alpha_where_the_static_threshold_drifts():
    rng = np.random.default_rng(1)
    p = rng.uniform(size=N)
    p[N // 2:] = rng.uniform(size=N - N // 2) ** 1.6          # drift: small p-values grow more frequent
    p[:50] = np.nan
    df, forecast, _ = drifting_market()
    out = run(df, forecast, pvalues=p, gamma=0.002)
    late = slice(N // 2 + 1000, N)
    static_closed = float(np.mean(p[late] <= 0.05))
    adaptive_closed = float(np.mean(out["gate"][late] == 0))
    assert static_closed > 0.08
    assert adaptive_closed == pytest.approx(0.05, abs=0.012)


def test_batched_and_bar_by_bar_are_identical_and_a_prefix_changes_nothing():
    df, forecast, _ = drifting_market(n=1500)
    p = np.random.default_rng(2).uniform(size=1500)
    batched = run(df, forecast, pvalues=p)
    stepped = run(df, forecast, pvalues=p, runonce=False)
    short = run(df.iloc[:900], forecast[:900], pvalues=p[:900])
    for name in batched:
        np.testing.assert_array_equal(batched[name], stepped[name])
        np.testing.assert_array_equal(batched[name][:900], short[name])
    assert np.isnan(batched["lower"][:50]).all() and np.isfinite(batched["lower"][50:]).all()


def test_replayed_bars_give_the_batched_values():
    """Under backtrader's replay a bar forms from sub-bars and next() runs once per sub-bar: the recursion must
    advance once per bar (from the state before the bar), not once per call."""
    from btdensity.feeds import synthetic_market
    from btdensity.feeds.ohlcv import resample_ohlcv

    quarters = synthetic_market(4 * 1200, freq="15m", seed=5)
    hours = resample_ohlcv(quarters, pd.Timedelta(hours=1))
    n = len(hours)
    rng = np.random.default_rng(2)
    std = 0.004 * np.exp(0.3 * rng.standard_normal(n))
    forecast = np.column_stack([np.zeros(n), std, -Z90 * std, Z90 * std])
    forecast[:30] = np.nan
    p = rng.uniform(size=n)
    p[:30] = np.nan
    Forecast = replay_indicator("Forecast", ("mean", "std", "lower", "upper"))
    Density = replay_indicator("Density", ("pvalue",))

    def lines(replay_from=None):
        class S(bt.Strategy):
            def __init__(self):
                self.ai = AdaptiveInterval(self.data, forecast=Forecast(self.data, values=forecast), gamma=0.05,
                                           horizon=2)
                self.ag = AdaptiveGate(self.data, density=Density(self.data, values=p[:, None]), gamma=0.01)

        cerebro = bt.Cerebro(stdstats=False, runonce=replay_from is None)
        if replay_from is None:
            cerebro.adddata(DataFrameFeed(dataname=hours))
        else:
            cerebro.replaydata(DataFrameFeed(dataname=replay_from), timeframe=bt.TimeFrame.Minutes, compression=60)
        cerebro.addstrategy(S)
        s = cerebro.run()[0]
        m = len(s.data.datetime.array)
        return np.column_stack([np.array(line.array[:m]) for line in (s.ai.lower, s.ai.upper, s.ai.alpha,
                                                                      s.ag.gate, s.ag.alpha)])

    batched = lines()
    # replay groups bars by their close time, (t - 1h, t]: stamp the quarters with their close times
    replayed = lines(quarters.set_axis(quarters.index + pd.Timedelta(minutes=15)))
    assert replayed.shape == batched.shape
    np.testing.assert_allclose(replayed, batched, rtol=1e-12, atol=1e-15)
