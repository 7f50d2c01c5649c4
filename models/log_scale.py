"""``LogScaleRegression``: the HAR-type volatility forecast, least squares of ``log |y|`` on the input row.

``log |y| = log σ(x) + log |ε|`` for a return ``y = σ(x) ε`` with shocks ``ε`` independent of ``x``: least squares of
``log |y|`` on ``[1, x]`` estimates ``log σ(x)`` up to the constant ``E log |ε|``, whatever the shocks' law, when
``log σ`` is linear in ``x`` (the HAR model of Corsi 2009 takes ``x`` = log realised volatilities over several
horizons). Rows with ``y = 0`` (a flat bar) have no log and are left out. The forecast of a row is the exponential
of its linear predictor clipped to the range that predictor took on the fit rows: a row unlike any fitted (a volume
spike ten standard deviations out) cannot send the scale beyond what the window has seen.

>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(5000, 2)); y = np.exp(-5 + 0.8 * X[:, 0]) * rng.standard_t(4, 5000)
>>> reg = LogScaleRegression().fit(X, y)
>>> reg.coef_[1:, 0].round(1).tolist()     # the truth's elasticities: 0.8 and 0
[0.8, 0.0]
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["LogScaleRegression"]


class LogScaleRegression:
    """``fit(X, y)``: per output column of ``y``, least squares of ``log |y|`` on ``[1, X]``; ``scale(X)``: the
    forecast, shape ``(n, n_outputs)``. ``coef_``: intercept, then one slope per column of ``X``, one column per
    output; ``bounds_``: the linear predictor's range on the fit rows, one row per output."""

    def __init__(self) -> None:
        self.coef_: np.ndarray | None = None
        self.bounds_: np.ndarray | None = None

    @staticmethod
    def _design(X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (rows, features); got shape {X.shape}")
        return np.column_stack([np.ones(X.shape[0]), X])

    def fit(self, X: Any, y: Any) -> "LogScaleRegression":
        A = self._design(X)
        Y = np.asarray(y, dtype=np.float64)
        if Y.ndim not in (1, 2) or Y.shape[0] != A.shape[0]:
            raise ValueError(f"y must have shape ({A.shape[0]},) or ({A.shape[0]}, n_outputs); got {Y.shape}")
        Y = Y.reshape(A.shape[0], -1)
        coefs, bounds = [], []
        for j in range(Y.shape[1]):
            moved = Y[:, j] != 0
            if moved.sum() <= A.shape[1]:
                raise ValueError(f"LogScaleRegression needs more rows with a non-zero target than coefficients "
                                 f"({A.shape[1]}); got {int(moved.sum())} (output {j})")
            coef = np.linalg.lstsq(A[moved], np.log(np.abs(Y[moved, j])), rcond=None)[0]
            fitted = A @ coef
            coefs.append(coef)
            bounds.append((fitted.min(), fitted.max()))
        self.coef_, self.bounds_ = np.column_stack(coefs), np.array(bounds)
        return self

    def scale(self, X: Any) -> np.ndarray:
        """The forecast ``σ̂(x)`` of each row (up to the shocks' constant), shape ``(n, n_outputs)``."""
        if self.coef_ is None:
            raise RuntimeError("LogScaleRegression is not fitted yet: call fit() or load a fitted state first")
        A = self._design(X)
        if A.shape[1] != self.coef_.shape[0]:
            raise ValueError(f"X must have {self.coef_.shape[0] - 1} columns; got {A.shape[1] - 1}")
        return np.exp(np.clip(A @ self.coef_, self.bounds_[:, 0], self.bounds_[:, 1]))

    def state(self) -> dict[str, Any]:
        """The fitted numbers as JSON values (floats round-trip exactly)."""
        return {"coef": self.coef_.tolist(), "bounds": self.bounds_.tolist()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "LogScaleRegression":
        out = cls()
        out.coef_, out.bounds_ = np.array(state["coef"]), np.array(state["bounds"])
        return out
