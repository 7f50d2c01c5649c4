"""Classical baselines that are one trailing statistic per bar, judged against its values in the held-out tail
of the training window: ``RealizedVolGate`` (stands in for ``LogDensity``'s gate) and ``MomentumDirection``
(stands in for ``ScoreDirection``). Same walk-forward schedule, model cache and contract as the model indicators;
the "model" is the tail's sample of the statistic (``EmpiricalSample``)."""
from __future__ import annotations

from typing import Any

import numpy as np

from btdensity.models.empirical import EmpiricalSample

from .base import WalkForwardIndicator
from .calibration import sorted_reference, upper_tail_pvalue
from .trailing import momentum, realized_volatility

__all__ = ["MomentumDirection", "RealizedVolGate", "TailStatisticIndicator"]


class TailStatisticIndicator(WalkForwardIndicator):
    """Base of an indicator of one causal statistic of the closes (``statistic``, over ``statistic_bars()``
    bars): each window keeps the statistic's values in its held-out tail as its model."""

    takes_fit_kwargs = False

    def statistic(self, close: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def statistic_bars(self) -> int:
        raise NotImplementedError

    def inputs(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        return self.statistic(arrays["close"])[:, None]

    def input_lookback(self) -> int:
        return self.statistic_bars()

    def input_key(self) -> Any:
        return (type(self).__name__, self.statistic_bars())

    def model_class(self) -> type:
        return EmpiricalSample

    def make_model(self, n_features: int) -> Any:
        return EmpiricalSample()

    def fit_model(self, model: Any, X: np.ndarray, y: np.ndarray | None, X_val: np.ndarray,
                  y_val: np.ndarray | None) -> None:
        model.fit(X_val[:, 0])


class RealizedVolGate(TailStatisticIndicator):
    """``pvalue``: the share of the held-out tail's trailing realised volatility (root mean square of the last
    ``window`` log returns) at least as high as the bar's (upper tail, ``(1 + #{ref >= v}) / (1 + n)``);
    ``gate`` = 1 (open) while ``pvalue > alpha``, else 0, as ``LogDensity``'s gate; ``energy``: the trailing
    realised volatility itself (high = unusual) and ``zscore``: it standardised by the tail's mean and standard
    deviation, so it also stands in for ``Energy`` (``energy``, ``zscore``, ``pvalue``)."""

    lines = ("pvalue", "gate", "energy", "zscore")
    params = (("window", 24), ("alpha", 0.05))
    plotinfo = dict(subplot=True, plotname="Realised-volatility gate")
    plotlines = dict(pvalue=dict(color="#1f77b4", linewidth=1.0),
                     gate=dict(color="#2ca02c", linewidth=1.0, _fill_lt=(1, "#f4cccc")),
                     energy=dict(_plotskip=True), zscore=dict(_plotskip=True))

    def __init__(self) -> None:
        if int(self.p.window) < 1:
            raise ValueError(f"RealizedVolGate(window={self.p.window}): window must be >= 1")
        if not 0.0 < self.p.alpha < 0.5:
            raise ValueError(f"RealizedVolGate(alpha={self.p.alpha}): alpha must be in (0, 0.5)")
        super().__init__()
        self.plotinfo.plothlines = [self.p.alpha]

    def statistic(self, close: np.ndarray) -> np.ndarray:
        return realized_volatility(close, int(self.p.window))

    def statistic_bars(self) -> int:
        return int(self.p.window)

    def calibrate(self, model: Any, X_val: np.ndarray, y_val: Any) -> Any:
        values = np.asarray(model.values_, dtype=np.float64)
        std = float(values.std())
        return sorted_reference(values), float(values.mean()), std if std > 0 else 1.0

    def evaluate(self, model: Any, state: Any, X: np.ndarray) -> np.ndarray:
        reference, mean, std = state
        vol = X[:, 0]
        p = upper_tail_pvalue(reference, vol)
        return np.column_stack([p, (p > self.p.alpha).astype(np.float64), vol, (vol - mean) / std])


class MomentumDirection(TailStatisticIndicator):
    """``direction``: the trailing log return over ``momentum_bars`` bars (its sign is the forecast);
    ``strength``: ``|direction|`` over the median ``|direction|`` in the held-out tail of the training window
    (1 = a usual day), as ``ScoreDirection``'s strength."""

    lines = ("direction", "strength")
    params = (("momentum_bars", 24),)
    plotinfo = dict(subplot=True, plothlines=[0.0], plotname="Momentum direction")
    plotlines = dict(direction=dict(color="#ff7f0e", linewidth=1.0), strength=dict(_plotskip=True))

    def __init__(self) -> None:
        if int(self.p.momentum_bars) < 1:
            raise ValueError(f"MomentumDirection(momentum_bars={self.p.momentum_bars}): must be >= 1")
        super().__init__()

    def statistic(self, close: np.ndarray) -> np.ndarray:
        return momentum(close, int(self.p.momentum_bars))

    def statistic_bars(self) -> int:
        return int(self.p.momentum_bars)

    def calibrate(self, model: Any, X_val: np.ndarray, y_val: Any) -> Any:
        scale = float(np.median(np.abs(model.values_)))
        return scale if scale > 0 else 1.0

    def evaluate(self, model: Any, state: Any, X: np.ndarray) -> np.ndarray:
        d = X[:, 0]
        return np.column_stack([d, np.abs(d) / state])
