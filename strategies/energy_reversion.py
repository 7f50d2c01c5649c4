"""``EnergyReversion`` (``energy_reversion``): a contrarian entry after an energy spike has resolved.

When the market state turns unusual (Energy's z-score above ``threshold``) and then calms down again (back below
``release`` within ``resolve_bars`` bars: the ``spike_resolved`` line fires), the move that came with the spike is
bet to partly revert: the strategy enters against it — long after a crash, short after a blow-off (flat with
``long_short=False``, the default) — and leaves after ``hold_bars`` bars, or at once when a new spike starts (the
z-score above ``threshold`` again). Like the other model strategies it holds ``direction × target × scale`` under
the risk overlay (volatility targeting on the trailing volatility, the fee-sized rebalance band, ``min_hold``).
"""
from __future__ import annotations

import math

import numpy as np

from btdensity.indicators import Energy
from btdensity.indicators.energy import spike_peak, spike_resolved

from .overlay import RiskScale
from .registry import register_strategy
from .signal import SignalStrategy, all_finite

__all__ = ["EnergyReversion"]


@register_strategy("energy_reversion")
class EnergyReversion(SignalStrategy):
    """Enter against the move of a resolved energy spike, hold ``hold_bars`` bars.

    The move is the sign of the log return from ``lookback`` bars before the spike's peak bar (its highest z-score,
    :func:`~btdensity.indicators.energy.spike_peak`) to the peak bar: negative (a crash) → long, positive (a
    blow-off) → short with ``long_short=True``, else no trade; a zero move is no trade. The entry is decided on the
    bar ``spike_resolved`` fires and filled at the next open; the exit is decided ``hold_bars`` bars later, or on
    the first bar whose z-score is above ``threshold``, whichever comes first. ``threshold``, ``release`` and
    ``resolve_bars`` are passed to the Energy indicator. An energy indicator without a ``spike_resolved`` line (a
    baseline swapped in through ``replace``) gets the signal computed from its ``zscore`` line with the same rule.

    ``signal_hold`` is 0 here (the others' default is 168 bars): ``hold_bars`` sets the holding time, and an exit
    on a new spike must not wait.
    """

    params = (("threshold", 2.5), ("release", 1.0), ("resolve_bars", 24), ("lookback", 24), ("hold_bars", 48),
              ("signal_hold", 0))

    def __init__(self) -> None:
        super().__init__()
        p = self.p
        for name in ("resolve_bars", "lookback", "hold_bars"):
            value = getattr(p, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"EnergyReversion({name}={value!r}): a positive number of bars")
        if not p.release < p.threshold:
            raise ValueError(f"EnergyReversion(release={p.release}, threshold={p.threshold}): release must be a "
                             "z-score below threshold")
        self.energy = self.model(Energy, threshold=p.threshold, release=p.release, resolve_bars=p.resolve_bars)
        self.risk = RiskScale(self.data)
        self.attach_diagnostics()

    def _recent_z(self) -> np.ndarray:
        return np.asarray(self.energy.zscore.get(size=min(self.p.resolve_bars + 1, len(self))), dtype=np.float64)

    def fired(self) -> float:
        """The ``spike_resolved`` value of this bar (1 fires, 0 not, NaN unknown)."""
        line = getattr(self.energy, "spike_resolved", None)
        if line is not None:
            return float(line[0])
        return float(spike_resolved(self._recent_z(), self.p.threshold, self.p.release, self.p.resolve_bars)[-1])

    def spike_move(self) -> float:
        """The log return from ``lookback`` bars before the resolved spike's peak bar to the peak bar (NaN: no
        resolved spike on this bar, or not enough bars)."""
        peak = spike_peak(self._recent_z(), self.p.threshold, self.p.release, self.p.resolve_bars)
        if peak is None or len(self) <= peak + self.p.lookback:
            return math.nan
        top, before = self.data.close[-peak], self.data.close[-peak - self.p.lookback]
        if not (top > 0 and before > 0):
            return math.nan
        return math.log(top / before)

    def want(self) -> float:
        z = float(self.energy.zscore[0])
        held = self.held_signal.direction
        if held:
            if len(self) - 1 - self.held_signal.since >= self.p.hold_bars or z > self.p.threshold:
                return 0.0
            return float(held)
        fired = self.fired()
        if not all_finite(z, fired):
            return math.nan
        if fired != 1.0:
            return 0.0
        move = self.spike_move()
        if not math.isfinite(move):
            return 0.0
        direction = -int((move > 0) - (move < 0))
        if not self.p.long_short:
            direction = max(direction, 0)
        return float(direction)
