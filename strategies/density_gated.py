"""``DensityGatedStrategy``: trade a directional signal only while the market is in a state the models know."""
from __future__ import annotations

import math


import backtrader as bt

from btdensity.indicators import BNNUncertainty, Energy, LogDensity, ScoreDirection

from .model_base import ModelStrategy
from .registry import register_strategy

__all__ = ["DensityGatedStrategy"]

SIGNALS = ("score", "bnn", "momentum")
#: default (min_strength, flip_strength) per signal: ScoreDirection's strength is relative to a usual bar of
#: its calibration tail, the BNN's is a signal-to-noise ratio (|mean| / std of the next bar's return)
DEFAULT_STRENGTH = {"score": (1.0, 1.0), "bnn": (0.1, 0.1), "momentum": (0.0, 0.0)}


@register_strategy("density_gated")
class DensityGatedStrategy(ModelStrategy):
    """Enter in the direction of ``signal`` only while LogDensity's gate is open and Energy's z-score is
    below ``enter_z``; exit (or cut to ``cut`` of the position) when the gate closes or the z-score passes
    ``exit_z``, or when the signal turns against the position.

    ``signal``: ``"score"`` (ScoreDirection's direction), ``"bnn"`` (the BNN's predicted mean return over its
    predictive std), ``"momentum"`` (the log return over ``momentum_bars``). A position opens when the
    signal's strength (ScoreDirection's ``strength``; |mean| / std for the BNN; 1 for momentum) is at least
    ``min_strength``, and the signal closes it only when the opposite direction is at least
    ``flip_strength`` strong (defaults per signal: ``DEFAULT_STRENGTH``): a noisy sign does not churn the position (and pay fees) every bar. The
    gate and the energy exit at once, and after such an exit no position opens for ``cooldown`` bars (the
    unusual state tends to persist). Long only unless ``long_short=True``.
    """

    params = (
        ("signal", "bnn"),
        ("enter_z", 1.5),
        ("exit_z", 3.0),
        ("cut", 0.0),
        ("min_strength", None),
        ("flip_strength", None),
        ("cooldown", 24),
        ("momentum_bars", 24),
        ("density_model", "realnvp"),
        ("energy_model", "ebm"),
        ("alpha", 0.05),
        ("diagnostics", True),
    )

    def __init__(self) -> None:
        super().__init__()
        if self.p.signal not in SIGNALS:
            raise ValueError(f"DensityGatedStrategy(signal={self.p.signal!r}): choose one of {SIGNALS}")
        if not self.p.enter_z <= self.p.exit_z:
            raise ValueError(f"DensityGatedStrategy: enter_z ({self.p.enter_z}) must not exceed exit_z ({self.p.exit_z})")
        if not 0 <= self.p.cut < 1:
            raise ValueError(f"DensityGatedStrategy(cut={self.p.cut}): the fraction kept, in [0, 1)")
        self.energy = self.model(Energy, model=self.p.energy_model)
        self.density = self.model(LogDensity, model=self.p.density_model, alpha=self.p.alpha)
        if self.p.signal == "score":
            self.direction = self.model(ScoreDirection)
        elif self.p.signal == "bnn":
            self.uncertainty = self.model(BNNUncertainty)
        else:
            self.momentum = bt.ind.ROC(self.data.close, period=self.p.momentum_bars, plot=False)
        self.attach_diagnostics()
        if self.p.diagnostics and getattr(self, "direction", None) is None:
            self.direction = self.model(ScoreDirection)
        defaults = DEFAULT_STRENGTH[self.p.signal]
        self.min_strength = defaults[0] if self.p.min_strength is None else self.p.min_strength
        self.flip_strength = defaults[1] if self.p.flip_strength is None else self.p.flip_strength
        self._cut_done = False
        self._blocked_until = -1

    def signal(self) -> tuple[float, float]:
        """``(direction, strength)`` of the signal now (direction > 0: long); NaN while the models warm up."""
        if self.p.signal == "score":
            return self.direction.direction[0], self.direction.strength[0]
        if self.p.signal == "bnn":
            u = self.uncertainty
            std = math.hypot(u.epistemic[0], u.aleatoric[0])
            return u.mean[0], abs(u.mean[0]) / std if std > 0 else float("nan")
        return self.momentum[0], 1.0

    def next(self) -> None:
        gate, z = self.density.gate[0], self.energy.zscore[0]
        s, strength = self.signal()
        if self.pending() or not all(math.isfinite(v) for v in (gate, z, s, strength)):
            return
        want = (s > 0) - (s < 0)
        if not self.p.long_short:
            want = max(want, 0)
        held = (self.position.size > 0) - (self.position.size < 0)
        danger = gate <= 0 or z > self.p.exit_z
        if danger:
            self._blocked_until = len(self) + self.p.cooldown
        if held:
            if danger and not self._cut_done:
                self.exit(keep=self.p.cut)
                self._cut_done = self.p.cut > 0
            elif s * held < 0 and strength >= self.flip_strength:
                self.exit()
            return
        self._cut_done = False
        calm = len(self) > self._blocked_until and gate > 0 and z < self.p.enter_z
        if want and strength >= self.min_strength and calm:
            self.enter(want)
