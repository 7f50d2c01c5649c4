"""Load time of DataFrameFeed against backtrader's PandasData on the same 100k bars, side by side.

Two figures per feed, alternating the feeds so that both see the same machine load, medians printed
with their ratio: "load" (construct the feed and preload every bar, what the feed itself costs) and
"run" (a whole Cerebro run with a do-nothing strategy, runonce and bar-by-bar).
Usage: ``python benchmarks/feed_load.py [--bars 100000] [--repeats 3]``.
"""
from __future__ import annotations

import argparse
import statistics
import time

import backtrader as bt

from btdensity.feeds import DataFrameFeed, synthetic_market


class _Idle(bt.Strategy):
    def next(self) -> None:
        pass


def _load(make_feed) -> float:
    start = time.perf_counter()
    feed = make_feed()
    feed._env = bt.Cerebro()  # what adddata() would set
    feed._start()
    feed.preload()
    elapsed = time.perf_counter() - start
    assert feed.buflen() > 0
    return elapsed


def _run(make_feed, runonce: bool) -> float:
    start = time.perf_counter()
    cerebro = bt.Cerebro(stdstats=False, runonce=runonce)
    cerebro.adddata(make_feed())
    cerebro.addstrategy(_Idle)
    cerebro.run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    df = synthetic_market(args.bars, seed=0)[["open", "high", "low", "close", "volume"]]
    df_naive = df.tz_convert(None)
    feeds_ = {
        "DataFrameFeed": lambda: DataFrameFeed(dataname=df),
        "PandasData": lambda: bt.feeds.PandasData(dataname=df_naive),
    }
    cases = {"load": _load,
             "run, runonce": lambda make: _run(make, True),
             "run, bar by bar": lambda make: _run(make, False)}
    for case, measure in cases.items():
        times = {name: [] for name in feeds_}
        for _ in range(args.repeats):
            for name, make in feeds_.items():  # alternate: both see the same machine load
                times[name].append(measure(make))
        med = {name: statistics.median(ts) for name, ts in times.items()}
        print(f"{args.bars} bars, {case:15s}: DataFrameFeed {med['DataFrameFeed']:.3f} s, "
              f"PandasData {med['PandasData']:.3f} s, speed-up x{med['PandasData'] / med['DataFrameFeed']:.1f}")


if __name__ == "__main__":
    main()
