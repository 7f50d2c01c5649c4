"""BybitLiveFeed in cerebro against the fake Bybit (conftest.py), whose clock the feed's injected
``sleep`` advances: backfill, then each newly closed bar exactly once, through transient errors,
with paper trading on backtrader's broker."""
from __future__ import annotations


import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from btdensity.feeds import BybitLiveFeed
from btdensity.feeds.complete import format_ms
from btdensity.runner import paper_trading

from .conftest import PAGE_FAULTS

HOUR = 3_600_000


class Recorder(bt.Strategy):
    """Records every bar and data status; buys once on the first live bar."""

    def __init__(self) -> None:
        self.bars, self.statuses, self.fills, self.live_bars = [], [], [], []
        self.order = None

    def notify_data(self, data, status, *args, **kwargs) -> None:
        self.statuses.append(data._getstatusname(status))

    def notify_order(self, order) -> None:
        if order.status == order.Completed:
            self.fills.append((bt.num2date(order.executed.dt), order.executed.price, order.executed.size))

    def next(self) -> None:
        d = self.data
        ts = round(pd.Timestamp(d.datetime.datetime(0), tz="UTC").value / 1e9) * 1000  # to the second
        self.bars.append([ts, d.open[0], d.high[0], d.low[0], d.close[0], d.volume[0]])
        if self.statuses and self.statuses[-1] == "LIVE":
            self.live_bars.append(ts)
            if self.order is None:
                self.order = self.buy(size=0.5)


def _run(server, exchange, retry, on_sleep, backfill=24, live_bars=10, strategy=Recorder):
    fake = server.fake
    start = fake.now
    last_closed = start - start % HOUR - HOUR
    until = last_closed + live_bars * HOUR
    sleeps = []

    def sleep(seconds: float) -> None:  # the exchange's clock moves on while the feed waits
        sleeps.append(seconds)
        fake.now += 20 * 60_000
        on_sleep(len(sleeps))

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(BybitLiveFeed(dataname="BTC/USDT:USDT", interval="1h", backfill=backfill, exchange=exchange,
                                  retry=retry, poll_interval=30.0, sleep=sleep,
                                  until=np.datetime64(until, "ms").astype(object)))
    cerebro.addstrategy(strategy)
    cerebro.broker.setcash(1e6)
    strat = cerebro.run()[0]
    truth = fake.expected("BTCUSDT", HOUR, last_closed - (backfill - 1) * HOUR, until)
    return strat, truth, sleeps, last_closed


def test_each_bar_once_through_faults_with_paper_fills(bybit_server, make_exchange, fast_retry):
    fake = bybit_server.fake

    def faults(n: int) -> None:
        if n == 2:  # survived by retries within one poll
            fake.inject("503", times=2)
            fake.inject("timeout", path="/v5/market/time")
        if n == 7:  # outlasts the retry budget: the feed reports CONNBROKEN and polls again
            fake.inject("malformed", times=fast_retry.attempts)
        if n == 12:
            fake.inject("reset", path="/v5/market/time", times=fast_retry.attempts)
        if n == 16:
            fake.duplicates = fake.shuffle = True

    strat, truth, sleeps, last_closed = _run(bybit_server, make_exchange(timeout_ms=1000), fast_retry, faults)
    assert isinstance(strat.data, BybitLiveFeed) and strat.data.islive() is True
    # so cerebro treated the run as live and went bar by bar: no preload, no vectorised runonce
    assert strat.env._dolive and not strat.env._dopreload and not strat.env._dorunonce
    got = np.array(strat.bars)
    expected = np.column_stack([truth.index.as_unit("ms").asi8, truth.to_numpy()])
    np.testing.assert_array_equal(got, expected)  # every closed bar, once, in order, exact values
    assert len(got) == 24 + 10
    assert strat.live_bars == [last_closed + k * HOUR for k in range(1, 11)]
    assert strat.statuses[:2] == ["DELAYED", "LIVE"]
    assert strat.statuses.count("CONNBROKEN") == 2 and strat.statuses[-1] == "LIVE"
    # paper trading: the order placed on the first live bar fills at the next bar's open
    assert len(strat.fills) == 1
    fill_dt, price, size = strat.fills[0]
    assert size == 0.5 and price == truth["open"].iloc[24 + 1]
    assert all(s == 30.0 for s in sleeps) and len(sleeps) >= 3 * 10  # three polls per hour of clock


@pytest.mark.parametrize("fault", PAGE_FAULTS)
def test_empty_or_short_replies_lose_no_bar(bybit_server, make_exchange, fast_retry, fault, caplog):
    """The backfill's page and a poll's reply come back empty, null or halved once; later the exchange
    lacks the next candle for two hours of its clock: the feed holds everything after it back, says so
    at ERROR level, and goes on once the candle comes. (Both polls follow a two-hour jump of the clock, so
    that a half reply of the three candles that closed meanwhile lacks the oldest.)"""
    fake = bybit_server.fake
    fake.inject(fault)  # the backfill's page
    held: list[int] = []

    def faults(n: int) -> None:
        if n in (3, 9):
            held.append((fake.now - 20 * 60_000) // HOUR * HOUR)  # the next candle to close (before the jump)
            fake.now += 2 * HOUR
        if n == 3:  # one reply lacking candles: asked again within the poll
            fake.inject(fault)
        if n == 9:  # every reply lacks candles until sleep 15
            fake.inject(fault, times=1000)
        if n == 15:
            fake.clear_faults()

    strat, truth, _, last_closed = _run(bybit_server, make_exchange(), fast_retry, faults)
    got = np.array(strat.bars)
    np.testing.assert_array_equal(got, np.column_stack([truth.index.as_unit("ms").asi8, truth.to_numpy()]))
    assert len(got) == 24 + 10 and strat.live_bars == [last_closed + k * HOUR for k in range(1, 11)]
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == [f"BTC/USDT:USDT: the exchange has not returned the closed 1h candle of {format_ms(held[1])} "
                      f"after 4 attempts; later bars are held back until it does (asked again every poll)"]
    assert strat.statuses == ["DELAYED", "LIVE", "CONNBROKEN", "LIVE"]
    assert f"the 1h candle of {format_ms(held[1])} arrived; going on" in caplog.text
    assert f"no candles for [{format_ms(held[0])}" in caplog.text  # the poll after the first jump asked again


def test_rejected_request_stops_the_feed(bybit_server, make_exchange, fast_retry):
    from btdensity.feeds import FetchError

    def reject(n: int) -> None:
        if n == 2:
            bybit_server.fake.inject("retcode:10001", times=1)

    with pytest.raises(FetchError, match="rejected"):
        _run(bybit_server, make_exchange(), fast_retry, reject, backfill=3, live_bars=3)


def test_no_backfill_starts_with_the_next_closed_bar(bybit_server, make_exchange, fast_retry):
    strat, truth, _, last_closed = _run(bybit_server, make_exchange(), fast_retry, lambda n: None,
                                        backfill=0, live_bars=3)
    np.testing.assert_array_equal(np.array(strat.bars)[:, 0], [last_closed + k * HOUR for k in (1, 2, 3)])
    assert strat.statuses[0] == "LIVE"


class BuyEachBar(bt.Strategy):
    """Buys 0.1 on every bar it trades; an SMA of 20 closes shows whether the backfill warmed it up."""

    def __init__(self) -> None:
        self.sma = bt.ind.SMA(self.data.close, period=20)
        self.traded, self.sma_seen, self.fills = [], [], []

    def notify_order(self, order) -> None:
        if order.status == order.Completed:
            self.fills.append(bt.num2date(order.executed.dt))

    def next(self) -> None:
        self.traded.append(round(pd.Timestamp(self.data.datetime.datetime(0), tz="UTC").value / 1e9) * 1000)
        self.sma_seen.append(self.sma[0])
        self.buy(size=0.1)


def test_paper_trading_warms_up_on_the_backfill_and_trades_live_bars_only(bybit_server, make_exchange,
                                                                          fast_retry):
    strat, truth, _, last_closed = _run(bybit_server, make_exchange(), fast_retry, lambda n: None, backfill=30,
                                        live_bars=4, strategy=paper_trading(BuyEachBar))
    live = [last_closed + k * HOUR for k in range(1, 5)]
    assert strat.traded == live                                  # not one of the 30 backfilled bars
    closes = truth["close"].to_numpy()
    assert strat.sma_seen[0] == pytest.approx(closes[30 - 20 + 1:30 + 1].mean())   # warm at the first live bar
    assert len(strat.fills) == 3 and strat.position.size == pytest.approx(0.3)      # next-open fills, live only
    plain, _, _, _ = _run(bybit_server, make_exchange(), fast_retry, lambda n: None, backfill=30, live_bars=4,
                          strategy=BuyEachBar)
    assert len(plain.traded) == 30 - 20 + 1 + 4                  # unwrapped, it trades the backfill as well
