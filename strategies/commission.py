"""Commission schemes. Crypto trades in fractions of a coin, so sizes are never rounded to whole units.

:class:`BybitCommission` holds Bybit's maker/taker fees for spot and linear perpetuals and, for
perpetuals, margin at a leverage; :class:`btdensity.strategies.broker.BybitBroker` tells it which of the two
fees a fill pays and settles funding.
"""
from __future__ import annotations

import math


import backtrader as bt

__all__ = ["BYBIT_FEES", "MARKETS", "BybitCommission"]

#: the markets a :class:`BybitCommission` models
MARKETS = ("spot", "linear")

#: Bybit's published base-tier (VIP 0) fees as fractions of traded value: ``{market: (maker, taker)}``
BYBIT_FEES: dict[str, tuple[float, float]] = {
    "spot": (0.001, 0.001),        # 0.1 % / 0.1 %
    "linear": (0.0002, 0.00055),   # 0.02 % / 0.055 % (USDT perpetuals)
}


def _check_fee(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value < 0.1):
        raise ValueError(f"BybitCommission({name}={value!r}): a fee is a fraction of traded value in [0, 0.1), "
                         "e.g. 0.00055 for 0.055 %")


class BybitCommission(bt.CommInfoBase):
    """Bybit's fees and margin for one instrument, with fractional sizes (sizes are notional / price).

    ``market="spot"``: stock-like, no leverage, fees ``BYBIT_FEES["spot"]``.
    ``market="linear"`` (USDT perpetual): futures-like; opening ``size`` at ``price`` locks the
    initial margin ``|size| * price / leverage`` of cash, gains and losses are settled into cash at
    every bar's close, and the broker value is cash plus the locked margin. Funding is not a
    commission: :class:`btdensity.strategies.broker.BybitBroker` settles it.

    ``maker`` / ``taker`` (default: Bybit's base tier for the market) are fractions of traded value.
    Which one a fill pays follows the order type: ``Limit`` (and the limit leg of ``StopLimit``) pays
    maker, everything else (``Market``, ``Close``, ``Stop``) pays taker. A limit order that is
    marketable when it arrives would pay taker on Bybit; this simple rule charges it maker. Without
    :class:`~strategies.broker.BybitBroker` (which reports the order type) every fill pays taker.
    """

    params = (
        ("market", "spot"),
        ("maker", None),
        ("taker", None),
        ("leverage", 1.0),
        ("commtype", bt.CommInfoBase.COMM_PERC),
        ("percabs", True),
    )

    #: order types that pay the maker fee
    MAKER_TYPES = frozenset({bt.Order.Limit, bt.Order.StopLimit, bt.Order.StopTrailLimit})

    def __init__(self) -> None:
        if self.p.market not in MARKETS:
            raise ValueError(f"BybitCommission(market={self.p.market!r}): market must be one of {MARKETS}")
        maker, taker = BYBIT_FEES[self.p.market]
        self.maker = maker if self.p.maker is None else self.p.maker
        self.taker = taker if self.p.taker is None else self.p.taker
        _check_fee("maker", self.maker)
        _check_fee("taker", self.taker)
        lev = self.p.leverage
        if not (isinstance(lev, (int, float)) and math.isfinite(lev) and lev >= 1.0):
            raise ValueError(f"BybitCommission(leverage={lev!r}): leverage must be a number >= 1")
        if self.p.market == "spot" and lev != 1.0:
            raise ValueError(f"BybitCommission(leverage={lev}): spot trades without leverage; "
                             "use market='linear' for leveraged perpetuals")
        self.p.stocklike = self.p.market == "spot"
        self.p.commission = self.taker
        super().__init__()
        #: the type of the order being filled, set by BybitBroker around each fill (None: taker)
        self.exectype: int | None = None

    @property
    def perpetual(self) -> bool:
        """Whether this is a linear perpetual (futures-like, margined, pays funding)."""
        return not self._stocklike

    def fee_rate(self, exectype: int | None) -> float:
        """The fee (fraction of traded value) a fill of an order of type ``exectype`` pays."""
        return self.maker if exectype in self.MAKER_TYPES else self.taker

    def _getcommission(self, size: float, price: float, pseudoexec: bool) -> float:
        return abs(size) * price * self.p.mult * self.fee_rate(self.exectype)

    def get_margin(self, price: float) -> float:
        """Cash locked per unit: the price for spot, ``price / leverage`` for a perpetual."""
        return price * self.p.mult / (1.0 if self._stocklike else self.p.leverage)

    def get_leverage(self) -> float:
        # backtrader divides by this on top of the margin; the margin above already holds the leverage
        return 1.0

    def getsize(self, price: float, cash: float) -> float:
        """The fractional size whose notional is ``cash`` at ``price`` (leverage changes the margin
        locked, not the exposure: ``order_target_percent(0.5)`` is half the portfolio's value)."""
        return cash / (price * self.p.mult)

    def getvalue(self, position: bt.Position, price: float) -> float:
        if self._stocklike:
            return super().getvalue(position, price)
        # cash already holds every gain and loss up to the last close: the value is the locked margin
        return abs(position.size) * self.get_margin(position.price)
