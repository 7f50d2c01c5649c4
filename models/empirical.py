"""``EmpiricalSample``: a held-out sample of a statistic, kept as a model (what the model-free baselines fit).

A trailing realised-volatility gate or a momentum signal has nothing to estimate but the distribution of its
statistic in the calibration tail of the training window; as a model with ``fit`` / ``save`` / ``load`` it goes
through the same walk-forward schedule and model cache as the deep models.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .json_checkpoint import JsonStateModel

__all__ = ["EmpiricalSample"]


class EmpiricalSample(JsonStateModel):
    """The finite values given to ``fit``, in their order (``values_``, float64, read-only).

    >>> EmpiricalSample().fit([3.0, 1.0, np.nan, 2.0]).values_.tolist()
    [3.0, 1.0, 2.0]
    """

    def __init__(self) -> None:
        self.values_: np.ndarray | None = None
        self.meta_: dict[str, Any] = {}

    def fit(self, values: Any) -> "EmpiricalSample":
        """Keep the finite entries of ``values`` (at least one); returns the model."""
        v = np.asarray(values, dtype=np.float64).ravel()
        v = v[np.isfinite(v)]
        if v.size == 0:
            raise ValueError("EmpiricalSample.fit needs at least one finite value")
        v.flags.writeable = False
        self.values_ = v
        return self

    def _require_fitted(self) -> np.ndarray:
        if self.values_ is None:
            raise RuntimeError("EmpiricalSample is not fitted yet: call fit() or load() first")
        return self.values_

    def double(self) -> "EmpiricalSample":
        """Numpy evaluates in float64 already: returns the model."""
        self._require_fitted()
        return self

    def state(self) -> dict[str, Any]:
        """The sample as JSON values (``save`` / ``load``: :class:`JsonStateModel`)."""
        return {"values": self._require_fitted().tolist()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "EmpiricalSample":
        return cls().fit(state["values"])
