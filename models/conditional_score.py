"""``ConditionalScoreModel``: a :class:`~btdensity.models.score.ScoreModel` of the joint density of a state ``x`` and
targets ``r`` (its last ``n_targets`` features), read as the conditional law ``p(r | x)``.

Since ``∇_r log p(x, r) = ∇_r log p(r | x)``, the score's target components are the conditional score. Two ways
to use it, the state held fixed in both:

* :meth:`conditional_sample` -- annealed Langevin dynamics over the targets only (Song & Ermon 2019, as in
  inpainting), then one Tweedie denoising step: draws of ``r | x`` of any dimension;
* :meth:`conditional_log_density` -- one target: the score integrated along a grid of ``r`` (trapezoid), the
  log-density of ``r | x`` up to a constant per row, from which quantiles and shortfalls follow without sampling.

Both read the model at ``sigma_min``: the density learnt is the data's blurred by that noise (standardised units).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .checks import check_array
from .score import ScoreModel

__all__ = ["ConditionalScoreModel"]

#: rows x draws (or x grid points) evaluated in one pass
_CHUNK_ELEMENTS = 1 << 15
#: ``target_grid`` leaves out this share of the fit rows' targets on either side
_RANGE_TAIL = 0.001


class ConditionalScoreModel(ScoreModel):
    """Score model of ``(x, r)`` with ``n_targets`` targets last, sampled and integrated with ``x`` held fixed.

    >>> rng = np.random.default_rng(0); x = rng.normal(size=(400, 1)); r = x + 0.5 * rng.normal(size=(400, 1))
    >>> model = ConditionalScoreModel(2, hidden=16, n_blocks=1, langevin_steps=5).fit(np.hstack([x, r]), epochs=2)
    >>> model.conditional_sample(x[:3], 4).shape, model.conditional_log_density(x[:3], np.linspace(-3, 3, 7)).shape
    ((3, 4, 1), (3, 7))
    """

    def __init__(self, n_features: int, n_targets: int = 1, **kwargs: Any):
        if not isinstance(n_targets, (int, np.integer)) or not 1 <= n_targets < n_features:
            raise ValueError(f"n_targets must be an integer in [1, n_features); got {n_targets!r}")
        super().__init__(n_features, **kwargs)
        self.hyper["n_targets"] = int(n_targets)
        self.n_targets = int(n_targets)
        self.target_range_: np.ndarray | None = None   # (2, n_targets): the fit rows' 0.1 % and 99.9 % quantiles

    def fit(self, X: Any, X_val: Any = None, **fit_kwargs: Any) -> "ConditionalScoreModel":
        """Fit the score of the joint rows ``X`` (state, then targets); also records the range of the targets that
        holds all but their most extreme 0.1 % on either side (``target_range_``)."""
        super().fit(X, X_val, **fit_kwargs)
        targets = check_array(X, self.n_features, "X", dtype=np.float64)[:, -self.n_targets:]
        self.target_range_ = np.quantile(targets, [_RANGE_TAIL, 1.0 - _RANGE_TAIL], axis=0)
        return self

    def _extra_state(self) -> dict[str, torch.Tensor]:
        return {"target_range": torch.as_tensor(self.target_range_)}

    def _load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        self.target_range_ = state["target_range"].cpu().numpy()

    def target_grid(self, points: int) -> np.ndarray:
        """``points`` evenly spaced values of the (one) target over ``target_range_``. A score network learns little
        where the fit rows are sparse and extrapolates at random beyond them (measured: on Student-t(5) returns the
        integrated density rises again past the last few rows); read a conditional density inside this range. Mass
        beyond it is left out, so a shortfall far in the tail of a volatile state is understated."""
        self._require_fitted()
        return np.linspace(self.target_range_[0, 0], self.target_range_[1, 0], int(points))

    def _state(self, X: Any) -> np.ndarray:
        return check_array(X, self.n_features - self.n_targets, "X", dtype=np.float64)

    def _scaled_state(self, X: Any) -> torch.Tensor:
        """Standardised state rows (the first features of the joint scaler)."""
        self._require_fitted()
        k = self.n_features - self.n_targets
        Z = (self._state(X) - self.scaler.mean[:k]) / self.scaler.scale[:k]
        return torch.as_tensor(Z, device=self.device, dtype=self.dtype)

    def conditional_sample(self, X: Any, n_samples: int, seed: int | None = None) -> np.ndarray:
        """``n_samples`` draws of the targets given each state row of ``X`` (shape ``(n, n_features - n_targets)``):
        shape ``(n, n_samples, n_targets)``, raw units. Annealed Langevin over the model's noise levels moves the
        targets only; every row starts from the same draws and takes the same noise (common random numbers)."""
        self._require_fitted()
        if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer; got {n_samples!r}")
        k, m = self.n_features - self.n_targets, int(n_samples)
        C = self._scaled_state(X)
        sigmas = list(self.sigmas)
        rows = max(1, _CHUNK_ELEMENTS // m)
        parts = []
        for i in range(0, C.shape[0], rows):
            c = C[i:i + rows].repeat_interleave(m, dim=0)
            gen = torch.Generator(device=self.device).manual_seed(self.seed + 3 if seed is None else int(seed))
            with torch.no_grad():
                r = self._langevin_targets(c, m, sigmas, gen)
            parts.append(r.reshape(-1, m, self.n_targets))
        R = self._to_numpy(torch.cat(parts)) if parts else np.empty((0, m, self.n_targets))
        return R * self.scaler.scale[k:] + self.scaler.mean[k:]

    def _langevin_targets(self, c: torch.Tensor, m: int, sigmas: list[float], gen: torch.Generator) -> torch.Tensor:
        """Annealed Langevin over the targets of ``c.shape[0] // m`` states (``c``: each state repeated ``m`` times)
        with the states fixed, then a Tweedie step. The start and every step's noise are ``m`` draws shared by all
        states, so a state's draws do not depend on the states beside it."""
        h, k = self.hyper, self.n_features - self.n_targets
        n_states = c.shape[0] // m

        def shared(scale: float) -> torch.Tensor:
            draw = torch.randn(m, self.n_targets, generator=gen, device=self.device, dtype=self.dtype)
            return (scale * draw).repeat(n_states, 1)

        def score(r: torch.Tensor, sigma: float) -> torch.Tensor:
            return self._score_z(torch.cat([c, r], dim=1), sigma)[:, k:]

        r = shared(math.sqrt(1.0 + sigmas[0] ** 2))
        base = h["step_ratio"] * h["sigma_min"] ** 2
        for sigma in sigmas:   # step base * (sigma / sigma_min)^2 at each level, as annealed_langevin takes it
            step = base * (sigma / h["sigma_min"]) ** 2
            for _ in range(h["langevin_steps"]):
                r = r + step * score(r, float(sigma)) + shared(math.sqrt(2.0 * step))
        return r + h["sigma_min"] ** 2 * score(r, h["sigma_min"])

    def conditional_log_density(self, X: Any, grid: Any) -> np.ndarray:
        """``log p(r | x)`` up to a constant per row, for one target, at the increasing raw values ``grid`` (shape
        ``(G,)``): the trapezoid integral of the score's target component from the first grid point (0 there).
        Shape ``(n, G)``."""
        if self.n_targets != 1:
            raise ValueError(f"conditional_log_density needs one target; this model has n_targets={self.n_targets}")
        g = np.asarray(grid, dtype=np.float64)
        if g.ndim != 1 or g.size < 2 or not (np.diff(g) > 0).all():
            raise ValueError("grid must be a 1-D increasing array of at least 2 values")
        k = self.n_features - 1
        C = self._scaled_state(X)
        gz = torch.as_tensor((g - self.scaler.mean[k]) / self.scaler.scale[k], device=self.device, dtype=self.dtype)
        rows = max(1, _CHUNK_ELEMENTS // g.size)
        parts = []
        with torch.no_grad():
            for i in range(0, C.shape[0], rows):
                c = C[i:i + rows]
                joint = torch.cat([c.repeat_interleave(g.size, dim=0), gz.repeat(c.shape[0])[:, None]], dim=1)
                parts.append(self._score_z(joint)[:, k].reshape(c.shape[0], g.size))
        s = self._to_numpy(torch.cat(parts)) / self.scaler.scale[k] if parts else np.empty((0, g.size))
        steps = 0.5 * (s[:, 1:] + s[:, :-1]) * np.diff(g)
        return np.concatenate([np.zeros((s.shape[0], 1)), np.cumsum(steps, axis=1)], axis=1)
