"""Langevin dynamics, the one sampler every energy and score model uses.

``x ← x + ε · s(x) + √(2ε) · τ · ξ`` with ``s = ∇ₓ log p`` (for an energy, ``s = −∇ₓE``),
``ξ ~ N(0, I)`` and temperature ``τ`` (1 for exact Langevin; < 1 for the short-run chains of
contrastive divergence). Annealed Langevin runs it over a decreasing sequence of noise levels.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

__all__ = ["annealed_langevin", "energy_score", "langevin"]

ScoreFn = Callable[[torch.Tensor], torch.Tensor]


def energy_score(energy_fn: Callable[[torch.Tensor], torch.Tensor]) -> ScoreFn:
    """The score ``−∇ₓE(x)`` of an energy function (summed over the batch, so rows stay independent)."""

    def score(x: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(energy_fn(x).sum(), x)
        return -grad

    return score


def langevin(score_fn: ScoreFn, x: torch.Tensor, n_steps: int, step_size: float, *,
             temperature: float = 1.0, generator: torch.Generator | None = None,
             clamp: float | None = None) -> torch.Tensor:
    """Run ``n_steps`` of Langevin dynamics from ``x``; return the final states (detached).

    ``clamp`` bounds the states to ``[-clamp, clamp]`` (in standardised units) after each step.
    """
    if n_steps < 0 or step_size <= 0:
        raise ValueError(f"need n_steps >= 0 and step_size > 0; got {n_steps}, {step_size}")
    x = x.detach().clone()
    noise_scale = math.sqrt(2.0 * step_size) * temperature
    for _ in range(n_steps):
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x = x + step_size * score_fn(x).detach() + noise_scale * noise
        if clamp is not None:
            x = x.clamp(-clamp, clamp)
    return x


def annealed_langevin(score_fn: Callable[[torch.Tensor, int], torch.Tensor], x: torch.Tensor,
                      sigmas: Sequence[float], n_steps: int, step_lr: float, *,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Annealed Langevin dynamics (Song & Ermon 2019): for each noise level ``i`` (largest first),
    ``n_steps`` of Langevin with step ``step_lr · σᵢ² / σ_min²``; ``score_fn(x, i)`` is the score at level ``i``."""
    sigma_min = min(sigmas)
    for i, sigma in enumerate(sigmas):
        step = step_lr * (sigma / sigma_min) ** 2
        x = langevin(lambda z, i=i: score_fn(z, i), x, n_steps, step, generator=generator)
    return x
