"""``ClassicalForecast``: the frame of the classical forecasts of the next return (``GarchForecast``,
``HarForecast``): ``BNNUncertainty``'s lines, so a strategy or sizer takes either in the BNN's place."""
from __future__ import annotations

from .base import WalkForwardIndicator

__all__ = ["ClassicalForecast"]


class ClassicalForecast(WalkForwardIndicator):
    """Predictive ``mean`` and ``std`` of the log return over the next ``horizon`` bars and the central interval
    ``lower`` … ``upper`` at ``level``; ``epistemic`` (0: the model's parameters are taken as known) and
    ``aleatoric`` (= ``std``) make it a drop-in for ``BNNUncertainty``."""

    takes_fit_kwargs = False
    #: every row so far, as ``BNNUncertainty``: the baseline gets the data its model gets (on BTC/USDT hourly
    #: 2017-19 GARCH-t's 5 % / 95 % pinball loss fell 0.9 % against 2,000-bar windows)
    default_expanding = True
    lines = ("mean", "std", "lower", "upper", "epistemic", "aleatoric")
    params = (("horizon", 1), ("level", 0.9))
    plotinfo = dict(subplot=True, plothlines=[0.0])
    plotlines = dict(std=dict(_plotskip=True), epistemic=dict(_plotskip=True), aleatoric=dict(_plotskip=True),
                     mean=dict(color="#1f77b4"),
                     lower=dict(color="#aaaaaa", linestyle="--"), upper=dict(color="#aaaaaa", linestyle="--"))

    def __init__(self) -> None:
        if not 0.0 < self.p.level < 1.0:
            raise ValueError(f"{type(self).__name__}(level={self.p.level}): level must be in (0, 1)")
        super().__init__()
