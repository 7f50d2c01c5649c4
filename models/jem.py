"""Joint energy-based classifier (JEM, Grathwohl et al. 2020) and the expected calibration error.

The logits ``f(z)`` of an MLP define ``p(y | x) = softmax(f(z))`` and the energy
``E(x) = −logsumexp_y f_y(z)``. The logits carry a class-independent Gaussian term ``−½·κ·‖z‖²``
(learned ``κ > 0``): it leaves ``p(y | x)`` unchanged and keeps the energy confining far from the data,
where a plain classifier's logits grow and would make distant points look typical.

Training minimises the cross-entropy plus, when ``generative_weight > 0``, the contrastive term of
``log p(x)`` with negatives from short-run Langevin chains kept in a replay buffer (SGLD, shared with
``EnergyModel(method="cd")``) and an energy regulariser. :meth:`JointEnergyClassifier.energy` is
reported in raw-input terms (``E_z − log|dz/dx|``), up to the unknown log-partition constant.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .base import BaseModel
from .checks import check_array
from .ebm import ReplayBuffer, check_hidden, contrastive_loss, mlp

__all__ = ["JointEnergyClassifier", "check_labels", "expected_calibration_error"]


def check_labels(y: Any, n_rows: int, n_classes: int, name: str = "y") -> np.ndarray:
    """Return class labels as int64 in ``[0, n_classes)``, or raise ValueError naming the problem."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class labels; got shape {arr.shape}")
    if arr.shape[0] != n_rows:
        raise ValueError(f"{name} has {arr.shape[0]} labels but X has {n_rows} rows")
    if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
        raise ValueError(f"{name} must hold integer class labels 0..{n_classes - 1} (no NaN)")
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        raise ValueError(f"{name} holds labels outside 0..{n_classes - 1} (n_classes={n_classes}): "
                         f"min {arr.min()}, max {arr.max()}")
    return arr.astype(np.int64)


def expected_calibration_error(proba: Any, y: Any, n_bins: int = 10) -> float:
    """Expected calibration error: ``Σ_b (n_b / n)·|accuracy_b − confidence_b|`` over equal-width bins
    of the top-class probability (a confidence of exactly 1 falls in the last bin).

    >>> round(expected_calibration_error([[0.9, 0.1], [0.3, 0.7]], [0, 0], n_bins=10), 6)
    0.4
    """
    check_array(proba, name="proba")  # shape and finiteness; the binning itself runs in float64
    P = np.asarray(proba, dtype=np.float64)
    labels = check_labels(y, P.shape[0], P.shape[1])
    if n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer; got {n_bins}")
    conf = P.max(axis=1)
    correct = (P.argmax(axis=1) == labels).astype(np.float64)
    bins = np.minimum((conf * n_bins).astype(np.int64), n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        mask = bins == b
        total += mask.sum() * abs(correct[mask].mean() - conf[mask].mean())
    return float(total / len(conf))


class _LogitNet(nn.Module):
    """Logits ``MLP(z) − ½·softplus(ρ)·‖z‖²`` (the shared term cancels in the softmax)."""

    def __init__(self, n_features: int, n_classes: int, hidden: tuple[int, ...]):
        super().__init__()
        self.net = mlp(n_features, hidden, n_classes)
        self.tail = nn.Parameter(torch.tensor(math.log(math.expm1(1.0))))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z) - 0.5 * F.softplus(self.tail) * z.pow(2).sum(-1, keepdim=True)

    def energy(self, z: torch.Tensor) -> torch.Tensor:
        return -torch.logsumexp(self(z), dim=-1)


class JointEnergyClassifier(BaseModel):
    """JEM: a classifier whose logits also define an energy ``E(x) = −logsumexp(logits)`` (low = typical).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(-2, 1, (200, 2)), rng.normal(2, 1, (200, 2))]
    >>> y = np.r_[np.zeros(200), np.ones(200)]
    >>> m = JointEnergyClassifier(2, 2, hidden=(16,), seed=0).fit(X, y, epochs=5)
    >>> m.predict_proba(X[:2]).shape, m.predict(X[:2]).dtype
    ((2, 2), dtype('int64'))
    """

    fit_defaults = {"epochs": 100, "batch_size": 128, "lr": 2e-3, "patience": 15}

    def __init__(self, n_features: int, n_classes: int, hidden: Sequence[int] = (128, 64), *,
                 generative_weight: float = 1.0, buffer_size: int = 10_000, reinit: float = 0.05,
                 sgld_steps: int = 20, sgld_step_size: float = 0.01, energy_alpha: float = 0.1,
                 seed: int = 0, device: str | None = None):
        if not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
            raise ValueError(f"n_classes must be an integer >= 2; got {n_classes!r}")
        hidden = check_hidden(hidden)
        if generative_weight < 0 or energy_alpha < 0 or sgld_step_size <= 0:
            raise ValueError("need generative_weight >= 0, energy_alpha >= 0 and sgld_step_size > 0; got "
                             f"{generative_weight}, {energy_alpha}, {sgld_step_size}")
        if int(buffer_size) < 1 or int(sgld_steps) < 1 or not 0.0 <= reinit <= 1.0:
            raise ValueError("need buffer_size >= 1, sgld_steps >= 1 and reinit in [0, 1]; got "
                             f"{buffer_size}, {sgld_steps}, {reinit}")
        super().__init__(n_features, seed=seed, device=device, n_classes=int(n_classes), hidden=list(hidden),
                         generative_weight=float(generative_weight), buffer_size=int(buffer_size),
                         reinit=float(reinit), sgld_steps=int(sgld_steps),
                         sgld_step_size=float(sgld_step_size), energy_alpha=float(energy_alpha))
        self.n_classes = int(n_classes)
        self._buffer: ReplayBuffer | None = None

    def _build(self) -> nn.Module:
        return _LogitNet(self.n_features, self.n_classes, tuple(self.hyper["hidden"]))

    def _after_build(self, train: tuple[torch.Tensor, ...]) -> None:
        if self.hyper["generative_weight"] > 0:
            h = self.hyper
            self._buffer = ReplayBuffer(
                lambda n: torch.randn(n, self.n_features, device=self.device), h["buffer_size"], h["reinit"],
                h["sgld_steps"], h["sgld_step_size"], clamp=float(train[0].abs().max()) + 1.0)

    def _loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        z, y = batch
        logits = self.module(z)
        loss = F.cross_entropy(logits, y)
        if self._buffer is not None and self.module.training:
            neg = self._buffer.negatives(self.module.energy, z.shape[0])
            e_pos = -torch.logsumexp(logits, dim=-1)
            loss = loss + self.hyper["generative_weight"] * contrastive_loss(
                e_pos, self.module.energy(neg), self.hyper["energy_alpha"])
        return loss

    def fit(self, X: Any, y: Any, X_val: Any = None, y_val: Any = None, **fit_kwargs: Any) -> "JointEnergyClassifier":
        """Fit on ``X`` with labels ``y`` in ``0..n_classes−1``; early stopping on the validation cross-entropy."""
        X = check_array(X, self.n_features, "X", min_rows=2)
        y = check_labels(y, X.shape[0], self.n_classes)
        val = None
        if (X_val is None) != (y_val is None):
            raise ValueError("give both X_val and y_val, or neither")
        if X_val is not None:
            X_val = check_array(X_val, self.n_features, "X_val")
            val = [X_val, check_labels(y_val, X_val.shape[0], self.n_classes, "y_val")]
        return self._fit_arrays([X, y], val, fit_kwargs)

    def proba_and_energy(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(predict_proba(X), energy(X))`` from one forward pass."""
        Z = self._prepare(X)

        def both(z: torch.Tensor) -> torch.Tensor:
            logits = self.module(z)
            lse = torch.logsumexp(logits, dim=-1, keepdim=True)
            # softmax, not exp(logits − lse): far from the data the shared −½κ‖z‖² term makes the logits
            # hundreds of units large and exp(logits − lse) then sums to 1 only within ~1e-5 in float32.
            return torch.cat([torch.softmax(logits, dim=-1), -lse], dim=-1)

        out = self._to_numpy(self._batched(both, Z))
        return out[:, :-1], out[:, -1] - self.scaler.log_det

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``p(y | x)``, shape ``(n, n_classes)``."""
        return self.proba_and_energy(X)[0]

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row (int64)."""
        return self.predict_proba(X).argmax(axis=1).astype(np.int64)

    def energy(self, X: Any) -> np.ndarray:
        """``−logsumexp(logits)`` in raw-input terms (low = typical); one batched forward pass."""
        return self.proba_and_energy(X)[1]
