"""Market scenarios: joint return paths of the next ``horizon`` bars drawn from the walk-forward model that serves a
bar, given that bar's state, set beside what happened.

A :class:`~btdensity.indicators.tail_risk.TailRisk` indicator of ``horizon`` H models the joint law of the next H
one-bar log returns given the features; :meth:`TailRisk.scenarios` draws paths from it (the conditional flow's
inverse, the Bayesian network's posterior mixture, or Langevin dynamics of the score model with the state fixed).
This module turns those draws into :class:`ScenarioFan` objects (paths, realised path, quantile bands) for a
few bars of a run (:func:`scenario_fans`) or of a bare OHLCV frame (:func:`simulate_scenarios`); the fan chart is
:func:`btdensity.reports.scenario_figures.scenario_panel`.

>>> fan = ScenarioFan(pd.Timestamp("2024-01-01", tz="UTC"), 0, 100.0, np.array([[0.0, 0.1], [0.0, -0.1]]),
...                   np.array([0.01, 0.02]))
>>> fan.bands((0.5,)).round(3).tolist(), fan.prices()[:, 1].round(2).tolist()
([[0.0, 0.0]], [110.52, 90.48])
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import backtrader as bt
import numpy as np
import pandas as pd

__all__ = ["ScenarioFan", "fan_bars", "scenario_fans", "simulate_scenarios"]


@dataclass(frozen=True)
class ScenarioFan:
    """Scenarios drawn at one bar: ``paths`` (``(n_paths, horizon)``, cumulative log returns from the bar's close
    ``close``) and ``realized`` (the cumulative log returns that followed, NaN past the data's end)."""

    time: pd.Timestamp
    bar: int
    close: float
    paths: np.ndarray
    realized: np.ndarray

    @property
    def horizon(self) -> int:
        return int(self.paths.shape[1])

    def bands(self, probs: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95)) -> np.ndarray:
        """Quantiles of the cumulative log return at each step ahead: shape ``(len(probs), horizon)``."""
        return np.quantile(self.paths, np.asarray(probs, dtype=np.float64), axis=0)

    def prices(self) -> np.ndarray:
        """The paths as prices: ``close · exp(paths)``."""
        return self.close * np.exp(self.paths)

    def coverage(self, level: float = 0.9) -> float:
        """Share of the realised steps inside the central ``level`` band (NaN without a realised step)."""
        lo, hi = self.bands(((1.0 - level) / 2.0, (1.0 + level) / 2.0))
        known = np.isfinite(self.realized)
        if not known.any():
            return float("nan")
        inside = (self.realized >= lo) & (self.realized <= hi)
        return float(inside[known].mean())


def fan_bars(first_bar: int, n_bars: int, horizon: int, count: int = 4) -> list[int]:
    """``count`` bars spread evenly from ``first_bar`` (a model's first value) to the last bar whose ``horizon``
    following bars are all in the data (``n_bars`` bars): where a fan can be set against what happened."""
    last = n_bars - 1 - horizon
    if last < first_bar:
        return []
    return sorted({int(round(b)) for b in np.linspace(first_bar, last, int(count))})


def scenario_fans(indicator: Any, bars: Sequence[int], n_paths: int = 500, seed: int | None = None
                  ) -> list[ScenarioFan]:
    """Fans of a ``TailRisk`` indicator after its run, at the data's bar indices ``bars``: paths from the model
    serving each bar (the run's model cache, no refit), the realised path from the bars that followed."""
    close = np.asarray(indicator.data.close.array, dtype=np.float64)
    times = indicator.data.datetime.array
    h = indicator.spec.horizon
    fans = []
    for bar in bars:
        after = close[bar + 1:bar + 1 + h]
        realized = np.full(h, np.nan)
        realized[:after.size] = np.log(after / close[bar])
        when = pd.Timestamp(bt.num2date(times[bar])).tz_localize("UTC")
        fans.append(ScenarioFan(when, int(bar), float(close[bar]), indicator.scenarios(int(bar), n_paths, seed),
                                realized))
    return fans


class _Holder(bt.Strategy):
    params = (("make", None),)

    def __init__(self) -> None:
        self.tail_risk = self.p.make(self.data)


def simulate_scenarios(df: pd.DataFrame, times: Sequence[Any] | None = None, horizon: int = 24,
                       n_paths: int = 500, count: int = 4, seed: int | None = None, **params: Any
                       ) -> list[ScenarioFan]:
    """Walk-forward ``TailRisk(horizon=horizon, **params)`` on the OHLCV frame ``df`` (one batched backtrader run),
    then fans at ``times`` (timestamps of bars of ``df``; default ``count`` bars spread over the served span with
    ``horizon`` bars after them)."""
    from btdensity.feeds import DataFrameFeed

    from .tail_risk import TailRisk

    cerebro = bt.Cerebro(stdstats=False, runonce=True)
    cerebro.adddata(DataFrameFeed(dataname=df))
    cerebro.addstrategy(_Holder, make=lambda data: TailRisk(data, horizon=horizon, **params))
    indicator = cerebro.run()[0].tail_risk
    if times is None:
        bars = fan_bars(indicator.spec.first_fit, len(df), horizon, count)
    else:
        bars = [int(df.index.get_loc(pd.Timestamp(t))) for t in times]
    return scenario_fans(indicator, bars, n_paths, seed)
