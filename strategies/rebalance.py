"""When a managed position changes: the rebalance band, the minimum holding time and cost-aware entries, as plain
Python (no backtrader), and the round-trip cost read off a broker.

A managed strategy (:class:`~btdensity.strategies.managed.RiskManaged`) holds a target weight (a signed fraction of
portfolio value) = the core's direction × ``target`` × the risk overlay's scale. :meth:`RebalanceRule.decide` says
whether that target is traded now:

- a change of the core's direction (enter, exit, flip) is traded at once: the core decides its own turnover;
  entering (or flipping into) a direction needs an expected gain above the round-trip cost when the strategy
  has an edge estimate (cost-aware entries);
- within a direction, the weight changes only when the target has moved by more than ``band`` from the weight
  last traded, at least ``min_hold`` bars after the last trade; an increase needs the edge too, a decrease never
  does (it lowers risk).

With a constant scale the target never moves within a direction, so a managed strategy makes exactly the trades
of its unmanaged core.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["Holding", "RebalanceRule", "cost_band", "round_trip_cost"]


def round_trip_cost(broker: Any, data: Any) -> float:
    """The cost of opening and later closing a position, as a fraction of its value: twice the fee of one market
    order (the commission scheme's charge for one unit at the bar's close, over that close) plus twice the broker's
    slippage (``slip_perc``, and ``slip_fixed`` over the close).

    With :class:`~btdensity.strategies.BybitCommission` the fee is the taker fee: the managed strategies trade with
    market orders.
    """
    price = float(data.close[0])
    if not price > 0 or not math.isfinite(price):
        return math.nan
    comminfo = broker.getcommissioninfo(data)
    fee = float(comminfo.getcommission(1.0, price)) / price
    p = broker.p
    slippage = float(getattr(p, "slip_perc", 0.0) or 0.0) + float(getattr(p, "slip_fixed", 0.0) or 0.0) / price
    return 2.0 * (fee + slippage)


def cost_band(cost: float) -> float:
    """The default rebalance band for a round-trip ``cost``: its cube root (0.126 of portfolio value at 0.1 % fees,
    0.103 at 0.055 %, 0 without costs).

    Under proportional costs the optimal no-trade region around a target weight has a half-width that grows as the
    cube root of the cost (Davis and Norman, 1990; Rogers, 2004): small costs already call for a wide band.

    >>> round(cost_band(0.002), 3), cost_band(0.0)
    (0.126, 0.0)
    """
    return max(cost, 0.0) ** (1.0 / 3.0)


@dataclass
class Holding:
    """What a managed strategy holds: the core ``direction`` (+1, 0, -1) and target ``weight`` it last traded, and
    the bar of that trade (``since``)."""

    direction: int = 0
    weight: float = 0.0
    since: int = -(10 ** 9)


@dataclass(frozen=True)
class RebalanceRule:
    """The band, the minimum holding time and the edge margin of a managed position (see the module docstring).

    ``band``: the smallest move of the target weight (fraction of portfolio value) that is traded; ``min_hold``:
    bars after a trade before the weight may be resized; ``margin``: an entry or an increase needs
    ``edge > cost × (1 + margin)``.

    >>> rule = RebalanceRule(band=0.1, min_hold=2)
    >>> held = Holding(direction=1, weight=0.9, since=10)
    >>> [rule.decide(bar, 1, weight, held, cost=0.002) for bar, weight in ((11, 0.5), (12, 0.85), (12, 0.5))]
    [None, None, (1, 0.5)]
    >>> rule.decide(11, 0, 0.0, held, 0.002), rule.decide(0, 1, 0.9, Holding(), 0.002, edge=0.001)
    ((0, 0.0), None)
    """

    band: float = 0.0
    min_hold: int = 0
    margin: float = 0.5

    def __post_init__(self) -> None:
        if not (math.isfinite(self.band) and self.band >= 0):
            raise ValueError(f"band={self.band}: a fraction of portfolio value >= 0")
        if isinstance(self.min_hold, bool) or not isinstance(self.min_hold, int) or self.min_hold < 0:
            raise ValueError(f"min_hold={self.min_hold}: a number of bars >= 0")
        if not (math.isfinite(self.margin) and self.margin >= 0):
            raise ValueError(f"margin={self.margin}: a fraction of the cost >= 0")

    def worth_it(self, direction: int, edge: float | None, cost: float) -> bool:
        """Whether an expected gain ``edge`` (log return of a long position; ``None``: no estimate) pays for
        taking ``direction``: ``direction × edge > cost × (1 + margin)``. A NaN edge or cost never does."""
        if edge is None:
            return True
        return direction * edge > cost * (1.0 + self.margin)

    def decide(self, bar: int, direction: int, weight: float, held: Holding, cost: float,
               edge: float | None = None) -> tuple[int, float] | None:
        """The direction and weight to trade to at ``bar``, or ``None`` to keep what is held.

        ``direction`` and ``weight`` are what the core and the overlay want now (``weight`` has the direction's
        sign, or is 0); ``held`` what was last traded; ``cost`` the round-trip cost; ``edge`` the expected log
        return of a long position over the holding time (``None``: entries are not cost-checked).
        """
        if not math.isfinite(weight):
            return None
        if direction != held.direction:
            if direction != 0 and not self.worth_it(direction, edge, cost):
                return (0, 0.0) if held.direction != 0 else None  # the core left the old direction: leave it
            return direction, weight
        if direction == 0 or bar - held.since < self.min_hold or abs(weight - held.weight) <= self.band:
            return None
        if abs(weight) > abs(held.weight) and not self.worth_it(direction, edge, cost):
            return None
        return direction, weight
