"""``MixtureBNN``: a :class:`~btdensity.models.bnn.BayesianNN` whose predictive is read as what it is, the mixture
over posterior draws of the likelihood's Student-t (or Gaussian) laws, not only its mean and standard deviation.

``predict`` summarises the predictive by its moments; a tail figure (a 99 % VaR) needs the law itself: each
posterior draw ``w`` gives ``loc_w(x)`` and ``scale_w(x)``, and ``p(r | x) = mean_w t_df(r; loc_w, scale_w)``.
:meth:`components` returns those, in the raw target's units, with the variance recalibration of ``predict`` applied
(the whole mixture stretched about its mean by ``sqrt(variance_scale_)``, which scales ``predict``'s std so).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .bnn import BayesianNN
from .bnn_network import mlp

__all__ = ["MixtureBNN"]


class MixtureBNN(BayesianNN):
    """:class:`BayesianNN` with its posterior predictive mixture exposed (``components``, ``sample``).

    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 1)); y = X[:, 0] + 0.1 * rng.normal(size=200)
    >>> bnn = MixtureBNN(1, hidden=(8,), kl_warmup=2, likelihood="studentt").fit(X, y, epochs=5)
    >>> loc, scale = bnn.components(X[:3], n_samples=10)
    >>> loc.shape, bool((scale > 0).all()), bnn.tail_df
    ((3, 10, 1), True, 5.0)
    """

    @property
    def tail_df(self) -> float:
        """Degrees of freedom of each component (``inf`` for the Gaussian likelihood)."""
        return math.inf if self.df is None else float(self.df)

    def components(self, X: Any, n_samples: int = 100) -> tuple[np.ndarray, np.ndarray]:
        """``(loc, scale)`` of the predictive's components for rows ``X``, each of shape ``(n, n_samples,
        n_outputs)``, raw units, recalibrated: the predictive is the equal mixture of ``loc + scale · T_df``.
        Uses ``n_samples`` (<= ``n_draws``) of the posterior draws taken at fit / load time, as ``predict`` does."""
        self._require_fitted()
        if not (isinstance(n_samples, (int, np.integer)) and 2 <= n_samples <= self.n_draws):
            raise ValueError(f"n_samples must be an integer in [2, n_draws={self.n_draws}]; got {n_samples!r}")
        Z = self._prepare(X)
        weights, biases = self._draw_subset(int(n_samples))
        with torch.no_grad():
            loc, scale = self.net.heads(mlp(Z, weights, biases, self.net.activation))   # (S, n, outputs)
        loc = loc.to("cpu", torch.float64).numpy().transpose(1, 0, 2)
        scale = scale.to("cpu", torch.float64).numpy().transpose(1, 0, 2)
        c = math.sqrt(self.variance_scale_)
        center = loc.mean(axis=1, keepdims=True)
        y_mean, y_scale = self.y_scaler.mean, self.y_scaler.scale
        spread = c * (loc - center) * y_scale
        if self.hyper.get("zero_mean"):   # the mixture centred at zero, as predict's mean
            return spread, c * scale * y_scale
        return center * y_scale + y_mean + spread, c * scale * y_scale

    def sample(self, X: Any, n_samples: int, n_draws: int = 100, seed: int | None = None) -> np.ndarray:
        """``n_samples`` draws of the targets given each row of ``X`` from the predictive mixture: shape ``(n,
        n_samples, n_outputs)``. Sample ``k`` takes posterior draw ``k mod n_draws`` and a noise draw shared by every
        row (common random numbers: deterministic, and a row's samples do not depend on the rows beside it)."""
        loc, scale = self.components(X, n_draws)
        gen = np.random.default_rng(self.seed + 3 if seed is None else int(seed))
        shape = (int(n_samples), self.n_outputs)
        noise = gen.standard_normal(shape) if self.df is None else gen.standard_t(self.df, shape)
        which = np.arange(int(n_samples)) % loc.shape[1]
        return loc[:, which] + scale[:, which] * noise
