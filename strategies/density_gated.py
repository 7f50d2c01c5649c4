"""``DensityGatedStrategy`` (``density_gated``, the default strategy): a trend or buy-and-hold core whose exposure
the model risk overlay scales — volatility targeting, less exposure while Energy's z-score is high (and, with
``closed_scale`` below 1, while LogDensity's smooth gate is closed) — traded with a rebalance band sized by the
fees, a minimum holding time and cost-aware entries. Not a gate that jumps in and out of the market: on/off gates
flicker, and every flicker pays the fees.

``closed_scale`` is 1 by default: on hourly BTC/USDT 2017-2019 and on the sample market, halving the position while
the smooth gate was closed lowered the Sharpe ratio with every core tried (``run_backtest.py ablate``)."""
from __future__ import annotations

import math

from btdensity.indicators import BNNUncertainty, Energy, LogDensity, ScoreDirection

from .managed import HeldDirection, RiskManaged, forecast_edge, trend_gap
from .model_base import ModelStrategy, managed_model_checks
from .overlay import RiskScale
from .registry import register_strategy

__all__ = ["DensityGatedStrategy"]

CORES = ("trend", "hold", "bnn", "score", "momentum")
VOLS = ("trailing", "bnn", "none")
EDGES = ("none", "bnn")
#: default (min_strength, flip_strength) of the directional cores: ScoreDirection's strength is relative to a
#: usual bar of its calibration tail, the BNN's is a signal-to-noise ratio (|mean| / std of the next bar's return)
DEFAULT_STRENGTH = {"score": (1.0, 1.0), "bnn": (0.1, 0.1), "momentum": (0.0, 0.0)}


@register_strategy("density_gated")
class DensityGatedStrategy(RiskManaged, ModelStrategy):
    """Hold ``core × target × scale`` of the portfolio (see :class:`~btdensity.strategies.managed.RiskManaged`).

    ``core``: ``"trend"`` (long while the mean close of the last ``fast`` bars is above that of the last
    ``slow``; short too with ``long_short=True``), ``"hold"`` (always long), or a directional model signal —
    ``"bnn"`` (the BNN's mean over its predictive std), ``"score"`` (ScoreDirection), ``"momentum"`` (the log
    return over ``momentum_bars``) — that opens a position at ``min_strength``, turns only when the opposite
    direction is ``flip_strength`` strong (defaults per signal: ``DEFAULT_STRENGTH``) and keeps a direction at
    least ``signal_hold`` bars.

    ``scale`` is a :class:`RiskScale`: volatility targeting (``vol``: ``"trailing"`` realised volatility, the
    ``"bnn"``'s predictive std, or ``"none"``; ``vol_halflife``, ``reference_bars``), times ``closed_scale`` while
    LogDensity's smooth gate (closes at ``alpha``, reopens after ``reopen_bars`` bars above ``reopen``) is
    closed, times an energy factor falling from 1 at ``enter_z`` to ``energy_floor`` at ``exit_z``.

    ``edge="bnn"``: an entry (or an increase) needs the BNN's expected gain over ``min_hold`` bars above the
    round-trip cost by ``edge_margin``; the ``"bnn"`` core always checks it.
    """

    params = (
        ("core", "trend"), ("fast", 24), ("slow", 168), ("momentum_bars", 24),
        ("min_strength", None), ("flip_strength", None), ("signal_hold", 168),
        ("vol", "trailing"), ("vol_halflife", 168), ("reference_bars", 2000),
        ("alpha", 0.05), ("reopen", None), ("reopen_bars", 3), ("closed_scale", 1.0),
        ("enter_z", 1.5), ("exit_z", 3.0), ("energy_floor", 0.5),
        ("edge", "none"),
        ("density_model", "realnvp"), ("energy_model", "ebm"), ("diagnostics", True),
    )

    def __init__(self) -> None:
        super().__init__()
        managed_model_checks(self)
        p = self.p
        for name, value, choices in (("core", p.core, CORES), ("vol", p.vol, VOLS), ("edge", p.edge, EDGES)):
            if value not in choices:
                raise ValueError(f"DensityGatedStrategy({name}={value!r}): choose one of {choices}")
        if not p.enter_z < p.exit_z:
            raise ValueError(f"DensityGatedStrategy: enter_z ({p.enter_z}) must be below exit_z ({p.exit_z})")
        if not 0 < p.fast < p.slow:
            raise ValueError(f"DensityGatedStrategy needs 0 < fast < slow; got fast={p.fast}, slow={p.slow}")
        self.energy = self.model(Energy, model=p.energy_model)
        self.density = self.model(LogDensity, model=p.density_model, alpha=p.alpha, reopen=p.reopen,
                                  reopen_bars=p.reopen_bars)
        if p.core == "score" or p.diagnostics:
            self.direction = self.model(ScoreDirection)
        if "bnn" in (p.core, p.vol, p.edge):   # the core and the edge read the network's mean
            self.uncertainty = self.model(BNNUncertainty, zero_mean="bnn" not in (p.core, p.edge))
        self.attach_diagnostics()
        self.risk = RiskScale(self.data, vol=p.vol != "none", risk=self.uncertainty if p.vol == "bnn" else None,
                              vol_halflife=p.vol_halflife, reference_bars=p.reference_bars,
                              density=self.density, alpha=p.alpha, reopen=p.reopen, reopen_bars=p.reopen_bars,
                              closed_scale=p.closed_scale, energy=self.energy, z_low=p.enter_z, z_high=p.exit_z,
                              energy_floor=p.energy_floor)
        defaults = DEFAULT_STRENGTH.get(p.core, (0.0, 0.0))
        self.min_strength = defaults[0] if p.min_strength is None else p.min_strength
        self.flip_strength = defaults[1] if p.flip_strength is None else p.flip_strength
        self.held_signal = HeldDirection(p.signal_hold)

    # ------------------------------------------------------------------ the core
    def core(self) -> float:
        p = self.p
        if p.core == "hold":
            return 1.0
        if p.core == "trend":
            gap = trend_gap(self.data, p.fast, p.slow)
            if not math.isfinite(gap):
                return math.nan
            return 1.0 if gap > 0 else (-1.0 if p.long_short and gap < 0 else 0.0)
        return self._signal_core()

    def signal(self) -> tuple[float, float]:
        """``(direction, strength)`` of the directional core now (direction > 0: long); NaN while it warms up."""
        if self.p.core == "score":
            return self.direction.direction[0], self.direction.strength[0]
        if self.p.core == "bnn":
            u = self.uncertainty
            std = math.hypot(u.epistemic[0], u.aleatoric[0])
            return u.mean[0], abs(u.mean[0]) / std if std > 0 else math.nan
        closes = self.data.close.get(size=self.p.momentum_bars + 1)
        if len(closes) <= self.p.momentum_bars or not closes[0] > 0:
            return math.nan, math.nan
        return math.log(closes[-1] / closes[0]), 1.0

    def _signal_core(self) -> float:
        s, strength = self.signal()
        if not (math.isfinite(s) and math.isfinite(strength)):
            return math.nan
        held = self.held_signal.direction
        want = (s > 0) - (s < 0)
        if not self.p.long_short:
            want = max(want, 0)
        if held == 0:
            want = want if strength >= self.min_strength else 0
        elif not (s * held < 0 and strength >= self.flip_strength):
            want = held
        return self.held_signal.update(len(self) - 1, want)

    def edge(self) -> float | None:
        if self.p.edge != "bnn" and self.p.core != "bnn":
            return None
        u = self.uncertainty
        horizon = getattr(getattr(u, "p", None), "horizon", 1)
        return forecast_edge(u.mean[0], max(int(horizon), 1), self.p.min_hold)
