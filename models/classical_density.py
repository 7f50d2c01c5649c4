"""Classical density baselines: a full-covariance Gaussian and a Gaussian mixture whose number of components is
chosen by BIC (scikit-learn's ``GaussianMixture``). numpy in, numpy out, like every model here.

Both standardise their inputs with the statistics of the fit rows (:class:`.Standardizer`) and fit in that
space, so the covariance ridge (``ridge`` / ``reg_covar``, 1e-6 by default, scikit-learn's own default) is
1e-6 of each feature's variance whatever the units: a feature measured in returns (variance ~1e-5) and one
in z-scores (variance ~1) are regularised alike. ``log_prob`` is the exact log-density in the raw input space
(the standardisation's log-Jacobian added back), the units of :meth:`RealNVP.log_prob`. A Gaussian is a one-
component mixture: both evaluate ``log Σ_k w_k N(z; μ_k, Σ_k)`` with the same code, from the Cholesky factors
of the precisions (as scikit-learn's ``score_samples`` does).

Files are JSON (:mod:`.json_checkpoint`, written atomically; floats written with ``repr`` come back to the bit),
so loading one runs no code.
"""
from __future__ import annotations

import json
import math
import warnings
from typing import Any

import numpy as np

from .checks import check_array
from .json_checkpoint import JsonStateModel
from .standardizer import Standardizer

__all__ = ["GaussianMixtureModel", "GaussianModel"]

#: the arrays a file holds, in the standardised space but for the scaler's
_ARRAYS = ("scaler_mean", "scaler_scale", "weights", "means", "covariances", "precisions_cholesky")

_LOG_2PI = math.log(2.0 * math.pi)


def _precision_cholesky(cov: np.ndarray) -> np.ndarray:
    """Upper-triangular ``P`` with ``P Pᵀ = cov⁻¹`` (``P = L⁻ᵀ`` for ``cov = L Lᵀ``), scikit-learn's convention."""
    chol = np.linalg.cholesky(cov)
    return np.linalg.solve(chol, np.eye(cov.shape[0])).T


class _GaussianFamily(JsonStateModel):
    """Shared machinery: standardisation, component parameters in the standardised space, log-density, files."""

    def __init__(self, n_features: int, *, seed: int = 0, **hyper: Any):
        if not isinstance(n_features, (int, np.integer)) or n_features < 1:
            raise ValueError(f"n_features must be a positive integer; got {n_features!r}")
        self.n_features = int(n_features)
        self.seed = int(seed)
        self.hyper = dict(hyper)
        json.dumps(self.hyper)  # fails early on a config that could not be saved
        self.scaler: Standardizer | None = None
        self._weights: np.ndarray | None = None      # (k,)
        self._means: np.ndarray | None = None        # (k, d), standardised space
        self._covs: np.ndarray | None = None         # (k, d, d), standardised space
        self._prec_chols: np.ndarray | None = None   # (k, d, d)
        self.history_: list[dict[str, Any]] = []
        self.meta_: dict[str, Any] = {}

    def _fit_components(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(weights, means, covariances)`` fitted to standardised rows ``Z``."""
        raise NotImplementedError

    # ----------------------------------------------------------------- fit / evaluate
    def fit(self, X: Any, X_val: Any = None) -> "_GaussianFamily":
        """Fit on the rows of ``X`` (deterministic for the seed); ``X_val``, when given, is only scored: its mean
        log-likelihood goes into ``history_``."""
        X = check_array(X, self.n_features, "X", min_rows=2, dtype=np.float64)
        self.scaler = Standardizer().fit(X)
        self.history_ = []
        weights, means, covs = self._fit_components(self.scaler.transform(X, dtype=np.float64))
        self._set(weights, means, covs, np.stack([_precision_cholesky(c) for c in covs]))
        record = {"train_logp": float(self.log_prob(X).mean())}
        if X_val is not None:
            record["val_logp"] = float(self.log_prob(check_array(X_val, self.n_features, "X_val",
                                                                 dtype=np.float64)).mean())
        self.history_.append(record)
        return self

    def _set(self, weights: np.ndarray, means: np.ndarray, covs: np.ndarray, prec_chols: np.ndarray) -> None:
        # C order whatever the source: a matrix product rounds differently for another memory layout, and a
        # loaded model must give the fitted one's values to the last bit
        self._weights, self._means, self._covs, self._prec_chols = (
            np.ascontiguousarray(a, dtype=np.float64) for a in (weights, means, covs, prec_chols))

    @property
    def is_fitted(self) -> bool:
        """True once ``fit`` or ``load`` has set the parameters."""
        return self._weights is not None and self.scaler is not None

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError(f"{type(self).__name__} is not fitted yet: call fit() or load() first")

    def log_prob(self, X: Any) -> np.ndarray:
        """Exact log-density of the rows of ``X`` in the raw input space, float64."""
        self._require_fitted()
        Z = self.scaler.transform(check_array(X, self.n_features, "X", dtype=np.float64), dtype=np.float64)
        d = self.n_features
        comp = np.empty((Z.shape[0], self._weights.shape[0]))
        for k, (mu, prec) in enumerate(zip(self._means, self._prec_chols)):
            y = Z @ prec - mu @ prec
            comp[:, k] = -0.5 * (d * _LOG_2PI + np.einsum("ij,ij->i", y, y)) + np.log(np.diag(prec)).sum()
        comp += np.log(self._weights)
        top = comp.max(axis=1)
        return top + np.log(np.exp(comp - top[:, None]).sum(axis=1)) + self.scaler.log_det

    def energy(self, X: Any) -> np.ndarray:
        """``−log_prob(X)``: low on typical rows."""
        return -self.log_prob(X)

    def double(self) -> "_GaussianFamily":
        """Already float64: returns the model (the indicators call it on every model)."""
        return self

    # ----------------------------------------------------------------- parameters in the raw space
    @property
    def weights_(self) -> np.ndarray:
        """Component weights, shape ``(k,)``."""
        self._require_fitted()
        return self._weights.copy()

    @property
    def means_(self) -> np.ndarray:
        """Component means in the raw input space, shape ``(k, n_features)``."""
        self._require_fitted()
        return self._means * self.scaler.scale + self.scaler.mean

    @property
    def covariances_(self) -> np.ndarray:
        """Component covariances in the raw input space (ridge included), shape ``(k, n_features, n_features)``."""
        self._require_fitted()
        s = self.scaler.scale
        return self._covs * s[:, None] * s[None, :]

    # ----------------------------------------------------------------- config, files
    def get_config(self) -> dict[str, Any]:
        """The constructor arguments (JSON-serialisable): what a file saves to rebuild the model."""
        return {"n_features": self.n_features, "seed": self.seed, **self.hyper}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"

    def state(self) -> dict[str, Any]:
        """The fitted model as JSON values, bit-identical when loaded (``save`` / ``load``: :class:`JsonStateModel`)."""
        self._require_fitted()
        arrays = (self.scaler.mean, self.scaler.scale, self._weights, self._means, self._covs, self._prec_chols)
        return {"config": self.get_config(), "history": self.history_,
                **{name: a.tolist() for name, a in zip(_ARRAYS, arrays)}}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "_GaussianFamily":
        a = {name: np.array(state[name], dtype=np.float64) for name in _ARRAYS}
        model = cls(**state["config"])
        model.scaler = Standardizer(a["scaler_mean"], a["scaler_scale"])
        model._set(a["weights"], a["means"], a["covariances"], a["precisions_cholesky"])
        model.history_ = state["history"]
        return model


class GaussianModel(_GaussianFamily):
    """One multivariate Gaussian with full covariance (the maximum-likelihood mean and covariance of the fit
    rows, plus ``ridge`` times each feature's variance on the diagonal): ``−log_prob`` is half the squared
    Mahalanobis distance plus a constant.

    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(4000, 2)) * [1.0, 0.01]
    >>> m = GaussianModel(2).fit(X)
    >>> bool(abs(m.log_prob(X).mean() - (-(1 + np.log(2 * np.pi)) - np.log(0.01))) < 0.05)
    True
    """

    def __init__(self, n_features: int, ridge: float = 1e-6, *, seed: int = 0):
        if not ridge >= 0:
            raise ValueError(f"ridge must be >= 0; got {ridge!r}")
        super().__init__(n_features, seed=seed, ridge=float(ridge))

    def _fit_components(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mean = Z.mean(axis=0)
        centred = Z - mean
        cov = centred.T @ centred / Z.shape[0] + self.hyper["ridge"] * np.eye(Z.shape[1])
        return np.ones(1), mean[None, :], cov[None, :, :]


class GaussianMixtureModel(_GaussianFamily):
    """A Gaussian mixture with full covariances (scikit-learn's ``GaussianMixture``, k-means initialisation,
    ``random_state=seed``): one fit for each number of components in ``1 .. max_components`` (at most one
    per fit row), the one with the lowest BIC on the fit rows kept. ``bic_`` maps each number tried to its
    BIC; ``n_components_`` is the choice. ``log_prob`` equals ``GaussianMixture.score_samples`` (plus the
    standardisation's log-Jacobian).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(-5, 1, (300, 2)), rng.normal(5, 1, (300, 2))]
    >>> GaussianMixtureModel(2, max_components=4).fit(X).n_components_
    2
    """

    def __init__(self, n_features: int, max_components: int = 8, reg_covar: float = 1e-6, max_iter: int = 200,
                 n_init: int = 1, *, seed: int = 0):
        for name, value in (("max_components", max_components), ("max_iter", max_iter), ("n_init", n_init)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if not reg_covar >= 0:
            raise ValueError(f"reg_covar must be >= 0; got {reg_covar!r}")
        super().__init__(n_features, seed=seed, max_components=int(max_components), reg_covar=float(reg_covar),
                         max_iter=int(max_iter), n_init=int(n_init))

    def _fit_components(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.mixture import GaussianMixture

        h = self.hyper
        best, best_bic, bics, converged = None, np.inf, {}, {}
        for k in range(1, min(h["max_components"], Z.shape[0]) + 1):
            gm = GaussianMixture(k, covariance_type="full", reg_covar=h["reg_covar"], max_iter=h["max_iter"],
                                 n_init=h["n_init"], random_state=self.seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)   # recorded in history_ instead
                gm.fit(Z)
            bics[k], converged[k] = float(gm.bic(Z)), bool(gm.converged_)
            if bics[k] < best_bic:
                best, best_bic = gm, bics[k]
        self.history_ = [{"n_components": k, "bic": bics[k], "converged": converged[k]} for k in bics]
        return best.weights_, best.means_, best.covariances_

    @property
    def n_components_(self) -> int:
        """The number of components BIC chose."""
        self._require_fitted()
        return int(self._weights.shape[0])

    @property
    def bic_(self) -> dict[int, float]:
        """BIC (on the standardised fit rows) of each number of components tried."""
        return {int(r["n_components"]): float(r["bic"]) for r in self.history_ if "bic" in r}
