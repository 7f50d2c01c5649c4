"""Baseline strategies: buy-and-hold and a moving-average crossover."""
from __future__ import annotations


import backtrader as bt

from .registry import register_strategy

__all__ = ["BuyAndHold", "SmaCross"]


@register_strategy("buy_and_hold")
class BuyAndHold(bt.Strategy):
    """Invest ``target`` of the portfolio on the first bar (filled at the next open) and hold."""

    params = (("target", 0.95),)

    def next(self) -> None:
        if not self.position and not self._has_open_order():
            self.order_target_percent(target=self.p.target)

    def _has_open_order(self) -> bool:
        return any(o.alive() for o in self.broker.get_orders_open())


@register_strategy("sma_cross")
class SmaCross(bt.Strategy):
    """Long (``target`` of the portfolio) while the fast SMA is above the slow one; flat, or short
    when ``short=True``, while it is below. Orders fill at the next bar's open."""

    params = (("fast", 20), ("slow", 50), ("target", 0.95), ("short", False))

    def __init__(self) -> None:
        if not 0 < self.p.fast < self.p.slow:
            raise ValueError(f"SmaCross needs 0 < fast < slow; got fast={self.p.fast}, slow={self.p.slow}")
        fast = bt.ind.SMA(self.data.close, period=self.p.fast)
        slow = bt.ind.SMA(self.data.close, period=self.p.slow)
        self.cross = bt.ind.CrossOver(fast, slow, plot=False)

    def next(self) -> None:
        if self.cross[0] > 0:
            self.order_target_percent(target=self.p.target)
        elif self.cross[0] < 0:
            self.order_target_percent(target=-self.p.target if self.p.short else 0.0)
