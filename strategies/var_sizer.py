"""``VaRBudgetSizer``: size a position so that its value-at-risk (or expected shortfall) is a set share of equity.

A ``TailRisk`` indicator gives, for the next ``horizon`` bars' log return, the ``var`` quantile and the ``cvar``
shortfall of a long, and ``var_short`` / ``cvar_short`` of a short. A position worth ``f`` times the portfolio's
value loses, at that quantile, ``f · (1 - exp(var))`` of the portfolio (long) or ``f · (exp(var_short) - 1)``
(short). The sizer sets that loss to ``budget``:

    f = budget / (1 - exp(var))           (a buy; ``cvar`` with ``measure="cvar"``)
    f = budget / (exp(var_short) - 1)     (a sell; ``cvar_short``)

capped at ``max_leverage``; a tail that loses nothing at that level (``var >= 0`` for a long) sizes to the cap.
Then, as every sizer of :mod:`btdensity.strategies.sizers`, the size never exceeds the cash (spot) or margin
(perpetuals) available after the taker fee at the price the fill may reach (the close, the broker's slippage and
``headroom``), is in fractions of a unit unless ``whole_units=True``, closes an opposite position, and is 0 (no
order) while the indicator has no value.
"""
from __future__ import annotations

import math

from .sizers import _FractionSizer

__all__ = ["VaRBudgetSizer"]

_MEASURES = ("var", "cvar")


class VaRBudgetSizer(_FractionSizer):
    """Position value = ``budget`` of the portfolio's value over the loss fraction at the tail risk's quantile.

    ``tail_risk``: a ``TailRisk`` indicator (lines ``var``, ``cvar``, ``var_short``, ``cvar_short``), or the name
    of the strategy's attribute holding it (default ``"tail_risk"``); ``budget``: the loss allowed at that quantile
    as a fraction of value (0.01 = 1 %); ``measure``: ``"var"`` or ``"cvar"``; ``max_leverage``: the largest
    position value as a multiple of the portfolio's value.
    """

    params = (("tail_risk", "tail_risk"), ("budget", 0.01), ("measure", "cvar"), ("max_leverage", 1.0))

    def __init__(self) -> None:
        super().__init__()
        if not 0.0 < self.p.budget < 1.0:
            raise ValueError(f"VaRBudgetSizer(budget={self.p.budget}): a fraction of value in (0, 1), e.g. 0.01")
        if self.p.measure not in _MEASURES:
            raise ValueError(f"VaRBudgetSizer(measure={self.p.measure!r}): choose one of {_MEASURES}")
        if not self.p.max_leverage > 0:
            raise ValueError(f"VaRBudgetSizer(max_leverage={self.p.max_leverage}): must be positive")

    def loss_fraction(self, isbuy: bool) -> float:
        """The share of a position's value lost at the tail quantile (NaN while the indicator has no value)."""
        ind = self._resolve(self.p.tail_risk, "tail_risk")
        name = self.p.measure if isbuy else f"{self.p.measure}_short"
        if not hasattr(ind, name):
            raise ValueError(f"VaRBudgetSizer: {type(ind).__name__} has no {name!r} line; pass a TailRisk indicator")
        r = float(getattr(ind, name)[0])
        if not math.isfinite(r):
            return math.nan
        return -math.expm1(r) if isbuy else math.expm1(r)

    def fraction(self, isbuy: bool) -> float:
        loss = self.loss_fraction(isbuy)
        if math.isnan(loss):
            return math.nan
        return self.p.max_leverage if loss <= 0 else min(self.p.budget / loss, self.p.max_leverage)
