"""Speed of the model indicators, measured side by side in one run.

1. Bars per second of a backtest with all five indicators (models already cached) against the same
   backtest with one SMA in their place (target ratio >= 0.8), batched (runonce) and bar by bar.
2. The median cost of one ``next()`` call of each indicator, bar by bar (target <= 1 ms); fits are
   cache loads here, and the median leaves those bars out.

Usage: ``python benchmarks/indicator_speed.py [--bars 6000] [--repeats 3] [--cache-dir DIR]``. The first run
fills the cache (it trains every window of every indicator: minutes); later runs reuse it.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import feeds  # noqa: F401
import backtrader as bt
import numpy as np
import torch

from feeds import DataFrameFeed, synthetic_market
from indicators import BNNUncertainty, Energy, LogDensity, Regime, ScoreDirection

INDICATORS = {"Energy": Energy, "LogDensity": LogDensity, "ScoreDirection": ScoreDirection,
              "BNNUncertainty": BNNUncertainty, "Regime": Regime}


class _With(bt.Strategy):
    params = (("makers", ()),)

    def __init__(self) -> None:
        self.inds = [make(self.data) for make in self.p.makers]

    def next(self) -> None:
        for ind in self.inds:
            ind.lines[0][0]  # a strategy reads its indicators every bar


def _run(df, makers, runonce: bool) -> tuple[float, list]:
    cerebro = bt.Cerebro(stdstats=False, runonce=runonce)
    cerebro.adddata(DataFrameFeed(dataname=df))
    cerebro.addstrategy(_With, makers=makers)
    start = time.perf_counter()
    strat = cerebro.run()[0]
    return time.perf_counter() - start, strat.inds


def _timed_next(cls):
    """A subclass of ``cls`` whose ``next`` records its own duration."""

    class Timed(cls):
        durations: list[float] = []

        def next(self) -> None:
            start = time.perf_counter()
            super().next()
            self.durations.append(time.perf_counter() - start)

    Timed.__name__ = cls.__name__
    return Timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "btdensity-bench-cache"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    df = synthetic_market(args.bars, seed=0)
    common = dict(cache_dir=args.cache_dir)
    models = [lambda d, c=cls: c(d, **common) for cls in INDICATORS.values()]
    sma = [lambda d: bt.ind.SMA(d.close, period=20)]

    start = time.perf_counter()
    _, inds = _run(df, models, runonce=True)
    fits = sum(ind.n_fits for ind in inds)
    print(f"warm-up: {fits} fits, {time.perf_counter() - start:.1f} s "
          f"({'cache was warm' if fits == 0 else 'cache filled'})")

    for runonce in (True, False):
        t_models, t_sma = [], []
        for _ in range(args.repeats):  # alternate: both see the same machine load
            t_models.append(_run(df, models, runonce)[0])
            t_sma.append(_run(df, sma, runonce)[0])
        m, s = statistics.median(t_models), statistics.median(t_sma)
        mode = "batched (runonce)" if runonce else "bar by bar"
        print(f"{mode:18s}: five indicators {args.bars / m:8.0f} bars/s, SMA {args.bars / s:8.0f} bars/s, "
              f"ratio {s / m:.2f} (target >= 0.8)")

    print("median next() per bar, bar by bar (target <= 1 ms):")
    for name, cls in INDICATORS.items():
        timed = _timed_next(cls)
        timed.durations = []
        _run(df, [lambda d, c=timed: c(d, **common)], runonce=False)
        ms = np.array(timed.durations) * 1e3
        print(f"  {name:15s} median {np.median(ms):.3f} ms, p95 {np.percentile(ms, 95):.3f} ms "
              f"over {ms.size} bars")


if __name__ == "__main__":
    main()
