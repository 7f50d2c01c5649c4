"""``BacktestConfig``: what a backtest runs — the strategy and its parameters, the broker's terms (cash, fees,
slippage, leverage, funding, volume-limited fills) and the model indicators' walk-forward settings."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import pandas as pd

from btdensity.indicators import WalkForwardSettings
from btdensity.strategies.broker import BybitBroker, FractionalBarPerc
from btdensity.strategies.commission import BYBIT_FEES, MARKETS, BybitCommission
from btdensity.strategies.funding import FundingRates, FundingSource
from btdensity.strategies.registry import check_params

__all__ = ["BacktestConfig"]


@dataclass(frozen=True)
class BacktestConfig:
    """What a backtest runs: the strategy (registry name and parameters) and the broker's terms.

    ``market`` is ``"spot"`` or ``"linear"`` (USDT perpetual); ``commission`` (the taker fee) and
    ``maker_fee`` left at ``None`` are set to Bybit's base tier for the market (``BYBIT_FEES``).
    ``leverage`` (linear only) sets the margin, not the exposure. ``funding`` (linear only) is a
    constant rate per 8 h, a rate series / ``fetch_funding_rates`` frame or a ``FundingRates``.
    ``volume_fill`` caps each bar's fill at that percentage of the bar's volume. ``walk_forward`` (settings or
    a mapping of them, checked here) trains the model indicators of strategies that have them.
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
    walk_forward: WalkForwardSettings = field(default_factory=WalkForwardSettings)  # of the model indicators

    def __post_init__(self) -> None:
        object.__setattr__(self, "walk_forward", WalkForwardSettings.from_mapping(self.walk_forward))
        check_params(self.strategy, self.params)
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
