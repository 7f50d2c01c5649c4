"""``LogDensity``: the log-density of the market state under a RealNVP flow or a score model, and a gate
that closes when the state is rarer than ``alpha`` of the calibration sample.

``DensityGate`` holds what every density indicator shares (its classical baselines ``GaussianDensity`` and
``MixtureDensity`` too): the lines ``logp``, ``pvalue``, ``gate``, the parameter ``alpha`` and the
calibration against the held-out tail of the training window."""
from __future__ import annotations

from typing import Any

import numpy as np

from btdensity.models import RealNVP, ScoreModel

from .base import WalkForwardIndicator
from .calibration import lower_tail_pvalue, sorted_reference

__all__ = ["DensityGate", "LogDensity"]

_FAMILIES = {"realnvp": RealNVP, "score": ScoreModel}
_DEFAULTS = {"realnvp": {"n_layers": 4, "hidden": 64}, "score": {}}


class DensityGate(WalkForwardIndicator):
    """Base of the density indicators: ``logp`` of the bar's features under the window's model (its
    ``log_prob``), its lower-tail ``pvalue`` against the held-out tail of the training window, and ``gate`` = 1
    (open: in distribution) while ``pvalue > alpha``, else 0. Subclasses say which model (``model_class``);
    the model is built as ``model_class()(n_features, seed=seed, **model_kwargs)``."""

    lines = ("logp", "pvalue", "gate")
    params = (("alpha", 0.05),)
    plotinfo = dict(subplot=True, plotname="Log-density gate")
    plotlines = dict(logp=dict(_plotskip=True), pvalue=dict(color="#1f77b4", linewidth=1.0),
                     gate=dict(color="#2ca02c", linewidth=1.0, _fill_lt=(1, "#f4cccc")))

    def __init__(self) -> None:
        if not 0.0 < self.p.alpha < 0.5:
            raise ValueError(f"{type(self).__name__}(alpha={self.p.alpha}): alpha must be in (0, 0.5)")
        super().__init__()
        self.plotinfo.plothlines = [self.p.alpha]

    def make_model(self, n_features: int) -> Any:
        return self.model_class()(n_features, seed=self.p.seed, **self.model_kwargs)

    def calibrate(self, model: Any, X_val: np.ndarray, y_val: Any) -> Any:
        return sorted_reference(model.log_prob(X_val))

    def evaluate(self, model: Any, state: Any, X: np.ndarray) -> np.ndarray:
        logp = model.log_prob(X)
        p = lower_tail_pvalue(state, logp)
        return np.column_stack([logp, p, (p > self.p.alpha).astype(np.float64)])


class LogDensity(DensityGate):
    """``logp`` of the bar's features under a RealNVP flow (``model="realnvp"``, exact) or a score model
    (``"score"``, up to a constant), its lower-tail ``pvalue`` against the held-out tail of the training
    window, and ``gate`` = 1 (open: in distribution) while ``pvalue > alpha``, else 0."""

    params = (("model", "realnvp"),)
    default_fit_kwargs = {"epochs": 40, "patience": 8, "lr": 2e-3}

    def __init__(self) -> None:
        if self.p.model not in _FAMILIES:
            raise ValueError(f"LogDensity(model={self.p.model!r}): choose one of {sorted(_FAMILIES)}")
        self.default_model_kwargs = dict(_DEFAULTS[self.p.model])
        super().__init__()

    def model_class(self) -> type:
        return _FAMILIES[self.p.model]
