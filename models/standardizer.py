"""Per-feature standardisation fitted on training data only, with the log-Jacobian densities need."""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["Standardizer"]


class Standardizer:
    """Per-feature affine scaling ``z = (x - mean) / scale`` fitted on training data only."""

    def __init__(self, mean: np.ndarray | None = None, scale: np.ndarray | None = None):
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.scale = None if scale is None else np.asarray(scale, dtype=np.float64)

    def fit(self, X: np.ndarray) -> "Standardizer":
        """Set ``mean`` and ``scale`` from the rows of ``X``; returns self."""
        X = np.asarray(X, dtype=np.float64)
        self.mean = X.mean(axis=0)
        std = X.std(axis=0)
        # A constant feature keeps scale 1 instead of dividing by zero.
        self.scale = np.where(std > 1e-12 * np.maximum(1.0, np.abs(self.mean)), std, 1.0)
        return self

    def transform(self, X: np.ndarray, dtype: type = np.float32) -> np.ndarray:
        """Standardised rows ``(X - mean) / scale`` (computed in float64, returned as ``dtype``)."""
        return ((np.asarray(X, dtype=np.float64) - self.mean) / self.scale).astype(dtype, copy=False)

    def inverse(self, Z: np.ndarray) -> np.ndarray:
        """Raw rows ``Z * scale + mean`` (float32)."""
        return (np.asarray(Z, dtype=np.float64) * self.scale + self.mean).astype(np.float32)

    @property
    def log_det(self) -> float:
        """log |dz/dx| of the transform: add it to a log-density in z-space to get one in x-space."""
        return float(-np.log(self.scale).sum())

    def state(self) -> dict[str, torch.Tensor]:
        """``mean`` and ``scale`` as tensors, for a checkpoint."""
        return {"mean": torch.as_tensor(self.mean), "scale": torch.as_tensor(self.scale)}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> "Standardizer":
        """The standardiser a checkpoint's :meth:`state` describes."""
        return cls(state["mean"].numpy(), state["scale"].numpy())
