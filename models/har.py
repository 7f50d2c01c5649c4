"""``HarT``: the classical HAR forecast of a return's distribution — a least-squares volatility forecast with a
Student-t law fitted around it.

The scale ``σ̂(x)`` of a row is :class:`~btdensity.models.log_scale.LogScaleRegression` of ``log |y|`` on the row
(log realised volatilities over several horizons, range estimators: the HAR model of Corsi 2009, fitted on the
return itself rather than on a realised variance), fitted on every row of a window, its held-out tail included: the
tail is the window's most recent stretch (on BTC/USDT 2017-19 and two synthetic markets the pinball loss against
GARCH-t went from -1.8 / -2.3 / -1.4 % with the fit rows alone to -1.9 / -2.6 / -1.9 %; ``BNNUncertainty``'s, whose
regression this is, from -1.8 / -3.5 / -2.1 % to -2.0 / -3.5 / -2.6 %). On the held-out tail the
standardised returns ``y / σ̂`` fix the law around it: a Student-t shape and variance factor
(:func:`~btdensity.models.calibration.fit_shape_and_scale`, the criterion that calibrates the BNN's predictive).
The forecast is centred at zero: an hour's drift is too small to forecast out of sample (centring the BNN's
forecasts at zero cut their pinball loss on BTC/USDT 2017-19).

>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(6000, 1)); sigma = np.exp(-5 + 0.5 * X[:, 0])
>>> y = sigma * rng.standard_t(4, 6000) / np.sqrt(2.0)        # unit-variance t4 shocks
>>> model = HarT().fit(X[:4000], y[:4000], X[4000:], y[4000:])
>>> std, lower, upper = model.predict(np.array([[0.0]]), level=0.9)
>>> round(float(std[0] / np.exp(-5)), 1), model.df_                 # the truth: 1.0, t4
(1.0, 4.0)
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .calibration import central_quantile, fit_shape_and_scale, moved_targets
from .json_checkpoint import JsonStateModel
from .log_scale import LogScaleRegression

__all__ = ["HarT"]


class HarT(JsonStateModel):
    """``fit(X, y, X_val, y_val)``: the volatility regression on all rows, the t law's shape ``df_`` and variance
    factor ``variance_scale_`` on the held-out rows; ``predict(X, level)``: ``(std, lower, upper)`` of each row's
    zero-mean forecast, its central ``level`` interval."""

    def __init__(self) -> None:
        self.regression = LogScaleRegression()
        self.df_: float | None = None
        self.variance_scale_: float | None = None
        self.meta_: dict[str, Any] = {}

    def fit(self, X: Any, y: Any, X_val: Any, y_val: Any) -> "HarT":
        """The regression on every row (the held-out tail is a window's most recent stretch), the law on the returns of
        ``y_val`` that moved (a flat bar's 0 is in every interval: ``moved_targets``)."""
        y, y_val = (np.asarray(a, dtype=np.float64).ravel() for a in (y, y_val))
        self.regression.fit(np.concatenate([np.asarray(X, dtype=np.float64), np.asarray(X_val, dtype=np.float64)]),
                            np.concatenate([y, y_val]))
        scale = self.regression.scale(X_val)[:, 0]
        self.df_, self.variance_scale_ = fit_shape_and_scale(y_val, np.zeros_like(y_val), scale,
                                                             moved=moved_targets(y_val))
        return self

    def predict(self, X: Any, level: float = 0.9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.df_ is None:
            raise RuntimeError("HarT is not fitted yet: call fit() or load() first")
        std = np.sqrt(self.variance_scale_) * self.regression.scale(X)[:, 0]
        half = central_quantile(float(level), self.df_) * std
        return std, -half, half

    def double(self) -> "HarT":
        return self

    def state(self) -> dict[str, Any]:
        return {"regression": self.regression.state(), "df": self.df_, "variance_scale": self.variance_scale_}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "HarT":
        model = cls()
        model.regression = LogScaleRegression.from_state(state["regression"])
        model.df_, model.variance_scale_ = float(state["df"]), float(state["variance_scale"])
        return model
