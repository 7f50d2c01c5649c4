"""DataFrameFeed delivers exactly what backtrader's PandasData delivers, in both run modes."""
import backtrader as bt
import numpy as np
import pytest

from btdensity.feeds import DataFrameFeed, synthetic_market


class Record(bt.Strategy):
    def __init__(self):
        self.rows = []

    def next(self):
        d = self.data
        self.rows.append((d.datetime[0], d.open[0], d.high[0], d.low[0], d.close[0], d.volume[0]))


def run(feed, **kwargs):
    cerebro = bt.Cerebro(stdstats=False, **kwargs)
    cerebro.adddata(feed)
    cerebro.addstrategy(Record)
    return np.array(cerebro.run()[0].rows)


@pytest.fixture(scope="module")
def frame():
    return synthetic_market(600, freq="15m", seed=5)


@pytest.mark.parametrize("runonce", [True, False])
def test_same_bars_as_pandasdata(frame, runonce):
    ours = run(DataFrameFeed(dataname=frame), runonce=runonce)
    ref = run(bt.feeds.PandasData(dataname=frame.tz_convert(None)), runonce=runonce)
    assert ours.shape == (600, 6)
    np.testing.assert_array_equal(ours, ref)  # datetimes as backtrader numbers too, bit for bit


def test_date_bounds_use_the_bar_by_bar_path(frame):
    start, end = frame.index[100].to_pydatetime().replace(tzinfo=None), frame.index[199].to_pydatetime().replace(tzinfo=None)
    rows = run(DataFrameFeed(dataname=frame, fromdate=start, todate=end))
    assert len(rows) == 100
    assert bt.num2date(rows[0, 0]) == start and bt.num2date(rows[-1, 0]) == end


def test_timeframe_read_off_the_index(frame):
    feed = DataFrameFeed(dataname=frame)
    assert (feed._timeframe, feed._compression) == (bt.TimeFrame.Minutes, 15)
    daily = DataFrameFeed(dataname=synthetic_market(50, freq="1d", seed=0))
    assert (daily._timeframe, daily._compression) == (bt.TimeFrame.Days, 1)


def test_replay_to_a_coarser_timeframe(frame):
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.replaydata(DataFrameFeed(dataname=frame), timeframe=bt.TimeFrame.Minutes, compression=60)
    cerebro.addstrategy(Record)
    rows = np.array(cerebro.run()[0].rows)
    hourly = frame.resample("1h").agg({"high": "max", "low": "min", "close": "last"})
    last = rows[-1]
    assert last[4] == hourly["close"].iloc[-1] and last[2] == hourly["high"].iloc[-1]


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="missing"):
        DataFrameFeed(dataname=synthetic_market(10)[["open", "close"]])
