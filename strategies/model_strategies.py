"""Registered model strategies beyond the density gate: energy-sized momentum, score momentum, BNN confidence
with uncertainty sizing, and a regime filter."""
from __future__ import annotations

import math


import backtrader as bt

from btdensity.indicators import REGIME_NAMES, BNNUncertainty, Energy, Regime, ScoreDirection

from .model_base import ModelStrategy
from .registry import register_strategy
from .sizers import EnergyScaledSizer, UncertaintySizer

__all__ = ["BNNConfidence", "EnergySized", "RegimeFilter", "ScoreMomentum"]

_BULL, _VOLATILE = REGIME_NAMES.index("bull"), REGIME_NAMES.index("volatile")


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


@register_strategy("energy_sized")
class EnergySized(ModelStrategy):
    """Momentum (the log return over ``momentum_bars``) sized by ``EnergyScaledSizer``: a full ``target``
    position when the energy z-score is at or below 0, shrinking to nothing at ``threshold``."""

    params = (("momentum_bars", 24), ("threshold", 3.0), ("use_sizer", True))

    def __init__(self) -> None:
        super().__init__()
        self.energy = self.model(Energy)
        self.momentum = bt.ind.ROC(self.data.close, period=self.p.momentum_bars, plot=False)
        self.setsizer(EnergyScaledSizer(energy=self.energy, base=self.p.target, threshold=self.p.threshold))
        self.attach_diagnostics()

    def next(self) -> None:
        m, z = self.momentum[0], self.energy.zscore[0]
        if self.pending() or not _finite(m, z):
            return
        if self.position.size > 0 and m <= 0:
            self.exit()
        elif not self.position and m > 0:
            self.enter(+1)


@register_strategy("score_momentum")
class ScoreMomentum(ModelStrategy):
    """Follow ScoreDirection: enter its direction when its strength is at least ``min_strength`` (1 = a
    usual bar of the calibration tail), leave when the direction turns or the strength falls below
    ``exit_strength``."""

    params = (("min_strength", 1.0), ("exit_strength", 0.5))

    def __init__(self) -> None:
        super().__init__()
        self.direction = self.model(ScoreDirection)
        self.attach_diagnostics()

    def next(self) -> None:
        d, s = self.direction.direction[0], self.direction.strength[0]
        if self.pending() or not _finite(d, s):
            return
        want = (d > 0) - (d < 0)
        if not self.p.long_short:
            want = max(want, 0)
        held = (self.position.size > 0) - (self.position.size < 0)
        if held and (want != held or s < self.p.exit_strength):
            self.exit()
        elif not held and want and s >= self.p.min_strength:
            self.enter(want)


@register_strategy("bnn_confidence")
class BNNConfidence(ModelStrategy):
    """Long while the BNN's predicted return is at least ``min_snr`` predictive standard deviations above
    zero, sized by ``UncertaintySizer`` (volatility targeting, ``target_vol`` per bar, optional Kelly)."""

    params = (("min_snr", 0.05), ("target_vol", 0.01), ("max_leverage", 1.0), ("kelly_fraction", None),
              ("use_sizer", True))

    def __init__(self) -> None:
        super().__init__()
        self.uncertainty = self.model(BNNUncertainty)
        self.setsizer(UncertaintySizer(uncertainty=self.uncertainty, target_vol=self.p.target_vol,
                                       max_leverage=self.p.max_leverage, kelly_fraction=self.p.kelly_fraction))
        self.attach_diagnostics()

    def next(self) -> None:
        u = self.uncertainty
        mean, std = u.mean[0], math.hypot(u.epistemic[0], u.aleatoric[0])
        if self.pending() or not _finite(mean, std) or std <= 0:
            return
        snr = mean / std
        if self.position.size > 0 and snr <= 0:
            self.exit()
        elif not self.position and snr >= self.p.min_snr:
            self.enter(+1)


@register_strategy("regime_filter")
class RegimeFilter(ModelStrategy):
    """A moving-average trend (fast above slow) traded only in the JEM's ``bull`` regime with at least
    ``min_confidence``; out whenever the regime is ``volatile`` or the trend turns."""

    params = (("fast", 20), ("slow", 50), ("min_confidence", 0.4))

    def __init__(self) -> None:
        super().__init__()
        if not 0 < self.p.fast < self.p.slow:
            raise ValueError(f"RegimeFilter needs 0 < fast < slow; got fast={self.p.fast}, slow={self.p.slow}")
        self.regime = self.model(Regime)
        self.trend = bt.ind.SMA(self.data.close, period=self.p.fast) - bt.ind.SMA(self.data.close,
                                                                                  period=self.p.slow)
        self.attach_diagnostics()

    def next(self) -> None:
        regime, confidence, trend = self.regime.regime[0], self.regime.confidence[0], self.trend[0]
        if self.pending() or not _finite(regime, confidence, trend):
            return
        if self.position.size > 0 and (trend <= 0 or int(regime) == _VOLATILE):
            self.exit()
        elif not self.position and trend > 0 and int(regime) == _BULL and confidence >= self.p.min_confidence:
            self.enter(+1)
