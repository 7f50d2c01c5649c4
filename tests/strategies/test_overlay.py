"""The risk overlay on scripted indicator values: the rebalance band and the minimum holding time, the smooth gate's
hysteresis and cost-aware entries give exactly the expected trades; a constant scale reproduces the unmanaged
strategy's trades; RiskScale's volatility scale matches a hand computation in both run modes and in replay."""
import doctest
import importlib
import math

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from btdensity.feeds import DataFrameFeed, synthetic_market
from btdensity.indicators.density import smooth_gate
from btdensity.indicators.density_baselines import GaussianDensity
from btdensity.runner import BacktestConfig, backtest
from btdensity.strategies import (BuyAndHold, BybitBroker, BybitCommission, RiskManaged, RiskScale, SmaCross,
                                  register_strategy, round_trip_cost)

NAN = float("nan")


class Scripted(bt.Indicator):
    """Lines replayed from scripted arrays (``values``: line name -> list, one value a bar)."""

    lines = ("scale", "pvalue", "zscore", "edge")
    params = (("values", None),)

    def next(self):
        i = len(self) - 1
        for name, values in self.p.values.items():
            getattr(self.lines, name)[0] = values[i] if i < len(values) else NAN


class Trader(RiskManaged, bt.Strategy):
    """A managed strategy whose core, scale (or RiskScale inputs) and edge are scripted; records every order it sends
    with the bar, the target and what the order was sized from."""

    params = (("core_script", ()), ("script", None), ("risk_kw", None), ("use_edge", False))

    def __init__(self):
        super().__init__()
        self.scripted = Scripted(values=self.p.script or {})
        if self.p.risk_kw is not None:
            self.risk = RiskScale(self.data, **self.p.risk_kw(self.scripted))
        elif "scale" in (self.p.script or {}):
            self.risk = self.scripted
        self.sent = []

    def core(self):
        i = len(self) - 1
        return self.p.core_script[i] if i < len(self.p.core_script) else NAN

    def edge(self):
        return self.scripted.edge[0] if self.p.use_edge else None

    def order_target_percent(self, data=None, target=0.0, **kwargs):
        state = (self.broker.getvalue(), self.data.close[0], self.position.size)
        order = super().order_target_percent(data=data, target=target, **kwargs)
        self.sent.append((len(self) - 1, target, *state, 0.0 if order is None else order.created.size))
        return order


def bars(n, seed=0):
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    opens = np.r_[close[0], close[:-1]]
    idx = pd.date_range("2024-05-01", periods=n, freq="1h", tz="UTC")
    return pd.DataFrame({"open": opens, "high": np.maximum(opens, close) * 1.001,
                         "low": np.minimum(opens, close) * 0.999, "close": close, "volume": 1e6}, index=idx)


def run(df=None, commission=0.001, slippage=0.0, runonce=True, **params):
    df = bars(20) if df is None else df
    cerebro = bt.Cerebro(stdstats=False, runonce=runonce)
    cerebro.adddata(DataFrameFeed(dataname=df))
    cerebro.addstrategy(Trader, **params)
    cerebro.setbroker(BybitBroker(cash=10_000.0))
    cerebro.broker.addcommissioninfo(BybitCommission(market="spot", taker=commission, maker=commission))
    if slippage:
        cerebro.broker.set_slippage_perc(slippage)
    return cerebro.run()[0]


def trades_of(strategy):
    """``[(bar, target)]`` of the orders sent, each checked to be sized as order_target_percent sizes it."""
    for bar, target, value, close, position, size in strategy.sent:
        assert size == pytest.approx(target * value / close - position, rel=1e-12, abs=1e-12)
    return [(bar, round(target, 12)) for bar, target, *_ in strategy.sent]


def test_band_and_minimum_holding_time_give_exactly_the_expected_trades():
    scale = [1.0, 0.7, 0.7, 0.7, 0.6, 0.6, 0.6, 0.4, NAN, 0.4, 0.4, 0.5, 1.0, 1.0, 1.0, 0.95, 0.95]
    core = [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1]
    s = run(core_script=core, script={"scale": scale}, target=0.5, band=0.1, min_hold=3)
    # 0: enter; 1-2: moved 0.15 but held < 3 bars; 3: resized; 4-6: moved 0.05 <= band; 7: resized; 8: NaN scale;
    # 9: the core leaves, at once (min_hold does not hold the core); 11: enter; 12-13: held < 3; 14: resized;
    # 15-16: moved 0.025
    assert trades_of(s) == [(0, 0.5), (3, 0.35), (7, 0.2), (9, 0.0), (11, 0.25), (14, 0.5)]


def test_the_default_band_is_the_cube_root_of_the_round_trip_cost():
    s = run(core_script=[1] * 20, script={"scale": [1.0] * 5 + [0.88] * 5 + [0.86] * 10}, target=1.0 - 1e-9,
            min_hold=0, commission=0.0008, slippage=0.0002)
    cost = 2 * (0.0008 + 0.0002)
    assert s.cost() == pytest.approx(cost, rel=1e-12) and s.rule.band == pytest.approx(cost ** (1 / 3))   # 0.126
    assert [bar for bar, _ in trades_of(s)] == [0, 10]      # 0.12 <= band; 0.14 > band


def test_smooth_gate_hysteresis_gives_exactly_the_expected_trades():
    p = [0.5, 0.5, 0.04, 0.3, 0.1, 0.3, 0.3, 0.3, 0.03, 0.06, 0.04, 0.5, 0.5, 0.5, 0.5]
    gate = smooth_gate(p, 0.05, 0.2, 3)
    # closes at bar 2; bar 4 (0.1) breaks the run above 0.2; reopens after 3 bars above it (bar 7); closes at 8 and
    # stays closed while p hovers at alpha (bars 9-10); reopens after 3 bars above 0.2 (bar 13)
    assert gate.tolist() == [1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1]

    def risk(scripted):
        return dict(vol=False, density=scripted, alpha=0.05, reopen=0.2, reopen_bars=3, closed_scale=0.0)

    s = run(core_script=[1] * len(p), script={"pvalue": p}, risk_kw=risk, target=0.5, band=0.1, min_hold=0)
    np.testing.assert_array_equal(np.asarray(s.risk.density_scale.array)[:len(p)], gate)
    assert trades_of(s) == [(0, 0.5), (2, 0.0), (7, 0.5), (8, 0.0), (13, 0.5)]
    # the gate without hysteresis (p > alpha) flips at bars 2, 3, 8, 9, 10 and 11: each flip would be a trade
    raw = (np.asarray(p) > 0.05).astype(float)
    assert [i for i in range(1, len(p)) if raw[i] != raw[i - 1]] == [2, 3, 8, 9, 10, 11]


def test_energy_scale_and_nan_inputs():
    z = [0.0, 1.5, 2.25, 3.0, 9.0, NAN, 0.0]

    def risk(scripted):
        return dict(vol=False, energy=scripted, z_low=1.5, z_high=3.0, energy_floor=0.5, energy_halflife=1)

    s = run(core_script=[1] * len(z), script={"zscore": z}, risk_kw=risk, target=0.5, band=0.0, min_hold=0)
    # halflife 1: the smoothed z moves halfway to each new value: 0, 0.75, 1.5, 2.25, 5.625, (NaN: kept), 2.8125
    expected = [1.0, 1.0, 1.0, 0.75, 0.5, NAN, 1 - 0.5 * (2.8125 - 1.5) / 1.5]
    np.testing.assert_allclose(np.asarray(s.risk.scale.array)[:len(z)], expected, rtol=1e-12)
    assert trades_of(s) == [(0, 0.5), (3, 0.375), (4, 0.25), (6, round(0.5 * expected[-1], 12))]


@pytest.mark.parametrize("commission, slippage", [(0.001, 0.0), (0.00055, 0.0005)])
def test_cost_aware_entries_never_trade_when_the_edge_is_below_the_cost(commission, slippage):
    cost = 2 * (commission + slippage)
    threshold = cost * 1.5                                   # edge_margin 0.5
    below = [threshold * f for f in (0.0, 0.5, 0.9, 0.999, 1.0)] + [-1.0, NAN]
    s = run(core_script=[1] * 20, script={"edge": below * 2}, use_edge=True, commission=commission,
            slippage=slippage, target=0.5)
    assert s.cost() == pytest.approx(cost, rel=1e-12)
    assert s.sent == [] and s.position.size == 0
    edge = below[:5] + [threshold * 1.001] + [0.0] * 10
    s = run(core_script=[1] * 20, script={"edge": edge}, use_edge=True, commission=commission, slippage=slippage,
            target=0.5)
    assert trades_of(s) == [(5, 0.5)]                        # the first bar whose edge beats the cost


def test_cost_aware_increases_wait_for_the_edge_decreases_do_not():
    scale = [0.5] * 4 + [1.0] * 4 + [0.2] * 4
    edge = [1.0] + [0.0] * 11                                # an edge at the entry only
    s = run(core_script=[1] * 12, script={"scale": scale, "edge": edge}, use_edge=True, target=0.5, band=0.1,
            min_hold=0)
    assert trades_of(s) == [(0, 0.25), (8, 0.1)]


def test_round_trip_cost_reads_the_commission_scheme_and_slippage():
    s = run(core_script=[0] * 3, commission=0.00055, slippage=0.0002)
    assert round_trip_cost(s.broker, s.data) == pytest.approx(2 * (0.00055 + 0.0002), rel=1e-12)


def _ewma_vol_scale(close, halflife, reference_bars):
    """RiskScale's vol_scale by hand: EWMA of squared log returns, median (upper middle) of the last sigmas."""
    w = 1 - 0.5 ** (1 / halflife)
    var, sigmas, out = NAN, [], []
    for t in range(len(close)):
        if t:
            x = math.log(close[t] / close[t - 1]) ** 2
            var = x if math.isnan(var) else var + w * (x - var)
        if math.isnan(var):
            out.append(NAN)
            continue
        sigmas.append(math.sqrt(var))
        window = sorted(sigmas[-reference_bars:])
        out.append(min(window[len(window) // 2] / sigmas[-1], 1.0) if len(window) >= halflife else NAN)
    return np.array(out)


class Holder(bt.Strategy):
    params = (("kw", None),)

    def __init__(self):
        self.risk = RiskScale(self.data, **self.p.kw)


def _scale_lines(df, runonce=True, replay=None, **kw):
    cerebro = bt.Cerebro(stdstats=False, runonce=runonce)
    if replay is None:
        cerebro.adddata(DataFrameFeed(dataname=df))
    else:
        cerebro.replaydata(DataFrameFeed(dataname=replay), timeframe=bt.TimeFrame.Minutes, compression=60)
    cerebro.addstrategy(Holder, kw=kw)
    s = cerebro.run()[0]
    n = len(s.data.datetime.array)
    return np.column_stack([np.asarray(s.risk.lines[j].array, dtype=float)[:n] for j in range(s.risk.size())])


def test_vol_scale_by_hand_in_both_modes_and_in_replay():
    quarters = synthetic_market(4 * 300, freq="15min", seed=4)
    hours = quarters.resample("1h", label="left", closed="left").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    kw = dict(vol_halflife=6, reference_bars=25)
    batched = _scale_lines(hours, **kw)
    np.testing.assert_allclose(batched[:, 1], _ewma_vol_scale(hours["close"].to_numpy(), 6, 25), rtol=1e-12)
    assert 0.2 < np.nanmin(batched[:, 1]) < 1.0 and np.nanmax(batched[:, 1]) == 1.0
    np.testing.assert_array_equal(_scale_lines(hours, runonce=False, **kw), batched)
    closing = quarters.set_axis(quarters.index + pd.Timedelta(minutes=15))   # replay groups bars by close time
    np.testing.assert_array_equal(_scale_lines(None, runonce=False, replay=closing, **kw), batched)


class DensityHolder(bt.Strategy):
    params = (("kw", None),)

    def __init__(self):
        self.density = GaussianDensity(self.data, **self.p.kw)


@pytest.mark.parametrize("runonce", [True, False])
def test_the_density_indicators_smooth_gate_line(runonce, tmp_path):
    cerebro = bt.Cerebro(stdstats=False, runonce=runonce)
    cerebro.adddata(DataFrameFeed(dataname=synthetic_market(1200, seed=2)))
    cerebro.addstrategy(DensityHolder, kw=dict(train_bars=300, retrain_every=200, cache_dir=str(tmp_path), alpha=0.1,
                                               reopen_bars=6))
    d = cerebro.run()[0].density
    pvalue, gate, smooth = (np.asarray(line.array, dtype=float)[:1200] for line in (d.pvalue, d.gate, d.smooth_gate))
    np.testing.assert_array_equal(smooth, smooth_gate(pvalue, 0.1, 0.2, 6))      # reopen: min(2 alpha, 0.5)
    flips = [int(np.abs(np.diff(x[np.isfinite(x)])).sum()) for x in (gate, smooth)]
    assert 0 < flips[1] < flips[0] / 2, flips
    assert np.isnan(smooth[:d.spec.first_fit]).all() and np.isfinite(smooth[d.spec.first_fit:]).all()


@register_strategy("test_sma_constant_scale")
class SmaConstantScale(SmaCross):
    """SmaCross with the overlay's machinery and a constant scale (RiskScale with every part off)."""

    def __init__(self):
        super().__init__()
        self.risk = RiskScale(self.data, vol=False)


@register_strategy("test_hold_constant_scale")
class HoldConstantScale(BuyAndHold):
    def __init__(self):
        super().__init__()
        self.risk = RiskScale(self.data, vol=False)


@pytest.mark.parametrize("managed, unmanaged, params", [
    ("test_sma_constant_scale", "sma_cross", {"fast": 5, "slow": 20}),
    ("test_sma_constant_scale", "sma_cross", {"fast": 5, "slow": 20, "short": True}),
    ("test_hold_constant_scale", "buy_and_hold", {}),
])
def test_a_constant_scale_reproduces_the_unmanaged_strategy(managed, unmanaged, params):
    df = synthetic_market(1500, seed=3)
    results = [backtest(df, BacktestConfig(name, params=params, commission=0.001)) for name in (managed, unmanaged)]
    assert (results[0].strategy.risk.scale.array[0:1500] == np.ones(1500)).all()
    pd.testing.assert_frame_equal(results[0].trades, results[1].trades)
    pd.testing.assert_series_equal(results[0].values, results[1].values)
    assert len(results[0].trades) > (10 if unmanaged == "sma_cross" else -1)


def test_the_overlay_switch_scales_the_baselines(tmp_path):
    df = synthetic_market(3000, seed=1)
    plain = backtest(df, BacktestConfig("buy_and_hold", commission=0.001))
    managed = backtest(df, BacktestConfig("buy_and_hold", params={"overlay": True, "vol_halflife": 24},
                                          commission=0.001))
    weights = (managed.positions * managed.prices["close"] / managed.values).to_numpy()
    assert plain.positions.iloc[-1] > 0 and np.nanmin(weights[200:]) < 0.8 < np.nanmax(weights[200:]) <= 0.97
    changes = np.count_nonzero(np.diff(managed.positions.to_numpy()))
    assert 1 < changes < 3000 / 24                               # resized now and then, never within 24 bars


def test_doctests_of_the_overlay_modules():
    for name in ("strategies.rebalance", "strategies.managed", "strategies.registry", "indicators.density"):
        result = doctest.testmod(importlib.import_module(f"btdensity.{name}"))
        assert result.failed == 0 and result.attempted > 0, name


def test_the_readme_example_of_a_managed_strategy_runs():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text[text.index("## Strategies and sizers"):]
    namespace = {"__name__": "__main__"}
    exec(compile(re.search(r"```python\n(.*?)```", section, re.S).group(1), "README managed strategy", "exec"),
         namespace)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(DataFrameFeed(dataname=synthetic_market(1500, seed=2)))
    cerebro.addstrategy(namespace["Trend"])
    cerebro.setbroker(BybitBroker(cash=10_000.0))
    cerebro.broker.addcommissioninfo(BybitCommission(market="spot"))
    strategy = cerebro.run()[0]
    assert strategy.rule.band == pytest.approx(0.002 ** (1 / 3)) and strategy.holding.since > 0
