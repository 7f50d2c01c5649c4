"""``BacktestResult``: a finished backtest as plain data — equity, benchmark, positions, trades, the indicator lines,
the bars and the model settings the reports need, and with several assets each asset's positions, weights and P&L.
Reports read this and nothing else of the run."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

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

    Several assets (a portfolio backtest): ``assets`` names them in feed order; ``positions`` and ``prices`` are the
    first asset's (what the diagnostics read), ``trades`` has an ``asset`` column and ``benchmark`` is an
    equal-weight buy-and-hold (the cash split evenly at the first close). Per asset: ``asset_positions`` (position
    size at each close, one column per asset), ``asset_pnl`` (cumulative P&L at each close: the position marked to
    the close plus what its fills paid and received, minus its fees and its share of the funding; the columns add up
    to ``values - cash``), ``asset_fees`` and ``asset_funding`` (totals, adding up to ``fees_paid`` and
    ``funding_paid``), ``asset_prices`` (asset -> its bars) and :attr:`asset_weights`. With one asset they are
    ``None`` and ``assets`` holds its one name.

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
    assets: tuple[str, ...] = ("data",)
    asset_positions: pd.DataFrame | None = None
    asset_pnl: pd.DataFrame | None = None
    asset_fees: pd.Series | None = None
    asset_funding: pd.Series | None = None
    asset_prices: Mapping[str, pd.DataFrame] | None = field(default=None, repr=False)

    @property
    def several(self) -> bool:
        """Whether the run traded several assets (a portfolio)."""
        return self.asset_positions is not None

    @property
    def asset_weights(self) -> pd.DataFrame | None:
        """Each asset's position value over the portfolio's value at each close (signed; ``None`` for one asset)."""
        if self.asset_positions is None:
            return None
        closes = pd.DataFrame({name: self.asset_prices[name]["close"] for name in self.assets})
        return (self.asset_positions * closes.reindex(self.asset_positions.index)).div(self.values, axis=0)

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
        """Share of bars that closed with an open position (of any asset)."""
        held = self.positions if self.asset_positions is None else (self.asset_positions != 0).any(axis=1)
        return float((held != 0).mean()) if len(held) else 0.0


def _returns(values: pd.Series, cash: float) -> pd.Series:
    prev = values.shift(1)
    prev.iloc[0] = cash
    return values / prev - 1.0
