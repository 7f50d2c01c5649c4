"""``SignalStrategy``: the base of the model strategies whose core is a held signal direction."""
from __future__ import annotations

import math

from .managed import HeldDirection, RiskManaged
from .model_base import ModelStrategy, managed_model_checks

__all__ = ["SignalStrategy", "all_finite"]


def all_finite(*values: float) -> bool:
    """Whether every value is a finite number (a line not known yet is NaN)."""
    return all(math.isfinite(v) for v in values)


class SignalStrategy(RiskManaged, ModelStrategy):
    """A managed model strategy whose core is a held signal direction (``signal_hold`` bars at least): subclasses
    say in :meth:`want` which direction the signal asks for."""

    params = (("signal_hold", 168),)

    def __init__(self) -> None:
        super().__init__()
        managed_model_checks(self)
        self.held_signal = HeldDirection(self.p.signal_hold)

    def want(self) -> float:
        """The direction the signal asks for now, before the hold (NaN: not known yet)."""
        raise NotImplementedError

    def core(self) -> float:
        want = self.want()
        if not math.isfinite(want):
            return math.nan
        return self.held_signal.update(len(self) - 1, int(want))
