"""Speed of the model indicators, measured side by side in one run.

1. Bars per second of a backtest with all five indicators (models already cached) against the same
   backtest with one SMA in their place (target ratio >= 0.8), batched (runonce) and bar by bar. Two more
   baselines show what backtrader itself costs: five SMAs (one in place of each indicator), and five no-op
   indicators with the same lines and warm-up that compute nothing (the ceiling any implementation of five
   indicators can reach inside backtrader).
2. The median cost of one ``next()`` call of each indicator, bar by bar (target <= 1 ms); fits are
   cache loads here, and the median leaves those bars out. Each indicator runs ``--repeats`` passes,
   interleaved with the others; the pass with the lowest median is reported (load from other processes on a
   shared machine only adds time), with every pass's median beside it.

Usage: ``python benchmarks/indicator_speed.py [--bars 6000] [--repeats 3] [--cache-dir DIR]``. The first run
fills the cache (it trains every window of every indicator: minutes); later runs reuse it.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import backtrader as bt
import numpy as np
import torch

from btdensity.feeds import DataFrameFeed, synthetic_market
from btdensity.indicators import BNNUncertainty, Energy, LogDensity, Regime, ScoreDirection

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


def _noop(cls, minperiod: int):
    """An indicator with the lines and warm-up of ``cls`` that computes nothing."""

    class NoOp(bt.Indicator):
        lines = cls.lines.getlinealiases()

        def __init__(self) -> None:
            self.addminperiod(minperiod)

        def once(self, start: int, end: int) -> None:
            pass

        def next(self) -> None:
            pass

    return NoOp


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

    noops = [lambda d, c=_noop(type(ind), ind._minperiod): c(d) for ind in inds]
    five_sma = [lambda d: bt.ind.SMA(d.close, period=20)] * len(INDICATORS)
    baselines = {"SMA": sma, "five SMAs": five_sma, "five no-ops": noops}
    for runonce in (True, False):
        times: dict[str, list[float]] = {"five indicators": [], **{name: [] for name in baselines}}
        for _ in range(args.repeats):  # interleaved: all see the same machine load
            times["five indicators"].append(_run(df, models, runonce)[0])
            for name, makers in baselines.items():
                times[name].append(_run(df, makers, runonce)[0])
        med = {name: statistics.median(t) for name, t in times.items()}
        print(("batched (runonce)" if runonce else "bar by bar") + ", bars/s: "
              + ", ".join(f"{name} {args.bars / t:.0f}" for name, t in med.items()))
        m = med["five indicators"]
        print(f"  ratio to one SMA {med['SMA'] / m:.2f} (target >= 0.8); to five SMAs {med['five SMAs'] / m:.2f}; "
              f"five no-ops to one SMA {med['SMA'] / med['five no-ops']:.2f} (backtrader's ceiling)")

    print(f"median next() per bar, bar by bar, lowest of {args.repeats} interleaved passes (target <= 1 ms):")
    timed = {name: _timed_next(cls) for name, cls in INDICATORS.items()}
    passes: dict[str, list[np.ndarray]] = {name: [] for name in INDICATORS}
    for _ in range(args.repeats):  # a busy neighbour only adds time: the quietest pass is the cost
        for name, cls in timed.items():
            cls.durations = []
            _run(df, [lambda d, c=cls: c(d, **common)], runonce=False)
            passes[name].append(np.array(cls.durations) * 1e3)
    for name, runs in passes.items():
        ms = min(runs, key=np.median)
        print(f"  {name:15s} median {np.median(ms):.3f} ms, p95 {np.percentile(ms, 95):.3f} ms over {ms.size} bars "
              f"(medians of the passes: {', '.join(f'{np.median(r):.3f}' for r in runs)})")

if __name__ == "__main__":
    main()
