"""Gaussian–Bernoulli restricted Boltzmann machine trained by CD-k or persistent CD.

On standardised inputs ``v`` with binary hidden units ``h`` and learned visible scales ``σ``
(``u = v / σ`` elementwise):

``E(v, h) = ½‖(v − b)/σ‖² − cᵀh − uᵀWh``,  free energy ``F(v) = ½‖(v − b)/σ‖² − Σⱼ softplus(cⱼ + (uᵀW)ⱼ)``,

``p(h = 1 | v) = sigmoid(c + uᵀW)``, ``p(v | h) = N(b + σ ⊙ Wh, diag σ²)``. Integrating ``v`` out in closed
form, ``log Z = Σᵢ log σᵢ + (d/2)·log 2π + logsumexp_h [cᵀh + ½‖b/σ + Wh‖² − ½‖b/σ‖²]``, exact by
enumeration for up to
:data:`MAX_EXACT_HIDDEN` hidden units. Energies are reported in raw-input terms (``F − log|dz/dx|``).
Early stopping uses the held-out Hyvärinen score-matching loss ``½‖∇F‖² − ΔF`` (analytic, free of
``log Z``), since the contrastive loss is not comparable between epochs.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .base import BaseModel
from .checks import check_array

__all__ = ["GaussianRBM", "MAX_EXACT_HIDDEN"]

#: the exact log-partition function enumerates 2**n_hidden hidden states
MAX_EXACT_HIDDEN = 20


class _RBM(nn.Module):
    def __init__(self, n_visible: int, n_hidden: int):
        super().__init__()
        self.W = nn.Parameter(torch.randn(n_visible, n_hidden) / math.sqrt(n_visible))
        self.b = nn.Parameter(torch.zeros(n_visible))
        self.c = nn.Parameter(torch.zeros(n_hidden))
        self.log_sigma = nn.Parameter(torch.zeros(n_visible))

    def hidden_logits(self, v: torch.Tensor) -> torch.Tensor:
        return self.c + (v / self.log_sigma.exp()) @ self.W

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        sigma = self.log_sigma.exp()
        return (0.5 * ((v - self.b) / sigma).pow(2).sum(-1)
                - F.softplus(self.hidden_logits(v)).sum(-1))

    def gibbs(self, v: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``k`` alternating Gibbs sweeps v → h → v; returns the last visible sample (detached)."""
        with torch.no_grad():
            sigma = self.log_sigma.exp()
            for _ in range(k):
                p_h = torch.sigmoid(self.hidden_logits(v))
                h = (torch.rand(p_h.shape, generator=generator, device=v.device) < p_h).to(v.dtype)
                noise = torch.randn(v.shape, generator=generator, device=v.device)
                v = self.b + sigma * (h @ self.W.T + noise)
        return v

    def score_matching_loss(self, v: torch.Tensor) -> torch.Tensor:
        """Hyvärinen's ``½‖∇F(v)‖² − ΔF(v)`` (mean over rows), with analytic derivatives."""
        inv_var = torch.exp(-2 * self.log_sigma)
        p = torch.sigmoid(self.hidden_logits(v))
        grad = (v - self.b) * inv_var - (p @ self.W.T) / self.log_sigma.exp()
        laplacian = inv_var.sum() - (p * (1 - p)) @ (self.W.pow(2) * inv_var[:, None]).sum(0)
        return (0.5 * grad.pow(2).sum(-1) - laplacian).mean()

    def log_partition(self, chunk: int = 1 << 14) -> torch.Tensor:
        n_hidden = self.c.shape[0]
        parts = []
        with torch.no_grad():
            b_scaled = self.b / self.log_sigma.exp()
            b_sq = 0.5 * b_scaled.pow(2).sum()
            for start in range(0, 1 << n_hidden, chunk):
                codes = torch.arange(start, min(start + chunk, 1 << n_hidden), device=self.c.device)
                h = ((codes[:, None] >> torch.arange(n_hidden, device=codes.device)) & 1).to(self.c.dtype)
                parts.append(h @ self.c + 0.5 * (b_scaled + h @ self.W.T).pow(2).sum(-1) - b_sq)
            return (torch.logsumexp(torch.cat(parts), 0) + self.log_sigma.sum()
                    + 0.5 * self.b.shape[0] * math.log(2 * math.pi))


class GaussianRBM(BaseModel):
    """Gaussian-visible, Bernoulli-hidden RBM; ``energy(X)`` is the free energy (low = typical).

    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(300, 3))
    >>> m = GaussianRBM(3, n_hidden=4, seed=0).fit(X, epochs=3)
    >>> m.transform(X[:2]).shape, bool(np.isfinite(m.log_prob(X[:2])).all())
    ((2, 4), True)
    """

    fit_defaults = {"epochs": 100, "batch_size": 64, "lr": 1e-2, "weight_decay": 1e-4, "patience": 15}

    def __init__(self, n_features: int, n_hidden: int = 16, method: str = "cd", *, k: int = 1,
                 n_chains: int = 256, seed: int = 0, device: str | None = None):
        if method not in ("cd", "pcd"):
            raise ValueError(f"method must be 'cd' (CD-k) or 'pcd' (persistent CD); got {method!r}")
        for name, value in (("n_hidden", n_hidden), ("k", k), ("n_chains", n_chains)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        super().__init__(n_features, seed=seed, device=device, n_hidden=int(n_hidden), method=method,
                         k=int(k), n_chains=int(n_chains))
        self.n_hidden = int(n_hidden)
        self._chains: torch.Tensor | None = None

    def _build(self) -> nn.Module:
        return _RBM(self.n_features, self.n_hidden)

    def _after_build(self, train: tuple[torch.Tensor, ...]) -> None:
        if self.hyper["method"] == "pcd":
            self._chains = torch.randn(self.hyper["n_chains"], self.n_features, device=self.device)

    def _loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        v = batch[0]
        k = self.hyper["k"]
        if self._chains is not None:
            self._chains = self.module.gibbs(self._chains, k)
            neg = self._chains
        else:
            neg = self.module.gibbs(v, k)
        return self.module.free_energy(v).mean() - self.module.free_energy(neg).mean()

    def _val_loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return self.module.score_matching_loss(batch[0])

    def fit(self, X: Any, X_val: Any = None, **fit_kwargs: Any) -> "GaussianRBM":
        """Fit by CD-k / PCD on rows of ``X`` (early stopping on ``X_val`` or a random split)."""
        X = check_array(X, self.n_features, "X", min_rows=2)
        val = None if X_val is None else [check_array(X_val, self.n_features, "X_val")]
        return self._fit_arrays([X], val, fit_kwargs)

    def free_energy(self, X: Any) -> np.ndarray:
        """Exact free energy ``−log Σ_h exp(−E(v, h))`` of each row, in raw-input terms."""
        Z = self._prepare(X)
        return self._to_numpy(self._batched(self.module.free_energy, Z)) - self.scaler.log_det

    def energy(self, X: Any) -> np.ndarray:
        """The free energy (low = typical)."""
        return self.free_energy(X)

    def log_partition(self) -> float:
        """Exact ``log Z`` of the standardised-space model (needs ``n_hidden <= MAX_EXACT_HIDDEN``)."""
        self._require_fitted()
        if self.n_hidden > MAX_EXACT_HIDDEN:
            raise ValueError(f"the exact log-partition enumerates 2**n_hidden states; n_hidden={self.n_hidden} "
                             f"exceeds {MAX_EXACT_HIDDEN}")
        return float(self.module.log_partition())

    def log_prob(self, X: Any) -> np.ndarray:
        """Exact log-density of each row in the raw input space (``n_hidden <= MAX_EXACT_HIDDEN``)."""
        log_z = self.log_partition()
        return -self.free_energy(X) - log_z

    def transform(self, X: Any) -> np.ndarray:
        """Hidden-unit probabilities ``p(h = 1 | x)``, shape ``(n, n_hidden)``."""
        Z = self._prepare(X)
        return self._to_numpy(self._batched(lambda v: torch.sigmoid(self.module.hidden_logits(v)), Z))

    def sample(self, n: int, n_steps: int = 1000) -> np.ndarray:
        """Draw ``n`` rows by ``n_steps`` Gibbs sweeps from standard-normal starts (deterministic per seed)."""
        self._require_fitted()
        if int(n) < 1 or int(n_steps) < 1:
            raise ValueError(f"n and n_steps must be positive integers; got {n!r}, {n_steps!r}")
        gen = self._generator(3)
        v0 = torch.randn(int(n), self.n_features, generator=gen, device=self.device, dtype=self.dtype)
        v = self.module.gibbs(v0, int(n_steps), generator=gen)
        return self.scaler.inverse(self._to_numpy(v)).astype(np.float64)
