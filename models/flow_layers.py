"""Invertible layers of a RealNVP flow: ActNorm and the affine coupling layer.

Every layer maps ``x → y`` and returns ``(y, log|det ∂y/∂x|)`` per row from ``forward``; ``inverse``
maps ``y → x`` exactly (up to float rounding).
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["ActNorm", "AffineCoupling"]


class ActNorm(nn.Module):
    """Per-feature affine map ``y = (x + bias) · exp(log_scale)`` (Kingma & Dhariwal 2018).

    :meth:`initialize` sets bias and scale from a batch so that the outputs have zero mean and unit
    variance per feature (data-dependent initialisation).
    """

    def __init__(self, n_features: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(n_features))
        self.log_scale = nn.Parameter(torch.zeros(n_features))

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """Set the parameters so that ``self(x)`` is standardised per feature."""
        std = x.std(dim=0, unbiased=False).clamp_min(1e-6)
        self.bias.copy_(-x.mean(dim=0))
        self.log_scale.copy_(-std.log())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = (x + self.bias) * self.log_scale.exp()
        return y, self.log_scale.sum().expand(x.shape[0])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * (-self.log_scale).exp() - self.bias


class AffineCoupling(nn.Module):
    """Affine coupling layer (Dinh et al. 2017) with a binary ``mask``.

    Features where ``mask`` is 1 pass through unchanged and condition an MLP that gives a log-scale
    ``s`` and a shift ``t`` for the others: ``y = x·m + (1 − m)·(x · exp(s) + t)``. The log-scale is
    bounded softly, ``s = b · tanh(s_raw / b)`` with ``b = scale_bound``, so no step can explode. The
    last linear layer starts at zero: a new coupling layer is the identity.
    """

    def __init__(self, mask: torch.Tensor, hidden: int, scale_bound: float = 3.0):
        super().__init__()
        n = mask.numel()
        self.register_buffer("mask", mask.to(torch.float32))
        self.register_buffer("free", 1.0 - self.mask)
        self.scale_bound = float(scale_bound)
        self.net = nn.Sequential(
            nn.Linear(n, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, 2 * n),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def _scale_shift(self, x_fixed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-scale (zero on the fixed features) and shift (to be masked by the caller)."""
        s_raw, t = self.net(x_fixed).chunk(2, dim=1)
        return self.scale_bound * torch.tanh(s_raw / self.scale_bound) * self.free, t

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x_fixed = x * self.mask
        s, t = self._scale_shift(x_fixed)
        return x_fixed + self.free * (x * s.exp() + t), s.sum(dim=1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        y_fixed = y * self.mask
        s, t = self._scale_shift(y_fixed)
        return y_fixed + self.free * (y - t) * (-s).exp()
