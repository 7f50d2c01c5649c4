"""``backtest``: one event-driven backtest of a registered strategy on an OHLCV frame.

Orders fill at the next bar's open (no cheat-on-close) on a :class:`BybitBroker`: Bybit's maker/taker
fees for spot or linear perpetuals, leverage, funding, slippage and volume-limited fills; the broker's
value is recorded at every bar's close. The :class:`BacktestResult` carries what reports need as plain
data: the per-bar equity, the buy-and-hold benchmark of the same bars, the trades, the indicator lines,
the bars and the model indicators' settings.
"""
from __future__ import annotations

import time
from typing import Any, Mapping

import backtrader as bt
import numpy as np
import pandas as pd

from btdensity.feeds import DataFrameFeed
from btdensity.strategies.registry import get_strategy

from .config import BacktestConfig
from .result import BacktestResult

__all__ = ["backtest", "indicator_lines", "model_settings"]

_OHLCV = ("open", "high", "low", "close", "volume")


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


def backtest(df: pd.DataFrame, config: BacktestConfig = BacktestConfig(), *,
             cerebro_kwargs: Mapping[str, Any] | None = None) -> BacktestResult:
    """Run ``config.strategy`` over the bars of ``df`` (an OHLCV frame with a UTC index).

    A strategy with a ``walk_forward`` parameter (the model strategies) gets ``config.walk_forward``, updated by
    a mapping the strategy's own ``walk_forward`` parameter gives.
    """
    strategy_cls = get_strategy(config.strategy)
    cerebro = bt.Cerebro(stdstats=False, runonce=config.runonce, **(cerebro_kwargs or {}))
    cerebro.adddata(DataFrameFeed(dataname=df), name="data")
    params = dict(config.params)
    if "walk_forward" in strategy_cls.params._getkeys():
        params["walk_forward"] = config.walk_forward.replace(**dict(params.get("walk_forward") or {}))
    cerebro.addstrategy(strategy_cls, **params)
    cerebro.setbroker(config.make_broker())
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
    lines = indicator_lines(strategy)
    prices = pd.DataFrame({k: np.asarray(getattr(strategy.data, k).array, dtype=np.float64)[:len(lines)]
                           for k in _OHLCV}, index=lines.index)
    if "anomaly" in df.columns:   # the synthetic market's ground truth: the diagnostics page scores detectors on it
        prices["anomaly"] = df["anomaly"].reindex(lines.index).to_numpy(dtype=np.float64)
    return BacktestResult(config=config, values=values, positions=pd.Series(rec.positions, index=index),
                          benchmark=benchmark, trades=trades, lines=lines, prices=prices,
                          settings=model_settings(strategy), runtime_s=runtime,
                          fees_paid=float(cerebro.broker.fees_paid), funding_paid=float(cerebro.broker.funding_paid),
                          cerebro=cerebro)


def model_settings(strategy: bt.Strategy) -> dict[str, Any]:
    """What the diagnostics need of the strategy's model indicators, read off the first of each class:
    ``horizon`` and ``level`` of BNNUncertainty, ``alpha`` of LogDensity, ``score_horizon`` of ScoreDirection."""
    settings: dict[str, Any] = {"horizon": 1, "level": None, "alpha": None, "score_horizon": 1}
    for ind in reversed(strategy.getindicators()):     # reversed: the first of a class wins
        name = type(ind).__name__
        p = ind.params   # a stand-in with the same lines (ablations) may lack the parameters: keep the defaults
        if name == "BNNUncertainty" and hasattr(p, "level"):
            settings.update(horizon=max(int(p.horizon), 1), level=float(p.level))
        elif name == "LogDensity" and hasattr(p, "alpha"):
            settings["alpha"] = float(p.alpha)
        elif name == "ScoreDirection" and hasattr(p, "horizon"):
            settings["score_horizon"] = max(int(p.horizon), 1)
    return settings


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
        lines = ind.lines
        # arithmetic of lines (e.g. SMA - SMA) is a line operation whose lines have no names
        aliases = lines.getlinealiases() if hasattr(lines, "getlinealiases") else [f"line{i}" for i in range(len(lines))]
        for i, alias in enumerate(aliases):
            values = np.full(n, np.nan)
            arr = np.asarray(lines[i].array, dtype=np.float64)[:n]
            values[:len(arr)] = arr
            columns[f"{prefix}.{alias}"] = values
    return pd.DataFrame(columns, index=index).rename_axis("datetime")
