"""``ModelStrategy``: what the model-driven strategies share — building model indicators with one set of
walk-forward settings, order bookkeeping, and entries with optional stop-loss / take-profit brackets."""
from __future__ import annotations

import math
from typing import Any

import backtrader as bt

from btdensity.indicators import BNNUncertainty, Regime, WalkForwardSettings

__all__ = ["ModelStrategy", "managed_model_checks"]


class ModelStrategy(bt.Strategy):
    """Base of the strategies that read model indicators.

    ``walk_forward`` (a :class:`~btdensity.indicators.WalkForwardSettings`, a mapping of its fields, or ``None``
    for the defaults) trains every model indicator of the strategy. ``target`` is the fraction of portfolio value a full position holds;
    ``stop_loss`` / ``take_profit`` (fractions of the entry bar's close) turn entries into brackets.
    ``replace`` swaps model indicators for others with the same lines (see :meth:`model`).
    ``diagnostics=True`` also attaches the BNN and regime indicators the report's diagnostics page shows
    when the strategy does not use them itself.
    """

    params = (
        ("target", 0.95),
        ("long_short", False),
        ("stop_loss", None),
        ("take_profit", None),
        ("walk_forward", None),
        ("diagnostics", False),
        ("use_sizer", False),
        ("replace", None),
    )

    def __init__(self) -> None:
        for name in ("stop_loss", "take_profit"):
            value = getattr(self.p, name)
            if value is not None and not 0 < value < 1:
                raise ValueError(f"{type(self).__name__}({name}={value}): a fraction of price in (0, 1)")
        if not 0 < self.p.target <= 10:
            raise ValueError(f"{type(self).__name__}(target={self.p.target}): a fraction of portfolio value")
        self._working_orders: list[bt.Order] = []
        self.walk_forward = WalkForwardSettings.from_mapping(self.p.walk_forward)

    def model(self, cls: type, *, data: Any = None, **kwargs: Any) -> Any:
        """A model indicator on ``data`` (default: the strategy's first feed) with the strategy's common walk-forward
        settings.

        ``replace`` swaps it, by class name, for another indicator with the same lines: an indicator class name
        of ``btdensity.indicators`` (a baseline: ``{"LogDensity": "MixtureDensity"}``; the parameters it does not
        have are dropped), or ``(indicator class, values)`` whose lines replay ``values`` (ablations)."""
        data = self.data if data is None else data
        swap = (self.p.replace or {}).get(cls.__name__)
        if isinstance(swap, tuple):
            klass, values = swap
            return klass(data, values=values)
        if swap is not None:
            import btdensity.indicators as indicators

            cls = getattr(indicators, swap)
            kwargs = {k: v for k, v in kwargs.items() if k in cls.params._getkeys()}
        params = self.walk_forward.indicator_params()
        params["fit_kwargs"].update(kwargs.pop("fit_kwargs", None) or {})
        return cls(data, **{**params, **kwargs})

    def attach_diagnostics(self) -> None:
        """Add the BNN and regime indicators for the report, unless the strategy has them already."""
        if not self.p.diagnostics:
            return
        if getattr(self, "uncertainty", None) is None:
            self.uncertainty = self.model(BNNUncertainty)
        if getattr(self, "regime", None) is None:
            self.regime = self.model(Regime)

    # ------------------------------------------------------------------ orders
    def notify_order(self, order: bt.Order) -> None:
        if not order.alive() and order in self._working_orders:
            self._working_orders.remove(order)

    def pending(self) -> bool:
        """An entry or exit order is still working (bracket children do not count)."""
        return any(o.alive() and o.parent is None for o in self._working_orders)

    def enter(self, direction: int, fraction: float = 1.0) -> None:
        """Open a position of ``direction`` (+1 long, −1 short) worth ``fraction × target`` of the portfolio,
        filled at the next open, inside a bracket when stop-loss / take-profit are set. With
        ``use_sizer=True`` the strategy's sizer sizes it instead."""
        price = self.data.close[0]
        if self.p.use_sizer:
            size = None
        else:
            size = fraction * self.p.target * self.broker.getvalue() / price
            if not size > 0 or not math.isfinite(size):
                return
        if self.p.stop_loss is None and self.p.take_profit is None:
            order = self.buy(size=size) if direction > 0 else self.sell(size=size)
            if order is not None:
                self._working_orders.append(order)
            return
        sl, tp = self.p.stop_loss, self.p.take_profit
        bracket = self.buy_bracket if direction > 0 else self.sell_bracket
        orders = bracket(
            size=size, exectype=bt.Order.Market,
            stopprice=None if sl is None else price * (1 - direction * sl),
            stopexec=None if sl is None else bt.Order.Stop,
            limitprice=None if tp is None else price * (1 + direction * tp),
            limitexec=None if tp is None else bt.Order.Limit,
        )
        self._working_orders.extend(o for o in orders if o is not None)

    def exit(self, keep: float = 0.0) -> None:
        """Close the position (cancelling its brackets), or cut it to ``keep`` of its size."""
        for order in list(self._working_orders):
            if order.alive() and order.parent is not None:
                self.cancel(order)
        size = self.position.size
        if keep > 0:
            cut = size * (1.0 - keep)
            order = self.sell(size=cut) if size > 0 else self.buy(size=-cut)
        else:
            order = self.close()
        if order is not None:
            self._working_orders.append(order)


def managed_model_checks(strategy: ModelStrategy) -> None:
    """What a managed model strategy refuses: stop-loss / take-profit brackets (the overlay resizes positions,
    which brackets of a fixed size would not follow) and sizers (the overlay sizes)."""
    name = type(strategy).__name__
    if strategy.p.stop_loss is not None or strategy.p.take_profit is not None:
        raise ValueError(f"{name}: stop_loss / take_profit brackets do not combine with the risk overlay's "
                         "resizing; leave them unset")
    if strategy.p.use_sizer:
        raise ValueError(f"{name}(use_sizer=True): the risk overlay sizes this strategy's positions")
