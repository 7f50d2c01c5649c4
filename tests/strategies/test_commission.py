"""BybitCommission and BybitBroker fills: maker/taker fees, leverage margin, fractional sizes, slippage and
volume-limited fills, checked against hand-computed cash."""
import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from btdensity.feeds import DataFrameFeed
from btdensity.strategies import BYBIT_FEES, BybitBroker, BybitCommission, FractionalBarPerc
from btdensity.runner import BacktestConfig

OPEN = np.array([100, 101, 99, 102, 103, 104, 104], dtype=float)
CLOSE = np.array([100.5, 100, 101, 103, 102, 105, 104], dtype=float)


def bars(volume=10.0):
    idx = pd.date_range("2024-03-01", periods=len(OPEN), freq="1h", tz="UTC")
    return pd.DataFrame({"open": OPEN, "high": np.maximum(OPEN, CLOSE) + 1, "low": np.minimum(OPEN, CLOSE) - 1,
                         "close": CLOSE, "volume": volume}, index=idx)


class Script(bt.Strategy):
    """At bar i, calls ``self.<method>(**kwargs)`` from ``script[i]``; records cash, value, fills, rejections."""

    params = (("script", None),)

    def __init__(self):
        self.cash, self.value, self.fills, self.rejected = [], [], [], []

    def next(self):
        i = len(self) - 1
        if i in self.p.script:
            method, kwargs = self.p.script[i]
            getattr(self, method)(**kwargs)
        self.cash.append(self.broker.getcash())
        self.value.append(self.broker.getvalue())

    def notify_order(self, order):
        if order.status in (order.Partial, order.Completed):
            self.fills.append((len(self) - 1, order.executed.exbits[-1].size, order.executed.exbits[-1].price,
                               order.executed.exbits[-1].comm))
        elif order.status == order.Margin:
            self.rejected.append(len(self) - 1)


def run(script, *, cash=10_000.0, comminfo=None, df=None, slippage=0.0, filler=None):
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(DataFrameFeed(dataname=bars() if df is None else df))
    cerebro.addstrategy(Script, script=script)
    cerebro.setbroker(BybitBroker(cash=cash))
    cerebro.broker.addcommissioninfo(comminfo or BybitCommission())
    if slippage:
        cerebro.broker.set_slippage_perc(slippage)
    if filler is not None:
        cerebro.broker.set_filler(filler)
    return cerebro.run()[0], cerebro.broker


def test_bybit_base_tier_defaults():
    assert BYBIT_FEES == {"spot": (0.001, 0.001), "linear": (0.0002, 0.00055)}
    linear = BybitCommission(market="linear")
    assert (linear.maker, linear.taker) == (0.0002, 0.00055)
    assert linear.fee_rate(bt.Order.Limit) == 0.0002 and linear.fee_rate(bt.Order.Market) == 0.00055
    assert linear.fee_rate(bt.Order.Stop) == 0.00055
    cfg = BacktestConfig()
    assert (cfg.market, cfg.commission, cfg.maker_fee) == ("spot", 0.001, 0.001)
    assert BacktestConfig(market="linear", commission=0.0007).maker_fee == 0.0002


def test_spot_market_pays_taker_limit_pays_maker():
    maker, taker = 0.0002, 0.0007
    script = {0: ("buy", {"size": 2.5}),                                            # market: bar 1's open, 101
              2: ("sell", {"size": 1.5, "exectype": bt.Order.Limit, "price": 102.5}),  # bar 3 opens 102 < 102.5,
              4: ("close", {})}                                                     # high 104 reaches it: 102.5
    strat, broker = run(script, comminfo=BybitCommission(market="spot", maker=maker, taker=taker))
    assert [(i, s, p) for i, s, p, _ in strat.fills] == [(1, 2.5, 101.0), (3, -1.5, 102.5), (5, -1.0, 104.0)]
    fees = [2.5 * 101 * taker, 1.5 * 102.5 * maker, 1.0 * 104 * taker]
    np.testing.assert_allclose([c for *_, c in strat.fills], fees, rtol=0, atol=1e-12)
    cash1 = 10_000 - 2.5 * 101 - fees[0]
    cash3 = cash1 + 1.5 * 102.5 - fees[1]
    cash5 = cash3 + 1.0 * 104 - fees[2]
    expected_cash = [10_000, cash1, cash1, cash3, cash3, cash5, cash5]
    expected_value = [10_000, cash1 + 2.5 * 100, cash1 + 2.5 * 101, cash3 + 103, cash3 + 102, cash5, cash5]
    np.testing.assert_allclose(strat.cash, expected_cash, rtol=0, atol=1e-8)
    np.testing.assert_allclose(strat.value, expected_value, rtol=0, atol=1e-8)
    assert broker.fees_paid == pytest.approx(sum(fees), abs=1e-12)


def test_linear_margin_is_notional_over_leverage_and_limits_orders():
    ci = BybitCommission(market="linear", leverage=5.0)
    # 45 units at 101 lock 909 of margin (+ 2.5 fee): accepted; 60 units need 1212: rejected
    strat, _ = run({0: ("buy", {"size": 45.0})}, cash=1_000.0, comminfo=ci)
    assert [f[:3] for f in strat.fills] == [(1, 45.0, 101.0)]
    fee = 45 * 101 * 0.00055
    assert strat.cash[1] == pytest.approx(1_000 - 45 * 101 / 5 - fee + 45 * (100 - 101), abs=1e-9)
    assert strat.value[1] == pytest.approx(1_000 - fee + 45 * (100 - 101), abs=1e-9)
    for size in (60.0, -60.0):  # shorts lock margin too
        strat, _ = run({0: ("buy" if size > 0 else "sell", {"size": abs(size)})}, cash=1_000.0,
                       comminfo=BybitCommission(market="linear", leverage=5.0))
        assert strat.fills == [] and strat.rejected == [1]
    strat, _ = run({0: ("buy", {"size": 45.0})}, cash=1_000.0, comminfo=BybitCommission(market="linear"))
    assert strat.fills == [] and strat.rejected == [1]  # without leverage 45 units need 4545


def test_order_target_percent_targets_exposure_in_fractions():
    ci = BybitCommission(market="linear", leverage=3.0)
    strat, _ = run({0: ("order_target_percent", {"target": 0.8}), 3: ("order_target_percent", {"target": -0.5})},
                   comminfo=ci)
    size0 = 0.8 * 10_000 / 100.5                      # notional 0.8 × value at bar 0's close, not × leverage
    assert strat.fills[0][:2] == (1, pytest.approx(size0, rel=1e-12))
    target = -0.5 * strat.value[3] / 103              # from the position's signed notional at bar 3's close
    assert strat.fills[1][:2] == (4, pytest.approx(target - size0, rel=1e-12))


def test_slippage_moves_linear_fills_against_the_trader():
    ci = BybitCommission(market="linear", leverage=2.0)
    strat, _ = run({0: ("buy", {"size": 3.0}), 2: ("close", {})}, comminfo=ci, slippage=0.004)
    buy, sell = 101 * 1.004, 102 * 0.996           # inside the bars' ranges (high 102, low 101)
    assert [f[2] for f in strat.fills] == [pytest.approx(buy, rel=1e-14), pytest.approx(sell, rel=1e-14)]
    expected = 10_000 + 3 * (sell - buy) - 3 * (buy + sell) * 0.00055
    assert strat.value[-1] == pytest.approx(expected, abs=1e-8) and strat.cash[-1] == pytest.approx(expected, abs=1e-8)


def test_volume_fill_keeps_fractions_and_spreads_the_order_over_bars():
    df = bars(volume=2.5)
    strat, broker = run({0: ("buy", {"size": 2.5})}, comminfo=BybitCommission(market="linear"), df=df,
                        filler=FractionalBarPerc(perc=30.0))
    # 30 % of 2.5 per bar = 0.75, three times, then the remaining 0.25, each at its bar's open
    fills = [f[:3] for f in strat.fills]
    assert [i for i, *_ in fills] == [1, 2, 3, 4] and [p for *_, p in fills] == [101.0, 99.0, 102.0, 103.0]
    np.testing.assert_allclose([s for _, s, _ in fills], [0.75, 0.75, 0.75, 0.25], rtol=0, atol=1e-12)
    assert broker.fees_paid == pytest.approx(0.75 * (101 + 99 + 102) * 0.00055 + 0.25 * 103 * 0.00055, abs=1e-12)
    # backtrader's own FixedBarPerc floors 0.75 coins to 0: the order never fills
    strat, _ = run({0: ("buy", {"size": 2.5})}, comminfo=BybitCommission(market="linear"), df=df,
                   filler=bt.fillers.FixedBarPerc(perc=30.0))
    assert strat.fills == []
    with pytest.raises(ValueError, match="perc"):
        FractionalBarPerc(perc=0.0)


def test_bad_terms_are_rejected_with_a_clear_message():
    with pytest.raises(ValueError, match="market must be one of"):
        BybitCommission(market="inverse")
    with pytest.raises(ValueError, match="spot trades without leverage"):
        BybitCommission(market="spot", leverage=2.0)
    with pytest.raises(ValueError, match="leverage must be a number >= 1"):
        BybitCommission(market="linear", leverage=0.5)
    with pytest.raises(ValueError, match=r"taker=0.5\)"):
        BybitCommission(market="linear", taker=0.5)
    with pytest.raises(ValueError, match="maker_fee is a fraction"):
        BacktestConfig(maker_fee=-0.001)
    with pytest.raises(ValueError, match="volume_fill is a percentage"):
        BacktestConfig(volume_fill=150.0)
    with pytest.raises(ValueError, match="spot trades without leverage"):
        BacktestConfig(leverage=3.0)
