"""``RiskManaged``: the risk overlay as a strategy mixin. A strategy says which way it wants to be (its core);
the mixin holds ``direction × target × scale`` of the portfolio, where ``scale`` is a
:class:`~btdensity.strategies.overlay.RiskScale` line (or 1 without one), and trades it through a
:class:`~btdensity.strategies.rebalance.RebalanceRule`: a rebalance band sized by the round-trip cost, a minimum
holding time, and entries only where the strategy's expected gain (when it has an estimate) beats the cost.

>>> import backtrader as bt
>>> class TrendWithOverlay(RiskManaged, bt.Strategy):     # your own strategy, managed
...     def __init__(self):
...         super().__init__()
...         self.sma = bt.ind.SMA(self.data.close, period=168)
...         self.risk = RiskScale(self.data)               # volatility targeting on trailing volatility
...     def core(self):
...         return 1 if self.data.close[0] > self.sma[0] else 0
"""
from __future__ import annotations

import math
from typing import Any

import backtrader as bt
import numpy as np

from .overlay import RiskScale
from .rebalance import Holding, RebalanceRule, cost_band, round_trip_cost

__all__ = ["HeldDirection", "RiskManaged", "RiskScale", "forecast_edge", "trend_gap"]


def forecast_edge(mean: float, horizon: int, hold: int) -> float:
    """The expected log return over ``hold`` bars (at least one ``horizon``) of a forecast ``mean`` over ``horizon``
    bars: ``mean × max(hold, horizon) / horizon``. The edge a cost-aware entry compares with the round-trip cost.

    >>> forecast_edge(0.001, 1, 24), forecast_edge(0.02, 24, 12)
    (0.024, 0.02)
    """
    return mean * max(hold, horizon) / max(horizon, 1)


def trend_gap(data: Any, fast: int, slow: int) -> float:
    """The mean close of the last ``fast`` bars minus that of the last ``slow`` bars (NaN before ``slow`` bars),
    read from the data's buffer: a trend core that adds no indicator lines (and no plot panel)."""
    closes = np.asarray(data.close.get(size=slow), dtype=np.float64)
    if closes.size < slow:
        return math.nan
    return float(closes[-fast:].mean() - closes.mean())


class HeldDirection:
    """A direction (+1, 0, -1) that changes at most once every ``hold`` bars: the turnover brake of a signal core.

    >>> held = HeldDirection(hold=3)
    >>> [held.update(bar, want) for bar, want in enumerate([1, 0, -1, 0, 0, 1])]
    [1, 1, 1, 0, 0, 0]
    """

    def __init__(self, hold: int) -> None:
        if isinstance(hold, bool) or not isinstance(hold, int) or hold < 0:
            raise ValueError(f"a signal hold is a number of bars >= 0; got {hold!r}")
        self.hold = hold
        self.direction = 0
        self.since = -(10 ** 9)

    def update(self, bar: int, want: int) -> int:
        """Take ``want`` unless the direction changed less than ``hold`` bars before ``bar``; the direction."""
        if want != self.direction and bar - self.since >= self.hold:
            self.direction, self.since = int(want), bar
        return self.direction


class RiskManaged(bt.Strategy):
    """Mixin of a strategy whose position is ``core() × target × scale`` of the portfolio's value.

    Subclasses implement :meth:`core` (+1 long, -1 short, 0 flat; NaN: no decision yet) and may set ``self.risk``
    (a :class:`RiskScale`, or anything with a ``scale`` line; ``None``: scale 1) and override :meth:`edge` (the
    expected log return of a long position over the holding time; ``None``: entries are not cost-checked).

    ``band`` (``None``: :func:`~btdensity.strategies.rebalance.cost_band` of the broker's round-trip cost),
    ``min_hold`` and ``edge_margin`` make the :class:`RebalanceRule`. Orders are ``order_target_percent`` market
    orders (filled at the next open); nothing new is sent while one is working, and a target whose order the
    broker refused (margin, rejected, cancelled) is asked again on the next bar.
    """

    params = (("target", 0.95), ("band", None), ("min_hold", 24), ("edge_margin", 0.5))

    def __init__(self) -> None:
        super().__init__()
        if self.p.band is not None and not self.p.band >= 0:
            raise ValueError(f"{type(self).__name__}(band={self.p.band}): a fraction of portfolio value >= 0")
        self.risk: Any = None
        self.holding = Holding()
        self._rule: RebalanceRule | None = None
        self._managed_orders: list[tuple[bt.Order, Holding]] = []

    # ------------------------------------------------------------------ what subclasses say
    def core(self) -> float:
        """The direction wanted now: +1, 0 or -1 (NaN: not known yet, nothing is traded)."""
        raise NotImplementedError

    def edge(self) -> float | None:
        """The expected log return of a long position over the holding time; ``None``: no estimate."""
        return None

    def scale(self) -> float:
        """The overlay's scale now (1 without ``self.risk``)."""
        return 1.0 if self.risk is None else float(self.risk.scale[0])

    # ------------------------------------------------------------------ trading
    @property
    def rule(self) -> RebalanceRule:
        """The rebalance rule, its band sized by the broker's round-trip cost unless ``band`` is given."""
        if self._rule is None:
            band = self.p.band if self.p.band is not None else cost_band(self.cost())
            self._rule = RebalanceRule(band=float(band), min_hold=int(self.p.min_hold),
                                       margin=float(self.p.edge_margin))
        return self._rule

    def cost(self) -> float:
        """The round-trip cost of a position (fees plus slippage), from the broker's commission scheme."""
        return round_trip_cost(self.broker, self.data)

    def next(self) -> None:
        self.rebalance()

    def rebalance(self) -> None:
        """Trade towards ``core() × target × scale()`` if the rule says so."""
        if any(order.alive() for order, _ in self._managed_orders):
            return
        direction = self.core()
        if not math.isfinite(direction):
            return
        direction = int((direction > 0) - (direction < 0))
        weight = direction * self.p.target * self.scale() if direction else 0.0
        edge = self.edge() if direction else None
        decision = self.rule.decide(len(self) - 1, direction, weight, self.holding, self.cost(), edge)
        if decision is None:
            return
        before = self.holding
        self.holding = Holding(decision[0], decision[1], len(self) - 1)
        order = self.order_target_percent(target=decision[1])
        if order is not None:
            self._managed_orders.append((order, before))

    def notify_order(self, order: bt.Order) -> None:
        super().notify_order(order)
        for i, (placed, before) in enumerate(self._managed_orders):
            if placed is order and not order.alive():
                del self._managed_orders[i]
                if order.status in (order.Margin, order.Rejected, order.Canceled):
                    self.holding = before      # not traded: decide again on the next bar
                break
