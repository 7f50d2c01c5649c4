"""Baseline strategies: buy-and-hold and a moving-average crossover, unmanaged by default (the baselines the
model strategies are measured against) or with the risk overlay (``overlay=True``: volatility targeting on the
trailing volatility, see :class:`~btdensity.strategies.overlay.RiskScale`)."""
from __future__ import annotations

import backtrader as bt

from .managed import RiskManaged
from .overlay import RiskScale
from .registry import register_strategy

__all__ = ["BuyAndHold", "SmaCross"]


class _Baseline(RiskManaged):
    """The overlay switch of the baselines: ``overlay=True`` scales the position by a :class:`RiskScale` of the
    trailing volatility (``vol_halflife``, ``reference_bars``: see there)."""

    params = (("overlay", False), ("vol_halflife", 168), ("reference_bars", 2000))

    def __init__(self) -> None:
        super().__init__()
        if self.p.overlay:
            self.risk = RiskScale(self.data, vol_halflife=self.p.vol_halflife, reference_bars=self.p.reference_bars)


@register_strategy("buy_and_hold")
class BuyAndHold(_Baseline):
    """Invest ``target`` of the portfolio on the first bar (filled at the next open) and hold."""

    def core(self) -> float:
        return 1.0


@register_strategy("sma_cross")
class SmaCross(_Baseline):
    """Long (``target`` of the portfolio) from the bar the fast SMA crosses above the slow one; flat, or short
    when ``short=True``, from the bar it crosses below. Orders fill at the next bar's open.

    The default windows, a day and a week of hourly bars, cross about a tenth as often as 20 / 50 bars on hourly
    crypto: at 0.1 % fees a cross every day or two costs more than the trend it catches."""

    params = (("fast", 24), ("slow", 168), ("short", False))

    def __init__(self) -> None:
        super().__init__()
        if not 0 < self.p.fast < self.p.slow:
            raise ValueError(f"SmaCross needs 0 < fast < slow; got fast={self.p.fast}, slow={self.p.slow}")
        fast = bt.ind.SMA(self.data.close, period=self.p.fast)
        slow = bt.ind.SMA(self.data.close, period=self.p.slow)
        self.cross = bt.ind.CrossOver(fast, slow, plot=False)
        self._direction = 0

    def core(self) -> float:
        if self.cross[0] > 0:
            self._direction = 1
        elif self.cross[0] < 0:
            self._direction = -1 if self.p.short else 0
        return self._direction
