"""``backtest``: one event-driven backtest of a registered strategy on an OHLCV frame.

Orders fill at the next bar's open (no cheat-on-close), with a percentage commission and slippage;
the broker's value is recorded at every bar's close. The result carries what reports need: the
per-bar equity, the buy-and-hold benchmark of the same bars, the trades and the indicator lines.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import feeds.btcompat  # noqa: F401

import backtrader as bt
import numpy as np
import pandas as pd

from feeds import DataFrameFeed

from .commission import FractionalCommission
from .registry import get_strategy

__all__ = ["BacktestConfig", "BacktestResult", "backtest", "indicator_lines"]


@dataclass(frozen=True)
class BacktestConfig:
    """What a backtest runs: the strategy (registry name and parameters) and the broker's terms."""

    strategy: str = "sma_cross"
    params: Mapping[str, Any] = field(default_factory=dict)
    cash: float = 10_000.0
    commission: float = 0.00055   # taker fee, fraction of traded value
    slippage: float = 0.0         # fraction of price, against the trader
    runonce: bool = True

    def __post_init__(self) -> None:
        if not self.cash > 0:
            raise ValueError(f"cash must be positive; got {self.cash}")
        if not 0 <= self.commission < 0.1:
            raise ValueError(f"commission is a fraction of traded value in [0, 0.1); got {self.commission}")
        if not 0 <= self.slippage < 0.1:
            raise ValueError(f"slippage is a fraction of price in [0, 0.1); got {self.slippage}")


class _Recorder(bt.Analyzer):
    """Broker value and position at every bar's close, and every closed trade."""

    def start(self) -> None:
        self.times: list[float] = []
        self.values: list[float] = []
        self.positions: list[float] = []
        self.trades: list[dict[str, Any]] = []

    def next(self) -> None:
        self.times.append(self.data.datetime[0])
        self.values.append(self.strategy.broker.getvalue())
        self.positions.append(self.strategy.getposition(self.data).size)

    def notify_trade(self, trade: bt.Trade) -> None:
        if trade.isclosed:
            self.trades.append({
                "open": bt.num2date(trade.dtopen), "close": bt.num2date(trade.dtclose),
                "pnl": trade.pnl, "pnlcomm": trade.pnlcomm, "commission": trade.commission,
                "bars": trade.barlen, "long": bool(trade.long),
            })


@dataclass
class BacktestResult:
    """A finished backtest. ``values`` is the broker value at each bar's close (a UTC-indexed Series)."""

    config: BacktestConfig
    values: pd.Series
    positions: pd.Series
    benchmark: pd.Series          # buy-and-hold value of the same bars, same starting cash
    trades: pd.DataFrame
    runtime_s: float
    strategy: bt.Strategy
    cerebro: bt.Cerebro

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


def backtest(df: pd.DataFrame, config: BacktestConfig = BacktestConfig(), *,
             cerebro_kwargs: Mapping[str, Any] | None = None) -> BacktestResult:
    """Run ``config.strategy`` over the bars of ``df`` (an OHLCV frame with a UTC index)."""
    strategy_cls = get_strategy(config.strategy)
    cerebro = bt.Cerebro(stdstats=False, runonce=config.runonce, **(cerebro_kwargs or {}))
    cerebro.adddata(DataFrameFeed(dataname=df), name="data")
    cerebro.addstrategy(strategy_cls, **dict(config.params))
    cerebro.broker.setcash(config.cash)
    cerebro.broker.addcommissioninfo(FractionalCommission(commission=config.commission))
    if config.slippage:
        cerebro.broker.set_slippage_perc(config.slippage)
    cerebro.addobserver(bt.observers.Value)
    cerebro.addobserver(bt.observers.BuySell, barplot=True)
    cerebro.addanalyzer(_Recorder, _name="recorder")
    start = time.perf_counter()
    strategy = cerebro.run()[0]
    runtime = time.perf_counter() - start

    rec = strategy.analyzers.recorder
    index = pd.DatetimeIndex([bt.num2date(t) for t in rec.times]).tz_localize("UTC").as_unit("ns")
    values = pd.Series(rec.values, index=index, name="strategy")
    closes = df["close"].reindex(index)
    benchmark = pd.Series(config.cash * closes.to_numpy() / closes.iloc[0], index=index, name="buy_and_hold")
    trades = pd.DataFrame(rec.trades, columns=["open", "close", "pnl", "pnlcomm", "commission", "bars", "long"])
    return BacktestResult(config=config, values=values, positions=pd.Series(rec.positions, index=index),
                          benchmark=benchmark, trades=trades, runtime_s=runtime,
                          strategy=strategy, cerebro=cerebro)


def indicator_lines(strategy: bt.Strategy) -> pd.DataFrame:
    """Every line of every indicator the strategy created, per bar.

    Columns are ``<IndicatorClass>.<line>``; a second indicator of the same class is
    ``<IndicatorClass>_2.<line>``. The index is the bars' UTC datetimes.
    """
    dts = np.asarray(strategy.data.datetime.array)
    index = pd.DatetimeIndex([bt.num2date(t) for t in dts]).tz_localize("UTC").as_unit("ns")
    n = len(index)
    columns: dict[str, np.ndarray] = {}
    seen: dict[str, int] = {}
    for ind in strategy.getindicators():
        cls = type(ind).__name__
        seen[cls] = seen.get(cls, 0) + 1
        prefix = cls if seen[cls] == 1 else f"{cls}_{seen[cls]}"
        for i, alias in enumerate(ind.lines.getlinealiases()):
            values = np.full(n, np.nan)
            arr = np.asarray(ind.lines[i].array, dtype=np.float64)[:n]
            values[:len(arr)] = arr
            columns[f"{prefix}.{alias}"] = values
    return pd.DataFrame(columns, index=index).rename_axis("datetime")
