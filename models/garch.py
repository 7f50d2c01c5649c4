"""``GarchT``: GARCH(1,1) with Student-t errors and a constant mean, the classical risk forecast (fitted with the
``arch`` package), numpy in and out like the other models.

The model of a log-return series ``r_t``::

    r_t = mu + eps_t,    eps_t = sigma_t z_t,    z_t ~ Student-t(nu) scaled to unit variance,
    sigma2_{t+1} = omega + alpha eps_t^2 + beta sigma2_t.

Scaling: ``arch`` optimises best (and warns otherwise) when the data's scale is about 1 to 1000; hourly log returns
are ~1e-2 and minute ones ~1e-3, so ``fit`` divides the returns by their standard deviation (unit variance
whatever the bar length; a fixed factor of 100 would leave minute returns at ~0.1) and converts the estimates
back: ``omega`` and ``mu`` (and everything the model returns) are in the units of the returns given.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy.special import stdtrit

from .json_checkpoint import JsonStateModel

__all__ = ["GarchT"]

PARAM_NAMES = ("mu", "omega", "alpha", "beta", "nu")


class GarchT(JsonStateModel):
    """GARCH(1,1)-t with a constant mean. ``fit(returns)`` estimates ``mu, omega, alpha, beta, nu`` by maximum
    likelihood (``arch.arch_model(..., mean="Constant", vol="GARCH", p=1, q=1, dist="t")``, deterministic);
    ``forecast(windows, horizon)`` gives the mean and variance of the log return over the next ``horizon`` bars
    after each row of trailing returns.

    ``var0_`` (the fitted returns' variance around ``mu``) starts the variance recursion of a row; ``loglik_`` is
    the maximised log-likelihood of the returns in their own units, ``converged_`` the optimiser's verdict.

    >>> r = np.random.default_rng(0).standard_t(5, 2000) * 0.01
    >>> model = GarchT().fit(r)
    >>> mean, var = model.forecast(r[-500:], horizon=24)
    >>> model.converged_, mean.shape, bool(var[0] > 0)
    (True, (1,), True)
    """

    def __init__(self) -> None:
        self.mu_ = self.omega_ = self.alpha_ = self.beta_ = self.nu_ = self.var0_ = None
        self.loglik_: float | None = None
        self.n_obs_: int = 0
        self.converged_: bool = False
        self.meta_: dict[str, Any] = {}

    # ------------------------------------------------------------------ fitting
    def fit(self, returns: Any) -> "GarchT":
        """Fit on a 1-D series of log returns (non-finite entries dropped; at least 20, not all equal)."""
        r = np.asarray(returns, dtype=np.float64).ravel()
        r = r[np.isfinite(r)]
        if r.size < 20:
            raise ValueError(f"GarchT.fit needs at least 20 finite returns; got {r.size}")
        std = float(r.std())
        if not std > 0:
            raise ValueError("GarchT.fit needs returns that vary (their standard deviation is 0)")
        from arch import arch_model  # imported here: importing btdensity.models stays light

        scale = 1.0 / std
        with warnings.catch_warnings():  # convergence is reported by ``converged_``, not by a warning per fit
            warnings.simplefilter("ignore")
            res = arch_model(r * scale, mean="Constant", vol="GARCH", p=1, q=1, dist="t",
                             rescale=False).fit(disp="off", show_warning=False)
        p = res.params
        values = (p["mu"] / scale, p["omega"] / scale ** 2, p["alpha[1]"], p["beta[1]"], p["nu"])
        if not np.isfinite(values).all():
            raise ValueError(f"GarchT.fit found non-finite parameters {dict(zip(PARAM_NAMES, values))}")
        self._set(*(float(v) for v in values))
        self.var0_ = float(np.mean((r - self.mu_) ** 2))
        self.loglik_ = float(res.loglikelihood) + r.size * np.log(scale)   # density of r = density of r·s times s
        self.n_obs_ = int(r.size)
        self.converged_ = int(res.convergence_flag) == 0
        return self

    def _set(self, mu: float, omega: float, alpha: float, beta: float, nu: float) -> None:
        self.mu_, self.omega_, self.alpha_, self.beta_, self.nu_ = mu, omega, alpha, beta, nu

    @property
    def params_(self) -> dict[str, float]:
        """``{"mu", "omega", "alpha", "beta", "nu"}`` in the units of the fitted returns."""
        self._require_fitted()
        return {name: getattr(self, name + "_") for name in PARAM_NAMES}

    def _require_fitted(self) -> None:
        if self.nu_ is None:
            raise RuntimeError("GarchT is not fitted yet: call fit() or load() first")

    # ------------------------------------------------------------------ forecasting
    def one_step_variance(self, windows: Any) -> np.ndarray:
        """``sigma2_{t+1}`` after each row of ``windows`` (shape ``(n, m)``, or ``(m,)`` for one row): the
        recursion run along the row's ``m`` returns, oldest first, from ``var0_``.

        Unrolled, ``sigma2 = beta^m var0 + omega sum_{i<m} beta^i + alpha sum_j beta^(m-1-j) eps_j^2``: computed so,
        elementwise and summed along each row, a row's value is the same number in a batch of any shape. Returns
        older than the row would enter with weights ``alpha beta^(m+i)``: the row stands for the whole history up
        to a relative error of about ``beta^m`` (see ``truncation_weight``).
        """
        self._require_fitted()
        X = np.asarray(windows, dtype=np.float64)
        X = X.reshape(1, -1) if X.ndim == 1 else X
        m = X.shape[1]
        powers = self.beta_ ** np.arange(m, dtype=np.float64)       # beta^0 … beta^(m-1)
        eps2 = (X - self.mu_) ** 2
        constant = self.omega_ * powers.sum() + self.beta_ ** m * self.var0_
        return constant + (eps2 * (self.alpha_ * powers[::-1])).sum(axis=1)

    def forecast(self, windows: Any, horizon: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, variance)`` of the log return over the next ``horizon`` bars after each row of trailing returns:
        ``horizon · mu`` and the sum of the ``horizon`` one-step variance forecasts,
        ``sigma2_{t+i} = omega + (alpha + beta) sigma2_{t+i-1}`` for ``i >= 2`` (returns are uncorrelated)."""
        if int(horizon) < 1:
            raise ValueError(f"horizon must be at least 1; got {horizon}")
        step = self.one_step_variance(windows)
        total = step.copy()
        for _ in range(int(horizon) - 1):
            step = self.omega_ + (self.alpha_ + self.beta_) * step
            total += step
        return np.full(total.shape, int(horizon) * self.mu_), total

    def quantile_factor(self, level: float) -> float:
        """``q`` such that ``mean ± q·std`` is the central interval at ``level`` of a Student-t(``nu_``) of unit
        variance (the one-step predictive; for several steps a variance-matched approximation)."""
        self._require_fitted()
        if not 0.0 < level < 1.0:
            raise ValueError(f"level must be in (0, 1); got {level}")
        return float(stdtrit(self.nu_, 0.5 + level / 2.0) * np.sqrt((self.nu_ - 2.0) / self.nu_))

    def truncation_weight(self, memory: int) -> float:
        """``beta^memory``: the weight left on the start of a ``memory``-return recursion (and, times
        ``alpha / (1 - beta)``, on the returns before it)."""
        self._require_fitted()
        return float(self.beta_ ** int(memory))

    # ------------------------------------------------------------------ persistence
    def double(self) -> "GarchT":
        """Numpy evaluates in float64 already: returns the model."""
        self._require_fitted()
        return self

    def state(self) -> dict[str, Any]:
        """The parameters as JSON values (``save`` / ``load``: :class:`JsonStateModel`)."""
        return {**self.params_, "var0": self.var0_, "loglik": self.loglik_, "n_obs": self.n_obs_,
                "converged": self.converged_}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "GarchT":
        model = cls()
        model._set(*(float(state[name]) for name in PARAM_NAMES))
        model.var0_, model.loglik_ = float(state["var0"]), state["loglik"]
        model.n_obs_, model.converged_ = int(state["n_obs"]), bool(state["converged"])
        return model

    def __repr__(self) -> str:
        if self.nu_ is None:
            return "GarchT()"
        return "GarchT(" + ", ".join(f"{k}={v:.4g}" for k, v in self.params_.items()) + ")"
