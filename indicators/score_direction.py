"""``ScoreDirection``: which way the forward return is more probable, from the score of the joint density.

A score model learns ``p(x, r)`` of today's features ``x`` and the forward log return ``r`` over
``horizon`` bars. Since ``∂/∂r log p(x, r) = ∂/∂r log p(r | x)``, the score's return component at
``r = 0`` is positive when larger returns are more probable than smaller ones given ``x``.

Two lines describe the direction's recent history (:func:`direction_consistency`): ``consistency``, the share of
the last ``consistency_bars`` bars whose direction has the current bar's sign, and ``score_var``, the variance of
the direction over those bars. Like ``LogDensity``'s ``smooth_gate`` they are filled by ``once()`` from the whole
direction line and by ``next()`` from its last ``consistency_bars`` values, with the same function.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from btdensity.models import ScoreModel

from .base import WalkForwardIndicator

__all__ = ["ScoreDirection", "direction_consistency"]


def direction_consistency(direction: Iterable[float], bars: int) -> np.ndarray:
    """``(consistency, score_var)`` per bar, shape ``(n, 2)``: the share of the last ``bars`` directions (the bar's
    own included) whose sign is the bar's sign (``numpy.sign``: a direction of exactly 0 agrees only with 0), and
    their variance (population, ``ddof=0``). NaN until ``bars`` directions in a row are known (a NaN direction
    makes the next ``bars`` bars NaN). The value at bar t depends on bars t - ``bars`` + 1 … t only.

    >>> direction_consistency([np.nan, 1.0, -2.0, 3.0, 0.5, -0.5], 3).round(4).tolist()
    [[nan, nan], [nan, nan], [nan, nan], [0.6667, 4.2222], [0.6667, 4.1667], [0.3333, 2.1667]]
    """
    d = np.asarray(direction, dtype=np.float64)
    out = np.full((d.shape[0], 2), np.nan)
    for t in range(bars - 1, d.shape[0]):
        window = d[t - bars + 1:t + 1]
        if not np.isfinite(window).all():
            continue
        out[t, 0] = np.count_nonzero(np.sign(window) == np.sign(window[-1])) / bars
        out[t, 1] = float(np.var(window))
    return out


class ScoreDirection(WalkForwardIndicator):
    """``direction``: ∂/∂r log p(r | x) at r = 0 (its sign is the signal); ``strength``: its magnitude over
    the median magnitude in the held-out tail of the training window (1 = a usual day); ``consistency``: the share
    of the last ``consistency_bars`` bars whose direction has this bar's sign (1 = a steady signal; NaN until that
    many directions are known); ``score_var``: the variance of the direction over those bars (see
    :func:`direction_consistency`). ``consistency_bars`` does not change the fits (nor the model cache's keys)."""

    lines = ("direction", "strength", "consistency", "score_var")
    derived_lines = ("consistency", "score_var")   # from the lines before (see WalkForwardIndicator.derived_lines)
    params = (("horizon", 1), ("consistency_bars", 24))
    plotinfo = dict(subplot=True, plothlines=[0.0], plotname="Score direction")
    plotlines = dict(direction=dict(color="#ff7f0e", linewidth=1.0), strength=dict(_plotskip=True),
                     consistency=dict(_plotskip=True), score_var=dict(_plotskip=True))
    uses_labels = True
    default_model_kwargs = {"hidden": 64, "n_blocks": 2}
    default_fit_kwargs = {"epochs": 40, "patience": 8, "lr": 2e-3}

    def __init__(self) -> None:
        bars = self.p.consistency_bars
        if isinstance(bars, bool) or not isinstance(bars, int) or bars < 1:
            raise ValueError(f"ScoreDirection(consistency_bars={bars!r}): a positive number of bars")
        super().__init__()

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

    def derive_all(self, n: int) -> np.ndarray:
        d = np.asarray(self.lines.direction.array[0:n], dtype=np.float64)
        return direction_consistency(d, self.p.consistency_bars)

    def derive_bar(self) -> tuple[float, ...]:
        bars = self.p.consistency_bars
        recent = np.asarray(self.lines.direction.get(size=min(bars, len(self))), dtype=np.float64)
        return tuple(float(v) for v in direction_consistency(recent, bars)[-1])
