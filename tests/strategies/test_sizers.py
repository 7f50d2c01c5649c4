"""EnergyScaledSizer and UncertaintySizer: exact order sizes for scripted indicator values, driven by real
backtrader indicators that replay a scripted array; never beyond cash (spot) or margin (perpetuals)."""
import math

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from btdensity.feeds import DataFrameFeed
from btdensity.strategies import BybitBroker, BybitCommission, EnergyScaledSizer, UncertaintySizer

NAN = float("nan")
N = 10
CLOSE = 100.0 + np.arange(N) * 0.5
OPEN = np.r_[CLOSE[0], CLOSE[:-1]]


class ScriptedEnergy(bt.Indicator):
    """The lines of ``btdensity.indicators.Energy``, replaying ``zscore`` from a scripted array."""

    lines = ("energy", "zscore", "pvalue")
    params = (("zscore", ()),)

    def next(self):
        self.lines.zscore[0] = self.p.zscore[len(self) - 1]


class ScriptedBNN(bt.Indicator):
    """The lines of ``btdensity.indicators.BNNUncertainty``, replaying mean / epistemic / aleatoric."""

    lines = ("mean", "epistemic", "aleatoric", "lower", "upper")
    params = (("mean", ()), ("epistemic", ()), ("aleatoric", ()), ("horizon", 1), ("zero_mean", False))

    def next(self):
        i = len(self) - 1
        self.lines.mean[0], self.lines.epistemic[0], self.lines.aleatoric[0] = (
            self.p.mean[i], self.p.epistemic[i], self.p.aleatoric[i])


class Trader(bt.Strategy):
    """Calls ``buy()`` / ``sell()`` without a size at scripted bars; records what the sizer was given and returned."""

    params = (("actions", {}), ("energy_kw", None), ("bnn_kw", None), ("sizer", None))

    def __init__(self):
        if self.p.energy_kw is not None:
            self.energy = ScriptedEnergy(**self.p.energy_kw)
        if self.p.bnn_kw is not None:
            self.uncertainty = ScriptedBNN(**self.p.bnn_kw)
        if self.p.sizer is not None:  # the indicator object itself, not an attribute name
            cls, kw = self.p.sizer
            self.setsizer(cls(**kw, **{"energy" if cls is EnergyScaledSizer else "uncertainty":
                                       self.energy if cls is EnergyScaledSizer else self.uncertainty}))
        self.orders = []
        self.outcomes = []

    def notify_order(self, order):
        if order.status in (order.Completed, order.Margin, order.Rejected):
            self.outcomes.append((order.getstatusname(), order.executed.size, order.executed.price))

    def next(self):
        i = len(self) - 1
        if i in self.p.actions:
            state = (self.broker.getvalue(), self.broker.getcash(), self.data.close[0], self.position.size)
            order = (self.buy if self.p.actions[i] == "buy" else self.sell)()
            self.orders.append((i, abs(order.created.size) if order is not None else 0.0) + state)


def run(actions, *, sizer=None, addsizer=None, energy=None, bnn=None, market="spot", leverage=1.0, cash=10_000.0,
        opens=OPEN, slippage=0.0, outcomes=False):
    idx = pd.date_range("2024-05-01", periods=N, freq="1h", tz="UTC")
    df = pd.DataFrame({"open": opens, "high": np.maximum(opens, CLOSE) + 1, "low": np.minimum(opens, CLOSE) - 1,
                       "close": CLOSE, "volume": 1e6}, index=idx)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(DataFrameFeed(dataname=df))
    cerebro.addstrategy(Trader, actions=actions, energy_kw=energy, bnn_kw=bnn, sizer=sizer)
    cerebro.setbroker(BybitBroker(cash=cash))
    if slippage:
        cerebro.broker.set_slippage_perc(slippage)
    cerebro.broker.addcommissioninfo(BybitCommission(market=market, leverage=leverage))
    if addsizer is not None:
        cerebro.addsizer(addsizer[0], **addsizer[1])
    strat = cerebro.run()[0]
    return (strat.orders, strat.outcomes) if outcomes else strat.orders


def z_script(values):
    return {"zscore": list(values) + [NAN] * (N - len(values))}


def test_energy_sizer_scales_with_zscore_and_closes_opposite_positions():
    z = [-1.0, 0, 0, 1.5, 0, 0, 3.5, NAN, 2.9, 0]
    actions = {0: "buy", 2: "sell", 3: "buy", 5: "sell", 6: "buy", 7: "buy", 8: "sell"}
    orders = run(actions, addsizer=(EnergyScaledSizer, {"base": 0.95, "threshold": 3.0}), energy=z_script(z))
    by_bar = {i: (size, value, close, pos) for i, size, value, _, close, pos in orders}
    v0, c0 = by_bar[0][1], by_bar[0][2]
    assert by_bar[0][0] == pytest.approx(0.95 * 1.0 * v0 / c0, rel=1e-13)            # z ≤ 0: the full base
    assert by_bar[2][0] == pytest.approx(by_bar[2][3]) and by_bar[2][3] > 0           # sell while long: close it
    _, v3, c3, _ = by_bar[3]
    assert by_bar[3][0] == pytest.approx(0.95 * (1 - 1.5 / 3.0) * v3 / c3, rel=1e-13)  # half of base at z = 1.5
    assert by_bar[6][0] == 0.0 and by_bar[7][0] == 0.0                                 # z ≥ threshold, NaN: none
    _, v8, c8, pos8 = by_bar[8]
    assert pos8 == 0 and by_bar[8][0] == pytest.approx(0.95 * (1 - 2.9 / 3.0) * v8 / c8, rel=1e-13)  # a short


def test_energy_sizer_never_exceeds_cash_and_rounds_whole_units():
    z = z_script([-2.0])
    fee = 0.001  # spot taker: the cap keeps room for it, at the close plus the default 0.5 % headroom
    (_, size, value, cash, close, _), = run({0: "buy"}, addsizer=(EnergyScaledSizer, {"base": 1.0}), energy=z)
    assert size == pytest.approx(cash / (close * 1.005 * (1 + fee)), rel=1e-13) and size < value / close
    (_, size, value, cash, close, _), = run({0: "buy"}, energy=z,
                                            sizer=(EnergyScaledSizer, {"base": 0.937, "whole_units": True}))
    assert size == math.floor(0.937 * value / close) == 93  # 93.7 units rounded down
    # a strategy without the named attribute gets a clear error
    with pytest.raises(ValueError, match="no attribute 'energy'"):
        run({0: "buy"}, addsizer=(EnergyScaledSizer, {}))


def test_energy_sizer_linear_form_maps_z_from_z_min_to_threshold():
    # form="linear": base × (1 − clip((z − z_min) / (threshold − z_min), 0, 1)), here z_min −2, threshold 3
    z = [-3.0, 0, 0.0, 0, 0.5, 0, 2.9, 3.0, NAN, 0]
    actions = {0: "buy", 1: "sell", 2: "buy", 3: "sell", 4: "buy", 5: "sell", 6: "buy", 7: "buy", 8: "buy"}
    orders = run(actions, addsizer=(EnergyScaledSizer, {"base": 0.95, "threshold": 3.0, "form": "linear",
                                                        "z_min": -2.0}), energy=z_script(z))
    by_bar = {i: (size, value, close, pos) for i, size, value, _, close, pos in orders}
    for bar, share in ((0, 1.0), (2, 1 - 2 / 5), (4, 1 - 2.5 / 5)):        # z ≤ z_min: all of base; z = 0: 60 %
        _, value, close, pos = by_bar[bar]
        assert pos == 0 and by_bar[bar][0] == pytest.approx(0.95 * share * value / close, rel=1e-13), bar
    _, v6, c6, _ = by_bar[6]
    assert by_bar[6][0] == pytest.approx(0.95 * (1 - 4.9 / 5) * v6 / c6, rel=1e-12)   # 2 % of base at z = 2.9
    assert by_bar[7][0] == 0.0 and by_bar[8][0] == 0.0                                 # z = threshold, NaN: none


@pytest.mark.parametrize("z", [[-1.0, 0.0, 1.5, 2.9], [0.25, 3.5, -4.0, 1.0]])
def test_energy_sizer_linear_form_with_z_min_0_is_the_excess_form(z):
    actions = {0: "buy", 1: "sell", 2: "buy", 3: "sell"}   # each buy from flat, each sell closes it

    def sizes(**kw):
        return [size for _, size, *_ in run(actions, energy=z_script(z), addsizer=(EnergyScaledSizer, kw))]

    excess = sizes(threshold=3.0)
    assert sizes(threshold=3.0, form="linear", z_min=0.0) == pytest.approx(excess, rel=1e-13)
    assert any(s > 0 for s in excess) and sizes(threshold=3.0, form="linear") != pytest.approx(excess)


def bnn_script(mean, epi, alea, horizon=1):
    pad = [NAN] * (N - len(mean))
    return {"mean": list(mean) + pad, "epistemic": list(epi) + pad, "aleatoric": list(alea) + pad, "horizon": horizon}


def test_uncertainty_sizer_targets_volatility_per_bar():
    # σ = sqrt(0.03² + 0.04²) = 0.05 over the horizon
    bnn = bnn_script([0.0] * 4, [0.03, 0.03, 0.003, NAN], [0.04, 0.04, 0.004, 0.04])
    actions = {0: "buy", 1: "sell", 2: "buy", 3: "buy"}
    orders = run(actions, addsizer=(UncertaintySizer, {"target_vol": 0.01}), bnn=bnn, market="linear", leverage=5.0)
    (_, s0, v0, _, c0, _), (_, s1, *_), (_, s2, v2, _, c2, _), (_, s3, *_) = orders
    assert s0 == pytest.approx(0.01 / 0.05 * v0 / c0, rel=1e-13)           # 20 % of value
    assert s1 == pytest.approx(s0) and orders[1][5] == pytest.approx(s0)    # sell while long: close it
    assert s2 == pytest.approx(1.0 * v2 / c2, rel=1e-13)                    # 0.01 / 0.005 = 2, capped at 1×
    assert s3 == 0.0                                                       # NaN epistemic: no order
    # the indicator's horizon: σ over 4 bars is 0.05, per bar 0.025 → 40 % of value
    bnn4 = bnn_script([0.0], [0.03], [0.04], horizon=4)
    (_, s, v, _, c, _), = run({0: "buy"}, addsizer=(UncertaintySizer, {"target_vol": 0.01}), bnn=bnn4,
                               market="linear", leverage=5.0)
    assert s == pytest.approx(0.4 * v / c, rel=1e-13)


def test_uncertainty_sizer_kelly_cap_and_direction():
    # σ² = 0.03² + 0.04² = 0.0025; vol target 0.02 / 0.05 = 0.4 of value; half Kelly = 0.5 × mean / 0.0025
    mean = [0.001, 0, 0, 0, 0.001, -0.001, 0, 0.02, 0.02]
    bnn = bnn_script(mean, [0.03] * 9, [0.04] * 9)
    actions = {0: "buy", 2: "sell", 4: "sell", 5: "sell", 7: "buy", 8: "buy"}
    orders = run(actions, bnn=bnn, market="linear", leverage=5.0,
                 sizer=(UncertaintySizer, {"target_vol": 0.02, "kelly_fraction": 0.5, "max_leverage": 2.0}))
    sizes = {i: (s, v, c, pos) for i, s, v, _, c, pos in orders}
    assert sizes[0][0] == pytest.approx(0.2 * sizes[0][1] / sizes[0][2], rel=1e-13)  # Kelly 0.2 binds
    assert sizes[2][3] > 0 and sizes[2][0] == pytest.approx(sizes[2][3])             # sell while long: close
    assert sizes[4][3] == 0 and sizes[4][0] == 0.0                                   # short against a positive mean
    assert sizes[5][0] == pytest.approx(0.2 * sizes[5][1] / sizes[5][2], rel=1e-13)  # short on a negative mean
    assert sizes[7][3] < 0 and sizes[7][0] == pytest.approx(-sizes[7][3])            # buy while short: close
    # Kelly 0.5 × 0.02 / 0.0025 = 4 → the vol target 0.4 binds
    assert sizes[8][3] == 0 and sizes[8][0] == pytest.approx(0.4 * sizes[8][1] / sizes[8][2], rel=1e-13)


def test_uncertainty_sizer_kelly_cap_refuses_a_zero_mean_forecast():
    bnn = {**bnn_script([0.0] * 3, [0.03] * 3, [0.04] * 3), "zero_mean": True}
    with pytest.raises(ValueError, match=r"kelly_fraction=...\) sizes by the forecast's mean: give it a "
                                         r"BNNUncertainty\(zero_mean=False\)"):
        run({0: "buy"}, bnn=bnn, sizer=(UncertaintySizer, {"kelly_fraction": 0.5}))
    orders = run({0: "buy"}, bnn=bnn, sizer=(UncertaintySizer, {"target_vol": 0.02}))   # no Kelly cap: fine
    assert orders[0][1] > 0


def test_uncertainty_sizer_never_exceeds_margin():
    # max_leverage 3 asks for 3× value of notional; leverage 2 allows cash / (fill / 2 + taker × fill), where
    # the fill may reach the close plus 0.5 % headroom
    bnn = bnn_script([0.0], [0.0003], [0.0004])
    (_, size, value, cash, close, _), = run({0: "buy"}, addsizer=(UncertaintySizer, {"max_leverage": 3.0}),
                                            bnn=bnn, market="linear", leverage=2.0)
    fill = close * 1.005
    assert size == pytest.approx(cash / (fill / 2 + 0.00055 * fill), rel=1e-13) and size < 3 * value / close
    (_, size, value, cash, close, _), = run({0: "buy"}, bnn=bnn, market="spot",
                                            sizer=(UncertaintySizer, {"max_leverage": 3.0, "whole_units": True}))
    assert size == math.floor(cash / (close * 1.005 * 1.001)) == 99


@pytest.mark.parametrize("gap, slippage, headroom, status", [
    (0.0, 0.0, 0.005, "Completed"),      # sized at the cash cap, filled at the same price: fits
    (0.0, 0.002, 0.005, "Completed"),    # the broker's slippage is part of the cap
    (0.004, 0.0, 0.005, "Completed"),    # a next open 0.4 % above the close: inside the headroom
    (0.02, 0.0, 0.005, "Margin"),        # 2 %: beyond it, the broker refuses (as documented)
    (0.02, 0.0, 0.03, "Completed"),      # ... unless the headroom covers such gaps
    (0.0, 0.0, 0.0, "Margin"),           # no headroom: the fee's rounding alone pushes the cost past the cash
])
def test_orders_at_the_cash_cap_are_filled(gap, slippage, headroom, status):
    opens = OPEN.copy()
    opens[1] = CLOSE[0] * (1 + gap)
    bnn = bnn_script([0.0], [0.0003], [0.0004])          # asks for 3× value: the cash cap binds
    (order,), outcomes = run({0: "buy"}, bnn=bnn, opens=opens, slippage=slippage, outcomes=True,
                             sizer=(UncertaintySizer, {"max_leverage": 3.0, "headroom": headroom}))
    assert [o[0] for o in outcomes] == [status]
    if status == "Completed":
        _, size, value, cash, close, _ = order
        price = outcomes[0][2]
        assert outcomes[0][1] == pytest.approx(size) and price == pytest.approx(opens[1] * (1 + slippage))
        assert size * price * 1.001 <= cash and size * price * 1.001 > 0.97 * cash   # invested, within cash


def test_sizer_parameters_are_checked():
    for cls, kw, msg in [(EnergyScaledSizer, {"threshold": 0}, "threshold"), (EnergyScaledSizer, {"base": -1}, "base"),
                         (UncertaintySizer, {"target_vol": 0}, "target_vol"),
                         (UncertaintySizer, {"kelly_fraction": 1.5}, "kelly_fraction"),
                         (UncertaintySizer, {"horizon": 0}, "horizon"),
                         (EnergyScaledSizer, {"headroom": -0.01}, "headroom"),
                         (EnergyScaledSizer, {"form": "square"}, "form"),
                         (EnergyScaledSizer, {"form": "linear", "z_min": 3.0}, "z_min")]:
        with pytest.raises(ValueError, match=msg):
            cls(**kw)
