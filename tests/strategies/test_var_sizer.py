"""VaRBudgetSizer: exact order sizes for scripted VaR / CVaR values (a real backtrader indicator replays them), both
sides, the leverage cap, the cash and margin caps, NaN warm-up, and its parameter checks."""
import importlib.util
import math
from pathlib import Path

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from btdensity.feeds import DataFrameFeed
from btdensity.strategies import BybitBroker, BybitCommission
from btdensity.strategies.var_sizer import VaRBudgetSizer

NAN = float("nan")
N = 10
CLOSE = 100.0 + np.arange(N) * 0.5


class ScriptedTail(bt.Indicator):
    """The lines of ``btdensity.indicators.TailRisk``, replaying scripted values."""

    lines = ("var", "cvar", "var_short", "cvar_short")
    params = (("script", None),)

    def next(self):
        i = len(self) - 1
        for name in self.lines.getlinealiases():
            values = self.p.script.get(name, [])
            getattr(self.lines, name)[0] = values[i] if i < len(values) else NAN


def _sizer_tests():
    spec = importlib.util.spec_from_file_location("sizer_tests", Path(__file__).parent / "test_sizers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Trader(_sizer_tests().Trader):
    """test_sizers.py's trader (buys / sells at scripted bars, records the sizes), with a scripted TailRisk."""

    params = (("script", None), ("by_object", None))

    def __init__(self):
        self.tail_risk = ScriptedTail(script=self.p.script)
        super().__init__()
        if self.p.by_object is not None:
            self.setsizer(VaRBudgetSizer(tail_risk=self.tail_risk, **self.p.by_object))


def run(actions, script, sizer=None, by_object=None, market="linear", leverage=5.0):
    idx = pd.date_range("2024-05-01", periods=N, freq="1h", tz="UTC")
    opens = np.r_[CLOSE[0], CLOSE[:-1]]
    df = pd.DataFrame({"open": opens, "high": np.maximum(opens, CLOSE) + 1, "low": np.minimum(opens, CLOSE) - 1,
                       "close": CLOSE, "volume": 1e6}, index=idx)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(DataFrameFeed(dataname=df))
    cerebro.addstrategy(Trader, actions=actions, script=script, by_object=by_object)
    cerebro.setbroker(BybitBroker(cash=10_000.0))
    cerebro.broker.addcommissioninfo(BybitCommission(market=market, leverage=leverage))
    if sizer is not None:
        cerebro.addsizer(VaRBudgetSizer, **sizer)
    return {i: rest for i, *rest in cerebro.run()[0].orders}


def test_sizes_so_that_the_tail_loss_is_the_budget():
    # a 1 % budget: a long whose CVaR is a log return of -0.05 loses 1 - e^-0.05 = 4.877 % of its value there
    script = {"var": [-0.02, -0.02, NAN, -0.02, 0.001, -0.0004], "cvar": [-0.05, -0.05, NAN, -0.03, 0.002, -0.0005],
              "var_short": [0.03, 0.03, 0.03, 0.04, 0.0, 0.0], "cvar_short": [0.06, 0.06, 0.06, 0.07, -0.001, 0.0]}
    actions = {0: "buy", 1: "sell", 2: "buy", 3: "sell", 4: "buy", 5: "sell"}
    orders = run(actions, script, sizer={"budget": 0.01, "max_leverage": 3.0})
    size, value, _, close, pos = orders[0]
    assert size == pytest.approx(0.01 / -math.expm1(-0.05) * value / close, rel=1e-13)     # 20.5 % of value
    assert pos == 0 and orders[1][4] > 0 and orders[1][0] == pytest.approx(orders[1][4])                   # sell while long: close it
    assert orders[2][0] == 0.0                                                           # NaN: no order
    size, value, _, close, pos = orders[3]
    assert pos == 0 and size == pytest.approx(0.01 / math.expm1(0.07) * value / close, rel=1e-13)   # a short
    # the buy at bar 4 closes that short; bar 5 sells into a tail that loses nothing (cvar_short 0): the cap
    size, value, _, close, pos = orders[5]
    assert pos == 0 and size == pytest.approx(3.0 * value / close, rel=1e-13)


def test_var_measure_cap_and_the_indicator_object():
    script = {"var": [-0.001, -0.02], "cvar": [-0.5, -0.5], "var_short": [0.01, 0.01], "cvar_short": [0.5, 0.5]}
    orders = run({0: "buy"}, script, by_object={"budget": 0.02, "measure": "var", "max_leverage": 2.0})
    size, value, _, close, _ = orders[0]
    assert size == pytest.approx(2.0 * value / close, rel=1e-13)          # 0.02 / 0.1 % = 20×, capped at 2×
    orders = run({1: "buy"}, script, sizer={"budget": 0.01, "measure": "var"})
    size, value, _, close, _ = orders[1]
    assert size == pytest.approx(0.01 / -math.expm1(-0.02) * value / close, rel=1e-13)   # 50.5 % of value


def test_never_beyond_cash_or_margin():
    script = {"var": [-0.0001], "cvar": [-0.0002], "var_short": [0.0001], "cvar_short": [0.0002]}
    size, value, cash, close, _ = run({0: "buy"}, script, sizer={"max_leverage": 10.0}, leverage=2.0)[0]
    fill = close * 1.005                                                   # the close plus 0.5 % headroom
    assert size == pytest.approx(cash / (fill / 2 + 0.00055 * fill), rel=1e-13) and size < 10 * value / close
    size, _, cash, close, _ = run({0: "buy"}, script, sizer={"max_leverage": 10.0, "whole_units": True},
                                  market="spot", leverage=1.0)[0]
    assert size == math.floor(cash / (close * 1.005 * 1.001)) == 99


def test_parameters_and_missing_indicator_are_named():
    for kw, msg in [({"budget": 0}, "budget"), ({"budget": 1.5}, "budget"), ({"measure": "es"}, "measure"),
                    ({"max_leverage": 0}, "max_leverage")]:
        with pytest.raises(ValueError, match=msg):
            VaRBudgetSizer(**kw)

    class Bare(bt.Strategy):
        def next(self):
            self.buy()

    cerebro = bt.Cerebro(stdstats=False)
    idx = pd.date_range("2024-05-01", periods=3, freq="1h", tz="UTC")
    cerebro.adddata(DataFrameFeed(dataname=pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0,
                                                         "volume": 1.0}, index=idx)))
    cerebro.addstrategy(Bare)
    cerebro.addsizer(VaRBudgetSizer)
    with pytest.raises(ValueError, match="no attribute 'tail_risk'"):
        cerebro.run()
