"""RealNVP normalizing flow: an exact, fast density of market features.

The flow maps standardised inputs through ``n_layers`` steps of (ActNorm → affine coupling) to a
standard normal. Coupling masks come in complementary pairs: even/odd features for the first pair,
the even/odd positions of a fixed random permutation for each further pair, so that in three or more
dimensions every pair of features eventually conditions each other. ``log_prob`` is exact in the raw
input space: it adds the log-Jacobian of the standardisation to the flow's change of variables.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from .base import BaseModel
from .checks import check_array
from .flow_layers import ActNorm, AffineCoupling

__all__ = ["BASES", "RealNVP"]

_LOG_2PI = math.log(2.0 * math.pi)


def _standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    return -0.5 * (z.pow(2).sum(dim=1) + z.shape[1] * _LOG_2PI)


#: base distributions of the flow: a standard normal, or independent Student-t's with a learned df per dimension
BASES = ("normal", "studentt")


def _student_t_log_prob(z: torch.Tensor, df: torch.Tensor) -> torch.Tensor:
    """Sum over dimensions of the standard Student-t log density with ``df`` degrees of freedom (one per column)."""
    half = 0.5 * (df + 1.0)
    const = torch.lgamma(half) - torch.lgamma(0.5 * df) - 0.5 * torch.log(df * math.pi)
    return (const - half * torch.log1p(z.pow(2) / df)).sum(dim=1)


def _coupling_masks(n_features: int, n_layers: int, seed: int) -> list[torch.Tensor]:
    """Masks of the coupling layers: pairs of complementary masks, even/odd features for the first pair,
    then the even/odd split of a fixed random permutation of the features for each further pair (the same
    as permuting the features between pairs, without moving data)."""
    gen = torch.Generator().manual_seed(seed)
    masks = []
    for k in range(n_layers):
        if k % 2 == 0:
            order = torch.arange(n_features) if k == 0 else torch.randperm(n_features, generator=gen)
            first = torch.zeros(n_features, dtype=torch.bool)
            first[order[::2]] = True
        masks.append(first if k % 2 == 0 else ~first)
    return masks


class _FlowNet(nn.Module):
    """The invertible network ``x → z`` with its log-determinant."""

    def __init__(self, n_features: int, n_layers: int, hidden: int, scale_bound: float, seed: int,
                 base: str = "normal"):
        super().__init__()
        self.base = base
        if base == "studentt":   # df = 2 + softplus(raw), starting at 4 (heavy tails), learned from there
            self.raw_df = nn.Parameter(torch.full((n_features,), math.log(math.expm1(2.0))))
        self.actnorms = nn.ModuleList(ActNorm(n_features) for _ in range(n_layers))
        self.couplings = nn.ModuleList(
            AffineCoupling(mask, hidden, scale_bound) for mask in _coupling_masks(n_features, n_layers, seed))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_det = x.new_zeros(x.shape[0])
        for norm, coupling in zip(self.actnorms, self.couplings):
            x, ld_norm = norm(x)
            x, ld_coupling = coupling(x)
            log_det = log_det + ld_norm + ld_coupling
        return x, log_det

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        for norm, coupling in zip(reversed(self.actnorms), reversed(self.couplings)):
            z = norm.inverse(coupling.inverse(z))
        return z

    def df(self) -> torch.Tensor:
        """The Student-t base's degrees of freedom, one per dimension (above 2: a finite variance)."""
        return 2.0 + nn.functional.softplus(self.raw_df)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        z, log_det = self(x)
        if self.base == "studentt":
            return _student_t_log_prob(z, self.df()) + log_det
        return _standard_normal_log_prob(z) + log_det

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """Data-dependent ActNorm initialisation: pass ``x`` through, standardising before each coupling."""
        for norm, coupling in zip(self.actnorms, self.couplings):
            norm.initialize(x)
            x, _ = norm(x)
            x, _ = coupling(x)


class RealNVP(BaseModel):
    """RealNVP flow (Dinh et al. 2017) trained by maximum likelihood with early stopping.

    Parameters: ``n_layers`` coupling layers, each with an MLP of two hidden layers of width
    ``hidden``; ``scale_bound`` bounds each layer's log-scale (soft clamp ``b·tanh(s/b)``); ``base``: the latent
    distribution, ``"normal"`` or ``"studentt"`` (independent Student-t's, one learned df per dimension: heavy
    tails come from the base instead of being bent out of a normal by the coupling layers).
    ``fit`` records ``train_bpd`` / ``val_bpd`` (bits per dimension of the raw data) in ``history_``.

    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(500, 2))
    >>> flow = RealNVP(2, n_layers=2, hidden=16).fit(X, epochs=2)
    >>> flow.log_prob(X[:3]).shape
    (3,)
    """

    fit_defaults = {"epochs": 300, "patience": 30, "lr": 1e-3, "batch_size": 256}

    def __init__(self, n_features: int, n_layers: int = 8, hidden: int = 128, scale_bound: float = 3.0, *,
                 base: str = "normal", seed: int = 0, device: str | None = None):
        if base not in BASES:
            raise ValueError(f"base must be one of {BASES}; got {base!r}")
        if not isinstance(n_layers, (int, np.integer)) or n_layers < 1:
            raise ValueError(f"n_layers must be a positive integer; got {n_layers!r}")
        if not isinstance(hidden, (int, np.integer)) or hidden < 1:
            raise ValueError(f"hidden must be a positive integer; got {hidden!r}")
        if not scale_bound > 0:
            raise ValueError(f"scale_bound must be positive; got {scale_bound!r}")
        extra = {} if base == "normal" else {"base": base}   # (the configs, and cache keys, of normal flows as before)
        super().__init__(n_features, seed=seed, device=device, n_layers=int(n_layers), hidden=int(hidden),
                         scale_bound=float(scale_bound), **extra)

    # ----------------------------------------------------------------- BaseModel hooks
    def _build(self) -> nn.Module:
        h = self.hyper
        return _FlowNet(self.n_features, h["n_layers"], h["hidden"], h["scale_bound"], self.seed,
                        h.get("base", "normal"))

    def _after_build(self, train: tuple[torch.Tensor, ...]) -> None:
        self.module.initialize(train[0])

    def _loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return -self.module.log_prob(batch[0]).mean()

    # ----------------------------------------------------------------- public API
    def fit(self, X: Any, X_val: Any = None, **fit_kwargs: Any) -> "RealNVP":
        """Maximum-likelihood fit on ``X``; early stopping on ``X_val`` (or a random split of ``X``).

        ``fit_kwargs``: epochs, batch_size, lr, weight_decay, grad_clip, val_fraction, patience, progress.
        """
        X = check_array(X, self.n_features, "X", min_rows=2)
        val = None if X_val is None else [check_array(X_val, self.n_features, "X_val")]
        self._fit_arrays([X], val, fit_kwargs)
        # Losses are mean NLL of standardised rows; the raw-space NLL subtracts the standardisation's log-Jacobian.
        to_bpd = 1.0 / (self.n_features * math.log(2.0))
        for record in self.history_:
            for split in ("train", "val"):
                if f"{split}_loss" in record:
                    record[f"{split}_bpd"] = (record[f"{split}_loss"] - self.scaler.log_det) * to_bpd
        return self

    def log_prob(self, X: Any) -> np.ndarray:
        """Exact log-density of the rows of ``X`` in the raw input space (one forward pass)."""
        Z = self._prepare(X)
        return self._to_numpy(self._batched(self.module.log_prob, Z)) + self.scaler.log_det

    def energy(self, X: Any) -> np.ndarray:
        """``−log_prob(X)``: low on typical rows, high on rows unlike the training data."""
        return -self.log_prob(X)

    def transform(self, X: Any) -> np.ndarray:
        """Map raw rows to the flow's latent space (the base distribution on the training distribution)."""
        Z = self._prepare(X)
        return self._to_numpy(self._batched(lambda z: self.module(z)[0], Z))

    def inverse(self, Z: Any) -> np.ndarray:
        """Map latent rows back to the raw input space (the inverse of :meth:`transform`)."""
        self._require_fitted()
        Z = torch.as_tensor(check_array(Z, self.n_features, "Z"), device=self.device, dtype=self.dtype)
        U = self._to_numpy(self._batched(self.module.inverse, Z))
        return U * self.scaler.scale + self.scaler.mean

    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        """Draw ``n`` rows from the fitted density (deterministic for a given ``seed``, default the model's)."""
        self._require_fitted()
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive integer; got {n!r}")
        gen = torch.Generator(device=self.device).manual_seed(self.seed + 3 if seed is None else int(seed))
        if self.hyper.get("base", "normal") == "studentt":   # inverse CDF of uniforms from the same generator
            from scipy.special import stdtrit

            U = torch.rand(int(n), self.n_features, generator=gen, device=self.device, dtype=torch.float64)
            df = self.module.df().detach().to("cpu", torch.float64).numpy()
            return self.inverse(stdtrit(df, self._to_numpy(U).clip(1e-12, 1 - 1e-12)))
        Z = torch.randn(int(n), self.n_features, generator=gen, device=self.device, dtype=self.dtype)
        return self.inverse(self._to_numpy(Z))
