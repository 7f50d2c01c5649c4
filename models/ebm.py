"""Energy-based model: an MLP energy ``E(x)`` trained by score matching, NCE or contrastive divergence.

The energy lives on standardised inputs ``z``; :meth:`EnergyModel.energy` reports it in the raw input
space's terms (``E_x(x) = E_z(z) − log|dz/dx|``), so that for ``method="nce"`` — whose log-partition
function is learned — ``−energy(x)`` is the log-density of the raw data. The other methods identify
the energy up to an additive constant.

The network is ``E(z) = MLP(z) + ½·κ·‖z‖²`` with a learned ``κ > 0``: smooth (SiLU) layers for the
shape and a Gaussian base term that keeps the energy confining far from the data, where an MLP alone
would extrapolate arbitrarily (it also keeps Langevin chains from drifting away).

Training methods:

* ``dsm`` — denoising score matching (Vincent 2011): the model's score ``−∇E`` at ``z + σε`` is
  regressed on ``−ε/σ``, with antithetic noise pairs ``±ε`` for a lower-variance loss; with ``n_noise_levels > 1`` each row draws ``σ`` from a geometric ladder
  between ``sigma`` and ``sigma_max`` and the loss is weighted by ``σ²``.
* ``ssm`` — sliced score matching, variance-reduced form (Song et al. 2019):
  ``vᵀ∇s(z)v + ½‖s(z)‖²`` with Rademacher projections ``v`` (``E[vvᵀ] = I``).
* ``nce`` — noise-contrastive estimation (Gutmann & Hyvärinen 2010) against a full-covariance
  Gaussian fitted to the training data, with a learned ``log Z``.
* ``cd`` — contrastive divergence with short-run Langevin chains kept in a replay buffer (a fraction
  re-initialised from the data-fitted Gaussian each step) and the energy regulariser
  ``α(E(x⁺)² + E(x⁻)²)`` (Du & Mordatch 2019). Its validation criterion is the held-out denoising
  score-matching loss, which, unlike the contrastive loss, is comparable from epoch to epoch.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .base import BaseModel
from .checks import check_array
from .langevin import energy_score, langevin

__all__ = ["METHODS", "EnergyModel", "ReplayBuffer", "check_hidden", "contrastive_loss", "mlp"]

METHODS = ("dsm", "ssm", "nce", "cd")


def mlp(n_in: int, hidden: Sequence[int], n_out: int) -> nn.Sequential:
    """A multilayer perceptron with SiLU activations (smooth, so score matching can differentiate it twice)."""
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [nn.Linear(width, h), nn.SiLU()]
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def check_hidden(hidden: Any) -> tuple[int, ...]:
    """Validate a tuple of hidden-layer widths."""
    try:
        widths = tuple(int(h) for h in hidden)
    except TypeError:
        raise ValueError(f"hidden must be a sequence of layer widths, e.g. (128, 64); got {hidden!r}") from None
    if not widths or min(widths) < 1:
        raise ValueError(f"hidden must hold at least one positive layer width; got {hidden!r}")
    return widths


def _inv_softplus(y: float) -> float:
    return math.log(math.expm1(y))


class _EnergyNet(nn.Module):
    """``E(z) = MLP(z) + ½·softplus(ρ)·‖z‖²``, plus a log-partition parameter (trained by NCE only)."""

    def __init__(self, n_features: int, hidden: tuple[int, ...], learn_log_z: bool):
        super().__init__()
        self.net = mlp(n_features, hidden, 1)
        self.tail = nn.Parameter(torch.tensor(_inv_softplus(1.0)))
        self.log_z = nn.Parameter(torch.zeros(()), requires_grad=learn_log_z)
        # NCE noise distribution N(noise_mean, L Lᵀ) in standardised space (set from the data).
        self.register_buffer("noise_mean", torch.zeros(n_features))
        self.register_buffer("noise_chol", torch.eye(n_features))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(-1) + 0.5 * F.softplus(self.tail) * z.pow(2).sum(-1)


def contrastive_loss(e_pos: torch.Tensor, e_neg: torch.Tensor, alpha: float) -> torch.Tensor:
    """Contrastive-divergence loss ``mean E(x⁺) − mean E(x⁻)`` plus ``α·mean(E(x⁺)² + E(x⁻)²)``."""
    return e_pos.mean() - e_neg.mean() + alpha * (e_pos.pow(2).mean() + e_neg.pow(2).mean())


class ReplayBuffer:
    """Persistent short-run Langevin chains for contrastive training (JEM and ``EnergyModel(method="cd")``).

    Each call draws ``n`` states from the buffer, replaces a ``reinit`` fraction by fresh draws of
    ``init``, runs ``n_steps`` of Langevin on the given energy and writes the states back.
    """

    def __init__(self, init: Callable[[int], torch.Tensor], size: int, reinit: float, n_steps: int,
                 step_size: float, temperature: float = 1.0, clamp: float | None = None):
        self.init = init
        self.states = init(size)
        self.reinit = reinit
        self.n_steps = n_steps
        self.step_size = step_size
        self.temperature = temperature
        self.clamp = clamp

    def negatives(self, energy_fn: Callable[[torch.Tensor], torch.Tensor], n: int) -> torch.Tensor:
        """Draw ``n`` negative samples (from torch's global RNG, which a fit seeds in a fork: reproducible)."""
        idx = torch.randint(self.states.shape[0], (n,), device=self.states.device)
        x = self.states[idx]
        fresh = torch.rand(n, device=x.device) < self.reinit
        if fresh.any():
            x[fresh] = self.init(int(fresh.sum()))
        x = langevin(energy_score(energy_fn), x, self.n_steps, self.step_size,
                     temperature=self.temperature, clamp=self.clamp)
        self.states[idx] = x
        return x


class EnergyModel(BaseModel):
    """MLP energy model ``E(x)`` (low = typical) trained by ``dsm``, ``ssm``, ``nce`` or ``cd``.

    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(400, 2))
    >>> m = EnergyModel(2, hidden=(16,), seed=0).fit(X, epochs=3)
    >>> m.energy(X[:3]).shape
    (3,)
    """

    fit_defaults = {"epochs": 200, "batch_size": 256, "lr": 2e-3, "patience": 20}

    def __init__(self, n_features: int, hidden: Sequence[int] = (128, 64), method: str = "dsm", *,
                 sigma: float = 0.2, sigma_max: float = 1.0, n_noise_levels: int = 1,
                 n_projections: int = 1, noise_ratio: int = 4,
                 buffer_size: int = 10_000, reinit: float = 0.05, cd_steps: int = 20,
                 cd_step_size: float = 0.01, cd_alpha: float = 0.1,
                 seed: int = 0, device: str | None = None):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}; got {method!r}")
        hidden = check_hidden(hidden)
        if not 0 < sigma <= sigma_max:
            raise ValueError(f"need 0 < sigma <= sigma_max; got sigma={sigma}, sigma_max={sigma_max}")
        for name, value in (("n_noise_levels", n_noise_levels), ("n_projections", n_projections),
                            ("noise_ratio", noise_ratio), ("buffer_size", buffer_size),
                            ("cd_steps", cd_steps)):
            if int(value) < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if not 0.0 <= reinit <= 1.0:
            raise ValueError(f"reinit must be a fraction in [0, 1]; got {reinit}")
        if cd_step_size <= 0 or cd_alpha < 0:
            raise ValueError(f"need cd_step_size > 0 and cd_alpha >= 0; got {cd_step_size}, {cd_alpha}")
        super().__init__(n_features, seed=seed, device=device, hidden=list(hidden), method=method,
                         sigma=float(sigma), sigma_max=float(sigma_max), n_noise_levels=int(n_noise_levels),
                         n_projections=int(n_projections), noise_ratio=int(noise_ratio),
                         buffer_size=int(buffer_size), reinit=float(reinit), cd_steps=int(cd_steps),
                         cd_step_size=float(cd_step_size), cd_alpha=float(cd_alpha))
        self.method = method
        self._val_needs_grad = method != "nce"
        n = int(n_noise_levels)
        levels = np.geomspace(sigma, sigma_max, n) if n > 1 else np.array([sigma])
        self._sigmas = torch.as_tensor(levels, dtype=torch.float32, device=self.device)
        self._buffer: ReplayBuffer | None = None

    # ----------------------------------------------------------------- model
    def _build(self) -> nn.Module:
        return _EnergyNet(self.n_features, tuple(self.hyper["hidden"]), learn_log_z=self.method == "nce")

    def _after_build(self, train: tuple[torch.Tensor, ...]) -> None:
        z = train[0]
        if self.method == "nce":
            cov = torch.cov(z.T).reshape(self.n_features, self.n_features)
            cov = cov + 1e-4 * torch.eye(self.n_features, device=z.device)
            self.module.noise_mean.copy_(z.mean(0))
            self.module.noise_chol.copy_(torch.linalg.cholesky(cov))
            # Start log Z at the value that makes E's Gaussian base term normalised.
            with torch.no_grad():
                self.module.log_z.fill_(0.5 * self.n_features * math.log(2 * math.pi))
        elif self.method == "cd":
            self._buffer = ReplayBuffer(
                lambda n: torch.randn(n, self.n_features, device=self.device), self.hyper["buffer_size"],
                self.hyper["reinit"], self.hyper["cd_steps"], self.hyper["cd_step_size"],
                clamp=float(z.abs().max()) + 1.0)

    def _score(self, z: torch.Tensor, create_graph: bool) -> torch.Tensor:
        """The model's score ``−∇_z E`` (differentiable w.r.t. the parameters when ``create_graph``)."""
        with torch.enable_grad():
            z = z if z.requires_grad else z.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.module(z).sum(), z, create_graph=create_graph)
        return -grad

    def _dsm_loss(self, z: torch.Tensor) -> torch.Tensor:
        sig = self._sigmas[torch.randint(len(self._sigmas), (z.shape[0],), device=z.device)][:, None]
        eps = torch.randn_like(z)
        # Antithetic pairs ±ε: the leading noise term σ·εᵀs(z) of the two halves cancels (lower variance).
        eps2, sig2 = torch.cat([eps, -eps]), torch.cat([sig, sig])
        score = self._score(torch.cat([z, z]) + sig2 * eps2, create_graph=self.module.training)
        return 0.5 * (sig2 * score + eps2).pow(2).sum(-1).mean()

    def _ssm_loss(self, z: torch.Tensor) -> torch.Tensor:
        z = z.repeat(self.hyper["n_projections"], 1).requires_grad_(True)
        with torch.enable_grad():
            (grad_e,) = torch.autograd.grad(self.module(z).sum(), z, create_graph=True)
            v = torch.randint_like(z, 2).mul_(2).sub_(1)  # Rademacher: the lowest-variance Hutchinson probe
            (hess_v,) = torch.autograd.grad((grad_e * v).sum(), z, create_graph=self.module.training)
        # score s = −∇E, so vᵀ(∇s)v = −vᵀHv and ‖s‖² = ‖∇E‖².
        return (-(v * hess_v).sum(-1) + 0.5 * grad_e.pow(2).sum(-1)).mean()

    def _noise_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        m = self.module
        diff = torch.linalg.solve_triangular(m.noise_chol, (z - m.noise_mean).T, upper=False).T
        log_det = torch.log(torch.diagonal(m.noise_chol)).sum()
        return -0.5 * diff.pow(2).sum(-1) - log_det - 0.5 * self.n_features * math.log(2 * math.pi)

    def _nce_loss(self, z: torch.Tensor) -> torch.Tensor:
        m, ratio = self.module, self.hyper["noise_ratio"]
        noise = m.noise_mean + torch.randn(z.shape[0] * ratio, self.n_features, device=z.device) @ m.noise_chol.T
        log_ratio = math.log(ratio)

        def logit(x: torch.Tensor) -> torch.Tensor:  # log p_model(x) − log(ν q(x))
            return -m(x) - m.log_z - self._noise_log_prob(x) - log_ratio

        return F.softplus(-logit(z)).mean() + ratio * F.softplus(logit(noise)).mean()

    def _cd_loss(self, z: torch.Tensor) -> torch.Tensor:
        neg = self._buffer.negatives(self.module, z.shape[0])
        return contrastive_loss(self.module(z), self.module(neg), self.hyper["cd_alpha"])

    def _loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return getattr(self, f"_{self.method}_loss")(batch[0])

    def _val_loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return self._dsm_loss(batch[0]) if self.method == "cd" else self._loss(batch)

    # ----------------------------------------------------------------- public API
    def fit(self, X: Any, X_val: Any = None, **fit_kwargs: Any) -> "EnergyModel":
        """Fit on rows of ``X`` (validation on ``X_val``, else a random ``val_fraction`` split).

        ``fit_kwargs``: ``epochs, batch_size, lr, weight_decay, grad_clip, val_fraction, patience, progress``.
        """
        X = check_array(X, self.n_features, "X", min_rows=2)
        val = None if X_val is None else [check_array(X_val, self.n_features, "X_val")]
        return self._fit_arrays([X], val, fit_kwargs)

    def _energy_z(self, z: torch.Tensor) -> torch.Tensor:
        return self.module(z) + self.module.log_z

    def energy(self, X: Any) -> np.ndarray:
        """Energy of each row (low = typical), in raw-input terms; one batched forward pass, no autograd."""
        Z = self._prepare(X)
        return self._to_numpy(self._batched(self._energy_z, Z)) - self.scaler.log_det

    def score(self, X: Any) -> np.ndarray:
        """The model's score ``∇ₓ log p(x) = −∇ₓE(x)`` in raw-input units, shape ``(n, n_features)``."""
        Z = self._prepare(X)
        s = self._batched(lambda z: self._score(z, create_graph=False), Z, grad=True)
        return self._to_numpy(s) / self.scaler.scale

    def sample(self, n: int, n_steps: int = 500, step_size: float = 0.01) -> np.ndarray:
        """Draw ``n`` rows by Langevin dynamics on the energy, started from the data-fitted Gaussian."""
        self._require_fitted()
        if int(n) < 1:
            raise ValueError(f"n must be a positive integer; got {n!r}")
        gen = self._generator(3)
        z0 = torch.randn(int(n), self.n_features, generator=gen, device=self.device, dtype=self.dtype)
        z = langevin(energy_score(self.module), z0, n_steps, step_size, generator=gen)
        return self.scaler.inverse(self._to_numpy(z)).astype(np.float64)
