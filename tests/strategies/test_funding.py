"""Funding: settlement times and rates, and cash charged by BybitBroker on a scripted long → short → flat
sequence, checked bar by bar against hand-computed cash and value (1e-8)."""
import json

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from btdensity import run_backtest
from btdensity.feeds import DataFrameFeed, synthetic_market
from btdensity.runner import summarize
from btdensity.strategies import BybitBroker, BybitCommission, FundingRates
from btdensity.runner import BacktestConfig, backtest

UTC = "UTC"
C, L, TK, MK = 10_000.0, 5.0, 0.00055, 0.0002

# bar start times (gaps: 08→12, 12→15, 15→17 covers 16:00, 02:00→17:00 covers 08:00 and 16:00)
TIMES = pd.to_datetime(["2024-01-01 06:00", "2024-01-01 07:00", "2024-01-01 08:00", "2024-01-01 12:00",
                        "2024-01-01 15:00", "2024-01-01 17:00", "2024-01-01 23:00", "2024-01-02 00:00",
                        "2024-01-02 01:00", "2024-01-02 02:00", "2024-01-02 17:00", "2024-01-02 18:00",
                        "2024-01-03 00:00"], utc=True)
OPEN = np.array([100, 101, 102, 104, 103, 99, 97, 98, 95, 96, 99, 101, 102], dtype=float)
CLOSE = np.array([100.5, 101.5, 103, 104.5, 101, 98, 97.5, 96, 95.5, 97, 100, 102, 102], dtype=float)
RATES = pd.Series([1e-4, 3e-4, -2e-4, 5e-4, 4e-4, 7e-4], name="funding_rate",
                  index=pd.to_datetime(["2024-01-01 08:00", "2024-01-01 16:00", "2024-01-02 00:00",
                                        "2024-01-02 08:00", "2024-01-02 16:00", "2024-01-03 00:00"], utc=True))
# bar index -> (size, exectype, limit price): orders placed at that bar's close
SCRIPT = {0: (2.0, bt.Order.Market, None),        # long 2, fills at bar 1's open
          3: (-5.0, bt.Order.Market, None),       # flip to short 3 at bar 4's open
          6: (3.0, bt.Order.Limit, 96.5),         # close the short with a resting limit: maker
          8: (1.0, bt.Order.Market, None),        # long 1 at bar 9's open
          10: (-1.0, bt.Order.Market, None)}      # close at bar 11's open


def bars():
    return pd.DataFrame({"open": OPEN, "high": np.maximum(OPEN, CLOSE) + 1, "low": np.minimum(OPEN, CLOSE) - 1,
                         "close": CLOSE, "volume": 10.0}, index=TIMES)


class Script(bt.Strategy):
    """Places the scripted orders; records cash and value at every bar's close and every fill."""

    params = (("script", None),)

    def __init__(self):
        self.cash, self.value, self.fills = [], [], []

    def next(self):
        i = len(self) - 1
        if i in self.p.script:
            size, exectype, price = self.p.script[i]
            (self.buy if size > 0 else self.sell)(size=abs(size), exectype=exectype, price=price)
        self.cash.append(self.broker.getcash())
        self.value.append(self.broker.getvalue())

    def notify_order(self, order):
        if order.status == order.Completed:
            self.fills.append((bt.num2date(order.executed.dt), order.executed.size, order.executed.price,
                               order.executed.comm))


def run(df, funding, market="linear", leverage=L, script=SCRIPT, runonce=True, **broker_kw):
    cerebro = bt.Cerebro(stdstats=False, runonce=runonce)
    cerebro.adddata(DataFrameFeed(dataname=df))
    cerebro.addstrategy(Script, script=script)
    cerebro.setbroker(BybitBroker(cash=C, funding=funding, **broker_kw))
    cerebro.broker.addcommissioninfo(BybitCommission(market=market, leverage=leverage))
    strat = cerebro.run()[0]
    return strat, cerebro.broker


def hand_computed():
    """Equity (value) and cash of the script, bar by bar, from the rules written out."""
    r1, r2, r3, r4, r5, _ = RATES.to_numpy()
    fee1, fee2, fee3, fee4, fee5 = 2 * 101 * TK, 5 * 103 * TK, 3 * 96.5 * MK, 96 * TK, 101 * TK
    f1 = 2 * 102 * r1             # 08:00, long 2 at bar 2's open
    f2 = -3 * 99 * r2             # 16:00 inside the 15→17 gap: short 3 at bar 5's open
    f3 = -3 * 98 * r3             # 00:00, short 3, negative rate: the short pays
    f45 = 1 * 99 * (r4 + r5)      # 08:00 and 16:00 inside the 02→17 gap, long 1 at bar 10's open
    E = [C]
    E.append(C - fee1 + 2 * (101.5 - 101))                             # 1: fill +2 @101
    E.append(E[-1] - f1 + 2 * (103 - 101.5))                           # 2
    E.append(E[-1] + 2 * (104.5 - 103))                                # 3
    E.append(E[-1] + 2 * (103 - 104.5) - fee2 - 3 * (101 - 103))       # 4: fill -5 @103
    E.append(E[-1] - f2 - 3 * (98 - 101))                              # 5
    E.append(E[-1] - 3 * (97.5 - 98))                                  # 6
    E.append(E[-1] - f3 - 3 * (96.5 - 97.5) - fee3)                    # 7: limit +3 @96.5
    E.append(E[-1])                                                    # 8: flat
    E.append(E[-1] - fee4 + (97 - 96))                                 # 9: fill +1 @96
    E.append(E[-1] - f45 + (100 - 97))                                 # 10
    E.append(E[-1] + (101 - 100) - fee5)                               # 11: fill -1 @101
    E.append(E[-1])                                                    # 12: flat, 00:00 not charged
    margin = [0, 2 * 101 / L, 2 * 101 / L, 2 * 101 / L, 3 * 103 / L, 3 * 103 / L, 3 * 103 / L, 0, 0,
              96 / L, 96 / L, 0, 0]
    cash = np.array(E) - np.array(margin)
    return np.array(E), cash, fee1 + fee2 + fee3 + fee4 + fee5, (f1, f2, f3, f45)


@pytest.mark.parametrize("runonce", [True, False])
def test_scripted_long_flip_close_cash_matches_hand_computation(runonce):
    strat, broker = run(bars(), FundingRates.from_series(RATES), runonce=runonce)
    value, cash, fees, funding = hand_computed()
    np.testing.assert_allclose(strat.value, value, rtol=0, atol=1e-8)
    np.testing.assert_allclose(strat.cash, cash, rtol=0, atol=1e-8)
    assert broker.fees_paid == pytest.approx(fees, abs=1e-10)
    assert broker.funding_paid == pytest.approx(sum(funding), abs=1e-10)
    f1, f2, f3, _ = funding
    assert f1 > 0 and f2 < 0 and f3 > 0  # long pays a positive rate, short receives it, pays a negative one
    # every order fills at the open of the bar after it was placed (the limit at its price, inside that bar)
    fills = [(pd.Timestamp(dt, tz=UTC), size, price) for dt, size, price, _ in strat.fills]
    assert fills == [(TIMES[1], 2, 101.0), (TIMES[4], -5, 103.0), (TIMES[7], 3, 96.5), (TIMES[9], 1, 96.0),
                     (TIMES[11], -1, 101.0)]


def test_constant_rate_charges_every_8h_on_open_positions():
    strat, broker = run(bars(), FundingRates.constant(1e-4))
    # 08:00 (+2 @102), 16:00 in a gap (-3 @99), 00:00 (-3 @98), 08:00+16:00 in a gap (+1 @99); flat at 00:00 day 3
    expected = 1e-4 * (2 * 102 - 3 * 99 - 3 * 98 + 2 * 1 * 99)
    assert broker.funding_paid == pytest.approx(expected, abs=1e-12)
    no_funding, _ = run(bars(), None)
    np.testing.assert_allclose(np.array(no_funding.value) - np.array(strat.value),
                               np.cumsum([0, 0, 2 * 102e-4, 0, 0, -3 * 99e-4, 0, -3 * 98e-4, 0, 0, 2 * 99e-4, 0, 0]),
                               atol=1e-9)


def test_spot_never_pays_funding():
    long_only = {0: (2.0, bt.Order.Market, None), 8: (-2.0, bt.Order.Market, None)}
    strat, broker = run(bars(), FundingRates.constant(1e-3), market="spot", leverage=1.0, script=long_only)
    assert broker.funding_paid == 0.0
    fee_in, fee_out = 2 * 101 * 0.001, 2 * 96 * 0.001  # spot base tier: 0.1 % taker
    assert strat.cash[-1] == pytest.approx(C - 2 * 101 - fee_in + 2 * 96 - fee_out, abs=1e-9)
    with pytest.raises(ValueError, match="spot trades without leverage or funding"):
        BacktestConfig("buy_and_hold", funding=1e-4)


def test_funding_rates_between_and_validation():
    f = FundingRates.from_series(RATES.to_frame())
    times, rates = f.between(pd.Timestamp("2024-01-01 08:00", tz=UTC), pd.Timestamp("2024-01-02 08:00", tz=UTC))
    assert list(pd.to_datetime(times, utc=True)) == list(RATES.index[1:4]) and rates.tolist() == [3e-4, -2e-4, 5e-4]
    c = FundingRates.constant(2e-4, "4h")
    times, rates = c.between(pd.Timestamp("2024-01-01 03:59", tz=UTC), pd.Timestamp("2024-01-01 12:00", tz=UTC))
    assert [pd.Timestamp(t, tz=UTC).hour for t in times] == [4, 8, 12] and rates.tolist() == [2e-4] * 3
    with pytest.raises(ValueError, match="must divide a day"):
        FundingRates.constant(1e-4, "7h")
    with pytest.raises(ValueError, match=r"funding rate at 2024-01-01 16:00:00\+00:00"):
        FundingRates.from_series(RATES.where(RATES.index != RATES.index[1], np.nan))
    with pytest.raises(ValueError, match="strictly increasing"):
        FundingRates.from_series(RATES.iloc[[0, 2, 1]])
    with pytest.raises(ValueError, match="timezone-aware"):
        FundingRates.from_series(RATES.tz_localize(None))
    with pytest.raises(ValueError, match="'funding_rate' column"):
        FundingRates.from_series(RATES.to_frame("rate"))


def test_backtest_reports_funding_and_fees_of_buy_and_hold():
    df = synthetic_market(60, freq="1h", seed=3)
    rate = 1e-4
    res = backtest(df, BacktestConfig("buy_and_hold", market="linear", leverage=3.0, funding=rate,
                                      params={"target": 0.5}))
    size = 0.5 * 10_000.0 / df["close"].iloc[0]     # sized on bar 0's close, filled at bar 1's open
    assert res.positions.iloc[1] == pytest.approx(size)
    settle = df.index[2:][(df.index[2:].hour % 8) == 0]  # settlements after the fill, at bar opens
    assert len(settle) >= 6
    assert res.funding_paid == pytest.approx(size * df["open"].loc[settle].sum() * rate, rel=1e-12)
    assert res.fees_paid == pytest.approx(size * df["open"].iloc[1] * 0.00055, rel=1e-12)
    # value = cash + P&L of the held size since the fill, minus fee and funding
    expected_last = 10_000.0 + size * (df["close"].iloc[-1] - df["open"].iloc[1]) - res.fees_paid - res.funding_paid
    assert res.values.iloc[-1] == pytest.approx(expected_last, abs=1e-8)
    summary = summarize(res, 10_000.0)
    assert summary["fees_paid"] == res.fees_paid and summary["funding_paid"] == res.funding_paid


def test_cli_linear_market_with_constant_funding(tmp_path, capsys):
    args = ["--bars", "60", "--strategy", "buy_and_hold", "--market", "linear", "--leverage", "2",
            "--funding-rate", "0.0002", "--maker-fee", "0.0001", "--no-plot", "--quiet", "--out", str(tmp_path)]
    assert run_backtest.main(args) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    df = synthetic_market(60, freq="1h", seed=0)
    size = 0.95 * 10_000.0 / df["close"].iloc[0]
    settle = df.index[2:][(df.index[2:].hour % 8) == 0]
    assert summary["funding_paid"] == pytest.approx(size * df["open"].loc[settle].sum() * 2e-4, rel=1e-12)
    assert summary["fees_paid"] == pytest.approx(size * df["open"].iloc[1] * 0.00055, rel=1e-12)  # market: taker
    assert run_backtest.main(args[:-3] + ["--market", "spot", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == ("run_backtest.py: error: --funding-rate applies to perpetuals: "
                                               "add --market linear")
