"""``BacktestResult``: a finished backtest as plain data — equity, benchmark, positions, trades, the indicator lines,
the bars and the model settings the reports need. Reports read this and nothing else of the run."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .config import BacktestConfig

__all__ = ["BacktestResult"]


@dataclass
class BacktestResult:
    """A finished backtest; every Series / frame is indexed by the bars' UTC datetimes.

    - ``values``: broker value at each bar's close; ``benchmark``: buy-and-hold of the same bars and cash;
      ``positions``: position size at each close; ``trades``: closed trades (``open``, ``close``, ``pnl``,
      ``pnlcomm``, ``commission``, ``bars``, ``long``);
    - ``lines``: every line of every indicator of the strategy (columns ``<IndicatorClass>.<line>``);
      ``prices``: the OHLCV bars (and the data's ground-truth ``anomaly`` flag, when it has one); ``settings``:
      what the diagnostics need of the model indicators (``horizon`` and ``level`` of the BNN, ``alpha`` of the
      gate, ``score_horizon``);
    - ``fees_paid`` (commission) and ``funding_paid`` (net perpetual funding, negative when received), cash units.

    ``cerebro`` is backtrader's engine after the run, kept for its own plot and for your inspection
    (``result.strategy`` is the strategy instance); nothing in btdensity's reports reads the strategy.
    """

    config: BacktestConfig
    values: pd.Series
    positions: pd.Series
    benchmark: pd.Series
    trades: pd.DataFrame
    lines: pd.DataFrame
    prices: pd.DataFrame
    settings: dict[str, Any]
    runtime_s: float
    fees_paid: float = 0.0
    funding_paid: float = 0.0
    cerebro: Any = field(default=None, repr=False, compare=False)

    @property
    def strategy(self) -> Any:
        """The backtrader strategy instance of the run (``None`` when the engine was not kept)."""
        return None if self.cerebro is None else self.cerebro.runstrats[0][0]

    @property
    def returns(self) -> pd.Series:
        return _returns(self.values, self.config.cash)

    @property
    def benchmark_returns(self) -> pd.Series:
        return _returns(self.benchmark, self.config.cash)

    @property
    def exposure(self) -> float:
        """Share of bars that closed with an open position."""
        return float((self.positions != 0).mean()) if len(self.positions) else 0.0


def _returns(values: pd.Series, cash: float) -> pd.Series:
    prev = values.shift(1)
    prev.iloc[0] = cash
    return values / prev - 1.0
