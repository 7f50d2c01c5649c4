"""Commission schemes. Crypto trades in fractions of a coin, so sizes are never rounded to whole units."""
from __future__ import annotations

import feeds.btcompat  # noqa: F401

import backtrader as bt

__all__ = ["FractionalCommission"]


class FractionalCommission(bt.CommInfoBase):
    """A percentage fee on traded value (``commission=0.00055`` is 0.055 %), with fractional sizes.

    backtrader's stock-like schemes round ``getsize`` down to whole units, which buys nothing of a
    20,000-dollar coin with 10,000 dollars; here ``order_target_percent`` gets the exact fraction.
    """

    params = (
        ("commission", 0.0),
        ("stocklike", True),
        ("commtype", bt.CommInfoBase.COMM_PERC),
        ("percabs", True),
    )

    def getsize(self, price: float, cash: float) -> float:
        return self.p.leverage * (cash / price)
