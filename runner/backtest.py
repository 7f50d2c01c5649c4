"""``backtest``: one event-driven backtest of a registered strategy on an OHLCV frame, or on several (a portfolio:
one data feed per asset, aligned on their common bars).

Orders fill at the next bar's open (no cheat-on-close) on a :class:`BybitBroker`: Bybit's maker/taker
fees for spot or linear perpetuals, leverage, funding, slippage and volume-limited fills; the broker's
value is recorded at every bar's close. The :class:`BacktestResult` carries what reports need as plain
data: the per-bar equity, the buy-and-hold benchmark of the same bars, the trades, the indicator lines,
the bars and the model indicators' settings, and with several assets each asset's positions and P&L.
"""
from __future__ import annotations

import time
from typing import Any, Mapping

import backtrader as bt
import numpy as np
import pandas as pd

from btdensity.feeds import DataFrameFeed
from btdensity.strategies.registry import get_strategy

from .assets import Frames, align_frames, as_frames
from .config import BacktestConfig
from .result import BacktestResult

__all__ = ["backtest", "indicator_lines", "model_settings"]

_OHLCV = ("open", "high", "low", "close", "volume")


class _Recorder(bt.Analyzer):
    """Broker value and position at every bar's close, and every closed trade; with several data feeds also, per
    feed, the position, the trading cash flow (what its fills paid and received, fees included), the fees and a
    share of the funding, from which ``backtest`` builds each asset's P&L."""

    def start(self) -> None:
        self.times: list[float] = []
        self.values: list[float] = []
        self.positions: list[float] = []
        self.trades: list[dict[str, Any]] = []
        datas = self.strategy.datas
        self.several = len(datas) > 1
        self._feed = {id(data): i for i, data in enumerate(datas)}
        self.sizes: list[list[float]] = [[] for _ in datas]   # position per feed at each close
        self.pnl: list[list[float]] = [[] for _ in datas]     # cumulative P&L per feed at each close
        self._flow = [0.0] * len(datas)      # cumulative cash from fills per feed: -size x price - fees
        self.fees = [0.0] * len(datas)
        self.funding = [0.0] * len(datas)
        self._filled: dict[int, tuple[float, float]] = {}   # order ref -> (size x price, fees) already counted
        self._funding_seen = 0.0

    def notify_order(self, order: bt.Order) -> None:
        if not self.several or order.status not in (order.Partial, order.Completed):
            return
        done = (order.executed.size * order.executed.price, order.executed.comm)
        before = self._filled.get(order.ref, (0.0, 0.0))
        self._filled[order.ref] = done
        i = self._feed[id(order.data)]
        mult = self.strategy.broker.getcommissioninfo(order.data).p.mult
        self._flow[i] -= (done[0] - before[0]) * mult + (done[1] - before[1])
        self.fees[i] += done[1] - before[1]

    def next(self) -> None:
        broker = self.strategy.broker
        self.times.append(self.data.datetime[0])
        self.values.append(broker.getvalue())
        self.positions.append(self.strategy.getposition(self.data).size)
        if self.several:
            self._record_feeds(broker)

    def _record_feeds(self, broker: Any) -> None:
        """Per feed: the position, and the P&L = position x close + cash flow of the fills - funding."""
        datas = self.strategy.datas
        mults = [broker.getcommissioninfo(data).p.mult for data in datas]
        paid = float(getattr(broker, "funding_paid", 0.0))
        if paid != self._funding_seen and self.sizes[0]:
            # funding is charged on the position held into the bar, at its open, at one rate for every feed: each
            # feed pays its share of the bar's funding in proportion to that notional
            held = [self.sizes[i][-1] * data.open[0] * mults[i] for i, data in enumerate(datas)]
            total = sum(held)
            if total != 0.0:
                for i, notional in enumerate(held):
                    self.funding[i] += (paid - self._funding_seen) * notional / total
        self._funding_seen = paid
        for i, data in enumerate(datas):
            size = self.strategy.getposition(data).size
            self.sizes[i].append(size)
            self.pnl[i].append(size * data.close[0] * mults[i] + self._flow[i] - self.funding[i])

    def notify_trade(self, trade: bt.Trade) -> None:
        if trade.isclosed:
            row = {
                "open": bt.num2date(trade.dtopen), "close": bt.num2date(trade.dtclose),
                "pnl": trade.pnl, "pnlcomm": trade.pnlcomm, "commission": trade.commission,
                "bars": trade.barlen, "long": bool(trade.long),
            }
            if self.several:
                row["asset"] = trade.data._name
            self.trades.append(row)


def backtest(data: Frames, config: BacktestConfig = BacktestConfig(), *,
             cerebro_kwargs: Mapping[str, Any] | None = None) -> BacktestResult:
    """Run ``config.strategy`` over the bars of ``data``: an OHLCV frame with a UTC index, or several (a mapping
    asset name -> frame, or a list, named ``asset0``, ``asset1``, ...), one data feed each.

    Several frames are aligned on the timestamps they all have (:func:`~btdensity.runner.assets.align_frames`);
    the strategy sees them as ``self.datas`` in the order given, each feed named after its asset, with the same
    broker terms (fees, funding, slippage) on every feed. The result then also has the assets' positions,
    P&L, fees and bars (see :class:`BacktestResult`), and its benchmark is an equal-weight buy-and-hold.
    One frame (or a mapping / list of one) runs exactly as a single-asset backtest.

    A strategy with a ``walk_forward`` parameter (the model strategies) gets ``config.walk_forward``, updated by
    a mapping the strategy's own ``walk_forward`` parameter gives.
    """
    frames = as_frames(data)
    if len(frames) > 1:
        frames = align_frames(frames)
    names = list(frames)
    several = len(frames) > 1
    strategy_cls = get_strategy(config.strategy)
    cerebro = bt.Cerebro(stdstats=False, runonce=config.runonce, **(cerebro_kwargs or {}))
    for name, frame in frames.items():
        cerebro.adddata(DataFrameFeed(dataname=frame), name=name)
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
    columns = ["open", "close", "pnl", "pnlcomm", "commission", "bars", "long"] + (["asset"] if several else [])
    trades = pd.DataFrame(rec.trades, columns=columns)
    lines = indicator_lines(strategy)
    bars = {name: pd.DataFrame({k: np.asarray(getattr(feed, k).array, dtype=np.float64)[:len(lines)] for k in _OHLCV},
                               index=lines.index) for name, feed in zip(names, strategy.datas)}
    for name, bar in bars.items():   # the synthetic market's ground truth: the diagnostics score detectors on it
        if "anomaly" in frames[name].columns:
            bar["anomaly"] = frames[name]["anomaly"].reindex(lines.index).to_numpy(dtype=np.float64)
    first = frames[names[0]]["close"].reindex(index)
    benchmark = pd.Series(config.cash * first.to_numpy() / first.iloc[0], index=index, name="buy_and_hold")
    extra: dict[str, Any] = {"assets": tuple(names)}
    if several:
        closes = pd.DataFrame({name: frames[name]["close"].reindex(index) for name in names})
        benchmark = (config.cash / len(names) * (closes / closes.iloc[0]).sum(axis=1)).rename("buy_and_hold")
        extra.update(asset_positions=pd.DataFrame(dict(zip(names, rec.sizes)), index=index),
                     asset_pnl=pd.DataFrame(dict(zip(names, rec.pnl)), index=index),
                     asset_fees=pd.Series(rec.fees, index=names, name="fees_paid"),
                     asset_funding=pd.Series(rec.funding, index=names, name="funding_paid"),
                     asset_prices=bars)
    return BacktestResult(config=config, values=values, positions=pd.Series(rec.positions, index=index),
                          benchmark=benchmark, trades=trades, lines=lines, prices=bars[names[0]],
                          settings=model_settings(strategy), runtime_s=runtime,
                          fees_paid=float(cerebro.broker.fees_paid), funding_paid=float(cerebro.broker.funding_paid),
                          cerebro=cerebro, **extra)


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
