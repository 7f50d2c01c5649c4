"""``BybitBroker``: backtrader's broker with Bybit's maker/taker fees, perpetual funding and fractional
volume-limited fills.

Funding rule (documented, tested): a settlement at time ``T`` is charged at the first bar whose
timestamp (its start) is at or after ``T`` — inside a gap, the first bar after the gap — on the
position held into that bar, i.e. before the bar's own fills, priced at that bar's open (the mark
price stand-in): ``cash -= size * open * rate``. Positive rates make longs pay and shorts receive.
Only perpetuals (:class:`BybitCommission` with ``market="linear"``) pay funding, never spot.
"""
from __future__ import annotations

from typing import Any


import backtrader as bt
import pandas as pd

from .commission import BybitCommission
from .funding import FundingRates

__all__ = ["BybitBroker", "FractionalBarPerc"]


class FractionalBarPerc(bt.fillers.FixedBarPerc):
    """Fill at most ``perc`` percent of each bar's volume (the rest of the order waits for the next
    bars' opens). backtrader's ``FixedBarPerc`` floors that amount to whole units, which never fills
    a 2.5-coin bar at 10 %; this one keeps fractions."""

    def __init__(self) -> None:
        if not 0.0 < self.p.perc <= 100.0:
            raise ValueError(f"FractionalBarPerc(perc={self.p.perc}): perc is a percentage in (0, 100]")

    def __call__(self, order: bt.Order, price: float, ago: int) -> float:
        return min(order.data.volume[ago] * self.p.perc / 100.0, abs(order.executed.remsize))


class BybitBroker(bt.brokers.BackBroker):
    """A ``BackBroker`` that settles perpetual funding and charges maker or taker fees per order type.

    Params (beyond ``BackBroker``'s): ``funding`` — a :class:`FundingRates` or ``None`` (no funding).
    ``shortcash`` defaults to ``False``: a short locks cash as collateral (margin for perpetuals,
    the notional for spot) instead of crediting its proceeds, so the cash check applies to shorts too.

    ``getvalue(datas=[data])`` is the position's signed notional (size × close) for every market, so
    ``order_target_value`` / ``order_target_percent`` target exposure; ``getvalue()`` is the portfolio.

    After a run, ``fees_paid`` is the total commission and ``funding_paid`` the net funding paid
    (negative when received), both in cash units.
    """

    params = (("funding", None), ("shortcash", False))

    def init(self) -> None:
        super().init()
        if self.p.funding is not None and not isinstance(self.p.funding, FundingRates):
            raise ValueError("BybitBroker(funding=...) takes a FundingRates or None; "
                             f"got {type(self.p.funding).__name__}")
        self.fees_paid = 0.0
        self.funding_paid = 0.0
        self._funded_until: dict[Any, int] = {}  # per data: last bar time (ns) whose settlements are charged

    def _get_value(self, datas: Any = None, lever: bool = False) -> float:
        if datas is not None and len(datas) == 1:
            data = datas[0]
            return self.positions[data].size * data.close[0] * self.getcommissioninfo(data).p.mult
        return super()._get_value(datas=datas, lever=lever)

    def next(self) -> None:
        if self.p.funding is not None:
            self._settle_funding()
        super().next()

    def _settle_funding(self) -> None:
        for data, pos in list(self.positions.items()):
            if not len(data):
                continue
            now = _bar_ns(data, 0)
            last = self._funded_until.get(data)
            if last is None:  # first time this data has a position entry: the previous bar closes the window
                last = _bar_ns(data, -1) if len(data) > 1 else now
            self._funded_until[data] = now
            comminfo = self.getcommissioninfo(data)
            if now <= last or not pos.size or not (isinstance(comminfo, BybitCommission) and comminfo.perpetual):
                continue
            _, rates = self.p.funding.between(last, now)
            if len(rates):
                payment = float(pos.size * data.open[0] * comminfo.p.mult * rates.sum())
                self.cash -= payment
                self.funding_paid += payment

    def _execute(self, order: bt.Order, ago: int | None = None, price: float | None = None,
                 cash: float | None = None, position: bt.Position | None = None, dtcoc: Any = None) -> Any:
        comminfo = self.getcommissioninfo(order.data)
        tagged = isinstance(comminfo, BybitCommission)
        if tagged:
            comminfo.exectype = order.exectype
        before = order.executed.comm
        try:
            result = super()._execute(order, ago=ago, price=price, cash=cash, position=position, dtcoc=dtcoc)
        finally:
            if tagged:
                comminfo.exectype = None
        if ago is not None:  # a real fill, not the cash check's pseudo-execution
            self.fees_paid += order.executed.comm - before
        return result


def _bar_ns(data: bt.feeds.DataBase, ago: int) -> int:
    """A bar's timestamp as int64 ns UTC (rounded to the millisecond against float round-off)."""
    return int(pd.Timestamp(bt.num2date(data.datetime[ago]), tz="UTC").round("ms").value)
