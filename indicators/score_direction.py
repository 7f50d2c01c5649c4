"""``ScoreDirection``: which way the forward return is more probable, from the score of the joint density.

A score model learns ``p(x, r)`` of today's features ``x`` and the forward log return ``r`` over
``horizon`` bars. Since ``∂/∂r log p(x, r) = ∂/∂r log p(r | x)``, the score's return component at
``r = 0`` is positive when larger returns are more probable than smaller ones given ``x``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from btdensity.models import ScoreModel

from .base import WalkForwardIndicator

__all__ = ["ScoreDirection"]


class ScoreDirection(WalkForwardIndicator):
    """``direction``: ∂/∂r log p(r | x) at r = 0 (its sign is the signal); ``strength``: its magnitude over
    the median magnitude in the held-out tail of the training window (1 = a usual day)."""

    lines = ("direction", "strength")
    params = (("horizon", 1),)
    plotinfo = dict(subplot=True, plothlines=[0.0], plotname="Score direction")
    plotlines = dict(direction=dict(color="#ff7f0e", linewidth=1.0), strength=dict(_plotskip=True))
    uses_labels = True
    default_model_kwargs = {"hidden": 64, "n_blocks": 2}
    default_fit_kwargs = {"epochs": 40, "patience": 8, "lr": 2e-3}

    def model_class(self) -> type:
        return ScoreModel

    def make_model(self, n_features: int) -> Any:
        return ScoreModel(n_features + 1, seed=self.p.seed, **self.model_kwargs)

    def fit_model(self, model: Any, X: np.ndarray, y: np.ndarray | None, X_val: np.ndarray,
                  y_val: np.ndarray | None) -> None:
        model.fit(np.column_stack([X, y]), X_val=np.column_stack([X_val, y_val]), **self.fit_kwargs)

    def _direction(self, model: Any, X: np.ndarray) -> np.ndarray:
        joint = np.column_stack([X, np.zeros(X.shape[0])])
        return np.asarray(model.conditional_score(joint, [X.shape[1]])).reshape(-1)

    def calibrate(self, model: Any, X_val: np.ndarray, y_val: Any) -> Any:
        scale = float(np.median(np.abs(self._direction(model, X_val))))
        return scale if scale > 0 else 1.0

    def evaluate(self, model: Any, state: Any, X: np.ndarray) -> np.ndarray:
        d = self._direction(model, X)
        return np.column_stack([d, np.abs(d) / state])
