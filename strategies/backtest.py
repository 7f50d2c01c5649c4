"""``backtest``: one event-driven backtest of a registered strategy on an OHLCV frame.

Orders fill at the next bar's open (no cheat-on-close) on a :class:`BybitBroker`: Bybit's maker/taker
fees for spot or linear perpetuals, leverage, funding, slippage and volume-limited fills; the broker's
value is recorded at every bar's close. The result carries what reports need: the
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

from .broker import BybitBroker, FractionalBarPerc
from .commission import BYBIT_FEES, MARKETS, BybitCommission
from .funding import FundingRates, FundingSource
from .registry import get_strategy

__all__ = ["BacktestConfig", "BacktestResult", "backtest", "indicator_lines"]


@dataclass(frozen=True)
class BacktestConfig:
    """What a backtest runs: the strategy (registry name and parameters) and the broker's terms.

    ``market`` is ``"spot"`` or ``"linear"`` (USDT perpetual); ``commission`` (the taker fee) and
    ``maker_fee`` left at ``None`` are set to Bybit's base tier for the market (``BYBIT_FEES``).
    ``leverage`` (linear only) sets the margin, not the exposure. ``funding`` (linear only) is a
    constant rate per 8 h, a rate series / ``fetch_funding_rates`` frame or a ``FundingRates``.
    ``volume_fill`` caps each bar's fill at that percentage of the bar's volume.
    """

    strategy: str = "sma_cross"
    params: Mapping[str, Any] = field(default_factory=dict)
    cash: float = 10_000.0
    commission: float | None = None   # taker fee, fraction of traded value (None: Bybit's for the market)
    slippage: float = 0.0             # fraction of price, against the trader
    runonce: bool = True
    market: str = "spot"
    maker_fee: float | None = None    # fraction of traded value (None: Bybit's for the market)
    leverage: float = 1.0
    funding: FundingSource | None = None
    volume_fill: float | None = None  # percent of a bar's volume an order may fill per bar
    indicator_kwargs: Mapping[str, Any] = field(default_factory=dict)  # walk-forward settings of model strategies

    def __post_init__(self) -> None:
        if not self.cash > 0:
            raise ValueError(f"cash must be positive; got {self.cash}")
        if self.market not in MARKETS:
            raise ValueError(f"market must be one of {MARKETS}; got {self.market!r}")
        maker, taker = BYBIT_FEES[self.market]
        if self.commission is None:
            object.__setattr__(self, "commission", taker)
        if self.maker_fee is None:
            object.__setattr__(self, "maker_fee", maker)
        for name in ("commission", "maker_fee"):
            fee = getattr(self, name)
            if not 0 <= fee < 0.1:
                raise ValueError(f"{name} is a fraction of traded value in [0, 0.1); got {fee}")
        if not 0 <= self.slippage < 0.1:
            raise ValueError(f"slippage is a fraction of price in [0, 0.1); got {self.slippage}")
        if not 1.0 <= self.leverage < float("inf"):
            raise ValueError(f"leverage must be a number >= 1; got {self.leverage}")
        if self.market == "spot" and (self.leverage != 1.0 or self.funding is not None):
            raise ValueError("spot trades without leverage or funding; use market='linear' for perpetuals")
        if self.volume_fill is not None and not 0 < self.volume_fill <= 100:
            raise ValueError(f"volume_fill is a percentage of bar volume in (0, 100]; got {self.volume_fill}")

    def commission_info(self) -> BybitCommission:
        """The commission scheme of these terms."""
        return BybitCommission(market=self.market, leverage=self.leverage, maker=self.maker_fee,
                               taker=self.commission)

    def funding_rates(self) -> FundingRates | None:
        """The funding settlements of these terms (``None``: no funding)."""
        if self.funding is None or isinstance(self.funding, FundingRates):
            return self.funding
        if isinstance(self.funding, (pd.Series, pd.DataFrame)):
            return FundingRates.from_series(self.funding)
        return FundingRates.constant(self.funding)

    def make_broker(self) -> BybitBroker:
        """A broker with these terms: cash, fees, leverage, funding, slippage and volume-limited fills."""
        broker = BybitBroker(cash=self.cash, funding=self.funding_rates())
        broker.addcommissioninfo(self.commission_info())
        if self.slippage:
            broker.set_slippage_perc(self.slippage)
        if self.volume_fill is not None:
            broker.set_filler(FractionalBarPerc(perc=self.volume_fill))
        return broker


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
    fees_paid: float = 0.0        # total commission, cash units
    funding_paid: float = 0.0     # net funding paid (negative: received), cash units

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
    params = dict(config.params)
    if config.indicator_kwargs and "indicator_kwargs" in strategy_cls.params._getkeys():
        params["indicator_kwargs"] = {**config.indicator_kwargs, **(params.get("indicator_kwargs") or {})}
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
    return BacktestResult(config=config, values=values, positions=pd.Series(rec.positions, index=index),
                          benchmark=benchmark, trades=trades, runtime_s=runtime,
                          strategy=strategy, cerebro=cerebro, fees_paid=float(cerebro.broker.fees_paid),
                          funding_paid=float(cerebro.broker.funding_paid))


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
