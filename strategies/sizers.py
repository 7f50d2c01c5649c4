"""Sizers that scale positions by what the models say: ``EnergyScaledSizer`` (smaller when the market
looks unlike anything seen), ``UncertaintySizer`` (volatility targeting on the BNN's predictive std,
with an optional capped fractional Kelly) and ``RiskScaleSizer`` (the risk overlay's scale, a ``RiskScale`` line,
for entries; :class:`~btdensity.strategies.managed.RiskManaged` also resizes held positions).

Both size a new position as a fraction of the portfolio's value at the bar's close (the order fills
at the next open), never more than the cash (spot) or margin (perpetuals) available after the taker fee
at the price the fill may reach: the close plus the broker's slippage plus ``headroom`` (default 0.5 %) for
the move to the next open. An order sized at the close alone is rejected by the broker (``Margin``)
whenever the fill comes out a hair above it, so a fully invested sizer would never trade; a next open more
than ``headroom`` above the close still gets such an order rejected. Sizes are in fractions of a unit
unless ``whole_units=True`` (equities: rounded down).
An order against an open position closes it (its size is the position's). A NaN indicator value
(the model's warm-up) sizes 0: no order.

The indicator is a parameter: the indicator object (or a line), or the name of the strategy's
attribute holding it, resolved when sizing (default ``"energy"`` / ``"uncertainty"``), so that
``cerebro.addsizer(EnergyScaledSizer)`` works with a strategy that sets ``self.energy = Energy(...)`` (and
``RiskScaleSizer`` with one that sets ``self.risk = RiskScale(...)``).
"""
from __future__ import annotations

import math
from typing import Any


import backtrader as bt

__all__ = ["EnergyScaledSizer", "RiskScaleSizer", "UncertaintySizer"]


class _FractionSizer(bt.Sizer):
    """Shared mechanics: fraction of value → size, capped by cash or margin, whole units on request."""

    params = (("whole_units", False), ("headroom", 0.005))

    def __init__(self) -> None:
        if not 0.0 <= self.p.headroom < 0.5:
            raise ValueError(f"{type(self).__name__}(headroom={self.p.headroom}): a fraction of price in [0, 0.5)")

    def fraction(self, isbuy: bool) -> float:
        """The fraction of portfolio value to open now (NaN or <= 0: nothing)."""
        raise NotImplementedError

    def _resolve(self, spec: Any, what: str) -> Any:
        if not isinstance(spec, str):
            return spec
        obj = getattr(self.strategy, spec, None)
        if obj is None:
            raise ValueError(f"{type(self).__name__}: the strategy has no attribute {spec!r} holding the "
                             f"{what}; set self.{spec} in its __init__ or pass {what}=<indicator>")
        return obj

    def _getsizing(self, comminfo: bt.CommInfoBase, cash: float, data: bt.feeds.DataBase, isbuy: bool) -> float:
        position = self.broker.getposition(data)
        if position.size and (position.size > 0) != isbuy:
            return abs(position.size)
        frac = self.fraction(isbuy)
        if not frac > 0.0:  # also NaN
            return 0
        price = data.close[0]
        size = frac * self.broker.getvalue() / (price * comminfo.p.mult)
        fill = price * (1.0 + self.p.headroom + float(getattr(self.broker.p, "slip_perc", 0.0) or 0.0))
        per_unit = comminfo.getoperationcost(1.0, fill) / comminfo.get_leverage() + comminfo.getcommission(1.0, fill)
        size = min(size, max(cash, 0.0) / per_unit)
        return math.floor(size) if self.p.whole_units else size


class EnergyScaledSizer(_FractionSizer):
    """A fraction of the portfolio's value that shrinks as the energy z-score rises.

    - ``form="excess"`` (the default): ``size = base × clip(1 − max(zscore, 0) / threshold, 0, 1)``. At z ≤ 0 the
      full ``base`` is used; it shrinks linearly to nothing at ``z = threshold``.
    - ``form="linear"``: ``size = base × (1 − e)``, ``e = clip((zscore − z_min) / (threshold − z_min), 0, 1)`` the
      normalised energy: the z-score mapped linearly from ``[z_min, threshold]`` onto ``[0, 1]``. The full ``base``
      only in a calm state (z ≤ ``z_min``, default −2), ``base × 0.6`` in a typical one (z = 0, at the defaults),
      nothing from ``threshold`` on. With ``z_min=0`` it is the ``"excess"`` form.

    ``energy``: an ``Energy`` indicator (its ``zscore`` line is read), any line of z-scores, or the
    name of the strategy's attribute holding one. A NaN z-score sizes 0 (no order).
    """

    params = (("energy", "energy"), ("base", 0.95), ("threshold", 3.0), ("form", "excess"), ("z_min", -2.0))

    def __init__(self) -> None:
        super().__init__()
        if not self.p.base > 0:
            raise ValueError(f"EnergyScaledSizer(base={self.p.base}): base must be a positive fraction of value")
        if not self.p.threshold > 0:
            raise ValueError(f"EnergyScaledSizer(threshold={self.p.threshold}): threshold must be positive")
        if self.p.form not in ("excess", "linear"):
            raise ValueError(f"EnergyScaledSizer(form={self.p.form!r}): choose 'excess' or 'linear'")
        if not self.p.z_min < self.p.threshold:
            raise ValueError(f"EnergyScaledSizer(z_min={self.p.z_min}): must be below threshold ({self.p.threshold})")

    def fraction(self, isbuy: bool) -> float:
        obj = self._resolve(self.p.energy, "energy")
        z = float(getattr(obj, "zscore", obj)[0])
        if math.isnan(z):
            return math.nan
        if self.p.form == "linear":
            energy = min(max((z - self.p.z_min) / (self.p.threshold - self.p.z_min), 0.0), 1.0)
            return self.p.base * (1.0 - energy)
        return self.p.base * min(max(1.0 - max(z, 0.0) / self.p.threshold, 0.0), 1.0)


class UncertaintySizer(_FractionSizer):
    """Volatility targeting on a ``BNNUncertainty``'s predictive std, optionally capped by fractional Kelly.

    ``σ = sqrt(epistemic² + aleatoric²)`` is the std of the log return over ``horizon`` bars
    (default: the indicator's own ``horizon`` parameter, else 1); per bar it is ``σ / sqrt(horizon)``.
    The fraction of value is ``min(target_vol / σ_bar, max_leverage)``; with ``kelly_fraction`` it is
    further capped by ``kelly_fraction × d × mean / σ²`` (``d`` = +1 for a buy, −1 for a sell; the
    ratio is horizon-free), so a forecast against the order's direction sizes 0; the cap needs the network's mean,
    ``BNNUncertainty(zero_mean=False)`` (by default the forecast is centred at zero: a ValueError says so).
    """

    params = (("uncertainty", "uncertainty"), ("target_vol", 0.01), ("max_leverage", 1.0),
              ("kelly_fraction", None), ("horizon", None))

    def __init__(self) -> None:
        super().__init__()
        if not self.p.target_vol > 0:
            raise ValueError(f"UncertaintySizer(target_vol={self.p.target_vol}): must be a positive std per bar")
        if not self.p.max_leverage > 0:
            raise ValueError(f"UncertaintySizer(max_leverage={self.p.max_leverage}): must be positive")
        if self.p.kelly_fraction is not None and not 0 < self.p.kelly_fraction <= 1:
            raise ValueError(f"UncertaintySizer(kelly_fraction={self.p.kelly_fraction}): must be in (0, 1]")
        if self.p.horizon is not None and not (isinstance(self.p.horizon, int) and self.p.horizon >= 1):
            raise ValueError(f"UncertaintySizer(horizon={self.p.horizon}): must be a positive integer")

    def fraction(self, isbuy: bool) -> float:
        ind = self._resolve(self.p.uncertainty, "uncertainty")
        for name in ("mean", "epistemic", "aleatoric"):
            if not hasattr(ind, name):
                raise ValueError(f"UncertaintySizer: {type(ind).__name__} has no {name!r} line; "
                                 "pass a BNNUncertainty indicator")
        if self.p.kelly_fraction is not None and getattr(getattr(ind, "p", None), "zero_mean", False):
            raise ValueError("UncertaintySizer(kelly_fraction=...) sizes by the forecast's mean: give it a "
                             "BNNUncertainty(zero_mean=False) (by default the forecast is centred at zero)")
        mean, epi, alea = float(ind.mean[0]), float(ind.epistemic[0]), float(ind.aleatoric[0])
        var = epi * epi + alea * alea
        if not (math.isfinite(mean) and math.isfinite(var)):
            return math.nan
        horizon = self.p.horizon or getattr(getattr(ind, "p", None), "horizon", 1)
        sigma_bar = math.sqrt(var / horizon)
        frac = min(self.p.target_vol / sigma_bar if sigma_bar > 0 else math.inf, self.p.max_leverage)
        if self.p.kelly_fraction is not None:
            edge = (1.0 if isbuy else -1.0) * mean
            kelly = self.p.kelly_fraction * edge / var if var > 0 else math.copysign(math.inf, edge)
            frac = min(frac, kelly)
        return frac


class RiskScaleSizer(_FractionSizer):
    """``size = base × scale`` of the portfolio's value, ``scale`` read from a
    :class:`~btdensity.strategies.overlay.RiskScale` (its ``scale`` line), any line of scales, or the name of the
    strategy's attribute holding one (default ``"risk"``). A NaN scale (warm-up) sizes 0.

    A sizer sizes the orders a strategy sends; to resize a held position as the scale moves (with the rebalance
    band and the minimum holding time) build the strategy on :class:`~btdensity.strategies.managed.RiskManaged`.
    """

    params = (("risk", "risk"), ("base", 0.95))

    def __init__(self) -> None:
        super().__init__()
        if not self.p.base > 0:
            raise ValueError(f"RiskScaleSizer(base={self.p.base}): base must be a positive fraction of value")

    def fraction(self, isbuy: bool) -> float:
        obj = self._resolve(self.p.risk, "risk scale")
        return self.p.base * float(getattr(obj, "scale", obj)[0])
