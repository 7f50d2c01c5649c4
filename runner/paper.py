"""``paper_trading(cls)``: a strategy that warms up on backfilled bars and trades from the first live bar."""
from __future__ import annotations


import backtrader as bt

__all__ = ["paper_trading"]


def paper_trading(cls: type[bt.Strategy]) -> type[bt.Strategy]:
    """A subclass of ``cls`` whose ``next()`` runs only once its first data feed reports ``LIVE``.

    A live feed delivers its backfill first (status ``DELAYED``): the indicators see those bars and warm up,
    but the strategy places no order on them, so paper trading starts flat at the first live bar and its
    profit is made on bars that were live when it traded them. Strategies whose ``next()`` keeps state
    (hysteresis, cool-downs) start that state at the first live bar.
    """

    class PaperTrading(cls):
        _live = False

        def notify_data(self, data, status, *args, **kwargs) -> None:
            if data is self.datas[0] and status == data.LIVE:
                self._live = True   # for good: a dropped connection (CONNBROKEN) does not end paper trading
            super().notify_data(data, status, *args, **kwargs)

        def next(self) -> None:
            if self._live:
                super().next()

    PaperTrading.__name__ = PaperTrading.__qualname__ = f"PaperTrading{cls.__name__}"
    return PaperTrading
