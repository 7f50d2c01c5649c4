"""Noise-conditional score model (Song & Ermon 2019) of market features.

A residual MLP ``s(x, σ)`` conditioned on an embedding of ``log σ`` estimates ``∇ₓ log p_σ(x)``, the
score of the data blurred by Gaussian noise of scale ``σ``, for every ``σ`` in ``[sigma_min, sigma_max]``
(standardised units). It is trained by denoising score matching with the ``σ²`` weighting and
antithetic noise pairs (or, optionally, sliced score matching on the noisy data); half of each batch
is at ``sigma_min`` (where ``score``, ``log_prob`` and ``denoise`` are evaluated), the other half at
``σ`` drawn log-uniformly. Validation scores every held-out row at every annealing level.

``score(X)`` is the score at ``sigma_min`` in the raw input space (chain rule through the
standardisation); ``sample`` runs annealed Langevin dynamics over ``n_noise_levels`` geometric levels
and finishes with one Tweedie denoising step; ``log_prob`` integrates, at each row, the change of the
log-density along the noise scale (heat equation) from a Gaussian at ``sigma_max`` down to ``sigma_min``
(accuracy measured by a test against an analytic density).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .base import BaseModel
from .checks import check_array
from .langevin import annealed_langevin

__all__ = ["ScoreModel"]

_METHODS = ("dsm", "ssm")


class _ResidualBlock(nn.Module):
    """``h + W₂ · SiLU(W₁ · SiLU(LayerNorm(h) + e))`` with ``e`` the noise-level embedding."""

    def __init__(self, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.lin1 = nn.Linear(hidden, hidden)
        self.lin2 = nn.Linear(hidden, hidden)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        u = nn.functional.silu(self.norm(h) + emb)
        return h + self.lin2(nn.functional.silu(self.lin1(u)))


class _ScoreNet(nn.Module):
    """``s(x, σ) = −x / (1 + σ²) + f(x / √(1 + σ²), log σ) / σ``.

    The first term is the score of a standard normal blurred by ``σ`` (standardised data), so the
    network learns only the departure from it; the input scaling keeps the network's inputs at unit
    variance at every noise level and the ``1/σ`` output scaling matches the score's natural size.
    """

    def __init__(self, n_features: int, hidden: int, n_blocks: int, sigma_min: float, sigma_max: float,
                 n_frequencies: int = 8):
        super().__init__()
        self.log_min, self.log_max = math.log(sigma_min), math.log(sigma_max)
        self.register_buffer("freqs", math.pi * torch.arange(1, n_frequencies + 1, dtype=torch.float32))
        self.embed = nn.Sequential(nn.Linear(2 * n_frequencies + 1, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.inp = nn.Linear(n_features, hidden)
        self.blocks = nn.ModuleList(_ResidualBlock(hidden) for _ in range(n_blocks))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, n_features))
        nn.init.zeros_(self.out[-1].weight)  # a new network is the Gaussian score: the data must earn every departure
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Score at noise scale ``sigma`` (shape ``(n, 1)``) of standardised rows ``x``."""
        t = (sigma.log() - self.log_min) / (self.log_max - self.log_min)  # 0 at sigma_min, 1 at sigma_max
        angles = t * self.freqs
        emb = self.embed(torch.cat([t, angles.sin(), angles.cos()], dim=1))
        var = 1.0 + sigma * sigma  # variance of standardised rows blurred by sigma
        h = self.inp(x * var.rsqrt())
        for block in self.blocks:
            h = block(h, emb)
        return self.out(h) / sigma - x / var


class ScoreModel(BaseModel):
    """Noise-conditional score network with annealed Langevin sampling, Tweedie denoising and a log density
    integrated along the noise scale.

    ``sigma_min`` / ``sigma_max`` are in standardised units (the model standardises its inputs);
    ``sigma_max`` should exceed the distance between the modes of the standardised data.
    ``method``: ``"dsm"`` (denoising score matching) or ``"ssm"`` (sliced score matching).
    ``langevin_steps`` steps per noise level with step ``step_ratio · σᵢ²`` drive :meth:`sample`;
    ``path_nodes`` Gauss–Legendre nodes in ``log σ`` evaluate the noise-scale integral of :meth:`log_prob`.

    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(500, 2))
    >>> model = ScoreModel(2, hidden=16, n_blocks=1).fit(X, epochs=2)
    >>> model.score(X[:3]).shape
    (3, 2)
    """

    fit_defaults = {"epochs": 400, "patience": 40, "lr": 1e-3, "batch_size": 512}

    def __init__(self, n_features: int, n_noise_levels: int = 10, sigma_min: float = 0.1, sigma_max: float = 3.0,
                 hidden: int = 128, n_blocks: int = 3, method: str = "dsm", langevin_steps: int = 50,
                 step_ratio: float = 0.1, path_nodes: int = 12, *, seed: int = 0, device: str | None = None):
        for name, value in (("n_noise_levels", n_noise_levels), ("hidden", hidden), ("n_blocks", n_blocks),
                            ("langevin_steps", langevin_steps), ("path_nodes", path_nodes)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if n_noise_levels < 2:
            raise ValueError(f"n_noise_levels must be at least 2 (sigma_max down to sigma_min); got {n_noise_levels}")
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max; got sigma_min={sigma_min!r}, sigma_max={sigma_max!r}")
        if method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}; got {method!r}")
        if not 0 < step_ratio < 1:
            raise ValueError(f"step_ratio must be in (0, 1); got {step_ratio!r}")
        super().__init__(n_features, seed=seed, device=device, n_noise_levels=int(n_noise_levels),
                         sigma_min=float(sigma_min), sigma_max=float(sigma_max), hidden=int(hidden),
                         n_blocks=int(n_blocks), method=method, langevin_steps=int(langevin_steps),
                         step_ratio=float(step_ratio), path_nodes=int(path_nodes))
        self._val_needs_grad = method == "ssm"

    @property
    def sigmas(self) -> np.ndarray:
        """The annealing noise levels, largest first (standardised units)."""
        h = self.hyper
        return np.geomspace(h["sigma_max"], h["sigma_min"], h["n_noise_levels"])

    # ----------------------------------------------------------------- BaseModel hooks
    def _build(self) -> nn.Module:
        h = self.hyper
        return _ScoreNet(self.n_features, h["hidden"], h["n_blocks"], h["sigma_min"], h["sigma_max"])

    def _loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x = batch[0]
        log_min, log_max = math.log(self.hyper["sigma_min"]), math.log(self.hyper["sigma_max"])
        sigma = torch.exp(log_min + (log_max - log_min) * torch.rand(x.shape[0], 1, device=x.device))
        # half the rows at sigma_min, the level that score / log_prob / conditional_score / denoise use
        sigma[: x.shape[0] // 2] = self.hyper["sigma_min"]
        return self._matching_loss(x, sigma)

    def _val_loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Every validation row at every noise level: a low-variance early-stopping criterion."""
        x = batch[0]
        sigmas = torch.as_tensor(self.sigmas, dtype=x.dtype, device=x.device)
        return self._matching_loss(x.repeat(sigmas.numel(), 1), sigmas.repeat_interleave(x.shape[0])[:, None])

    def _matching_loss(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """σ²-weighted score-matching loss of rows ``x`` blurred with noise scales ``sigma`` (shape ``(n, 1)``)."""
        noise = torch.randn_like(x)
        if self.hyper["method"] == "dsm":
            # antithetic pairs (x + σε, x − σε): the first-order gradient noise, which swamps small σ, cancels
            x_noisy = torch.cat([x + sigma * noise, x - sigma * noise])
            target = torch.cat([noise, -noise])
            sigma = torch.cat([sigma, sigma])
            # σ²·‖s(x̃) − ∇log q(x̃|x)‖² with ∇log q = −ε/σ
            return 0.5 * (sigma * self.module(x_noisy, sigma) + target).pow(2).sum(dim=1).mean()
        # sliced score matching on the noisy data, σ²-weighted: σ²·(vᵀ∇ₓ(vᵀs) + ½‖s‖²)
        x_noisy = (x + sigma * noise).detach().requires_grad_(True)
        s = self.module(x_noisy, sigma)
        v = torch.randn_like(x)
        (grad_vs,) = torch.autograd.grad((s * v).sum(), x_noisy, create_graph=True)
        return (sigma.squeeze(1) ** 2 * ((grad_vs * v).sum(dim=1) + 0.5 * s.pow(2).sum(dim=1))).mean()

    # ----------------------------------------------------------------- helpers in standardised space
    def _score_z(self, z: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
        s = self.hyper["sigma_min"] if sigma is None else sigma
        return self.module(z, z.new_full((z.shape[0], 1), s))

    def _log_prob_z(self, z: torch.Tensor) -> torch.Tensor:
        """``log p_σmin(z)`` by integrating ``∂_σ log p_σ = σ(∇·s_σ + ‖s_σ‖²)`` (heat equation) over σ.

        ``log p_σmin(z) = log p_σmax(z) − ∫ σ²(∇·s_σ(z) + ‖s_σ(z)‖²) d log σ``, with ``p_σmax``
        taken as ``N(0, (1 + σ_max²) I)`` (standardised data blurred far beyond its spread) and
        Gauss–Legendre nodes in ``log σ``. The path stays at ``z``, where the score was trained,
        never crossing low-density gaps. The divergence is exact: one backward pass per feature.
        """
        h = self.hyper
        nodes, weights = np.polynomial.legendre.leggauss(h["path_nodes"])
        log_min, log_max = math.log(h["sigma_min"]), math.log(h["sigma_max"])
        sig = np.exp(log_min + (nodes + 1) / 2 * (log_max - log_min))
        w = torch.as_tensor(weights / 2 * (log_max - log_min) * sig ** 2, dtype=z.dtype, device=z.device)
        k, (n, d) = sig.size, z.shape
        sigma = torch.as_tensor(sig, dtype=z.dtype, device=z.device).repeat_interleave(n)[:, None]
        with torch.enable_grad():
            points = z.detach().repeat(k, 1).requires_grad_(True)
            s = self.module(points, sigma)
            div = sum(torch.autograd.grad(s[:, i].sum(), points, retain_graph=i < d - 1)[0][:, i] for i in range(d))
        integrand = (div + s.detach().pow(2).sum(dim=1)).reshape(k, n)
        prior_var = 1.0 + h["sigma_max"] ** 2
        log_prior = -0.5 * (z.pow(2).sum(dim=1) / prior_var + d * math.log(2 * math.pi * prior_var))
        return log_prior - (w[:, None] * integrand).sum(dim=0)

    # ----------------------------------------------------------------- public API
    def fit(self, X: Any, X_val: Any = None, **fit_kwargs: Any) -> "ScoreModel":
        """Fit the score network on ``X``; early stopping on ``X_val`` (or a random split of ``X``).

        ``fit_kwargs``: epochs, batch_size, lr, weight_decay, grad_clip, val_fraction, patience, progress.
        """
        X = check_array(X, self.n_features, "X", min_rows=2)
        val = None if X_val is None else [check_array(X_val, self.n_features, "X_val")]
        return self._fit_arrays([X], val, fit_kwargs)

    def score(self, X: Any) -> np.ndarray:
        """``∇ₓ log p(x)`` at the smallest noise level, in the raw input space; shape ``(n, n_features)``."""
        Z = self._prepare(X)
        return self._to_numpy(self._batched(self._score_z, Z)) / self.scaler.scale

    def conditional_score(self, X: Any, dims: int | Sequence[int]) -> np.ndarray:
        """The score's components along ``dims`` (raw space), shape ``(n, len(dims))``.

        Since ``∂/∂x_D log p(x) = ∂/∂x_D log p(x_D | x_rest)``, this is the score of the conditional
        density of the features ``dims`` given the others.
        """
        idx = np.atleast_1d(np.asarray(dims))
        if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"dims must be an integer or a non-empty sequence of integers; got {dims!r}")
        if idx.min() < -self.n_features or idx.max() >= self.n_features:
            raise ValueError(f"dims {idx.tolist()} out of range for n_features={self.n_features}")
        return self.score(X)[:, idx]

    def denoise(self, X: Any, sigma: float | None = None) -> np.ndarray:
        """Tweedie's posterior mean ``E[x | x̃] = x̃ + σ² ∇log p_σ(x̃)`` for rows blurred by noise ``sigma``
        (standardised units, default ``sigma_min``); returned in the raw input space."""
        s = self.hyper["sigma_min"] if sigma is None else float(sigma)
        if not self.hyper["sigma_min"] <= s <= self.hyper["sigma_max"]:
            raise ValueError(f"sigma must lie in [sigma_min, sigma_max] = "
                             f"[{self.hyper['sigma_min']}, {self.hyper['sigma_max']}]; got {sigma!r}")
        Z = self._prepare(X)
        D = self._batched(lambda z: z + s * s * self._score_z(z, s), Z)
        return self._to_numpy(D) * self.scaler.scale + self.scaler.mean

    def log_prob(self, X: Any) -> np.ndarray:
        """Log-density of the rows of ``X`` at the smallest noise level, raw input space, up to a constant.

        Integrates the score's change along the noise scale at each row (see ``_log_prob_z``): costs
        ``path_nodes`` forward passes and ``path_nodes × n_features`` backward passes per row.
        """
        Z = self._prepare(X)
        rows = max(1, 8192 // self.hyper["path_nodes"])
        return self._to_numpy(self._batched(self._log_prob_z, Z, batch=rows)) + self.scaler.log_det

    def energy(self, X: Any) -> np.ndarray:
        """``−log_prob(X)``, up to a constant: low on typical rows."""
        return -self.log_prob(X)

    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        """``n`` rows by annealed Langevin dynamics over the noise levels, then one denoising step."""
        self._require_fitted()
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive integer; got {n!r}")
        h = self.hyper
        sigmas = self.sigmas
        gen = torch.Generator(device=self.device).manual_seed(self.seed + 3 if seed is None else int(seed))
        z = torch.randn(int(n), self.n_features, generator=gen, device=self.device, dtype=self.dtype) * math.sqrt(1 + sigmas[0] ** 2)
        with torch.no_grad():
            z = annealed_langevin(lambda x, i: self._score_z(x, float(sigmas[i])), z, list(sigmas),
                                  h["langevin_steps"], h["step_ratio"] * h["sigma_min"] ** 2, generator=gen)
            z = z + h["sigma_min"] ** 2 * self._score_z(z)
        return self._to_numpy(z) * self.scaler.scale + self.scaler.mean
