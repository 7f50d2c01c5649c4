"""``LatentRegime``: market regimes as clusters of the RealNVP flow's latent codes, with labels that keep their
meaning from one refit to the next.

Each training window fits a :class:`LatentMixtureFlow`: the RealNVP flow of ``LogDensity`` on the window's
features, then a Gaussian mixture of ``n_regimes`` full-covariance components on the latent codes ``z = f(x)`` of
the fit rows. A bar's regime is the component most probable for its ``z``.

**Why the mixture starts from rolling latent moments.** A flow is trained to make ``z`` standard normal over the
whole window, so the latent codes form one round cloud, not separate clusters: regimes that differ in the joint
shape of the features (the same marginals, opposite correlations) keep different *covariances* in ``z`` but share
its centre, and EM started from k-means (which cuts the cloud by a plane through its centre) stays in that cut.
Measured on two such planted regimes (3 pairs of features correlated +0.9 or -0.9, runs of 150 bars, 1,400 fit
rows, 4 seeds): mixtures started from k-means on ``z`` agree with the truth on 50-52 % of held-out bars whenever the
flow trained past its first epoch, mixtures started as below on 97-99 %. Regimes persist, so the mixture starts from
the k-means partition of *rolling* latent moments (the mean of ``z`` and of ``z zᵀ`` over ``moment_bars``
consecutive fit rows, centred on each row); EM then refines it row by row. Evaluation uses the current bar's ``z``
alone.

**Why clusters are matched in feature space.** Mixture components come out in arbitrary order, and each window's
flow has its own latent space: window k's ``z``-centres cannot be compared with window k-1's. Each component
therefore also keeps the responsibility-weighted mean and covariance of its fit rows in *feature* space, which
both windows share. Window k's components take the labels of window k-1's (the last fitted window before it) by
the assignment of least total Bhattacharyya distance between these Gaussian summaries (Hungarian algorithm,
``scipy.optimize.linear_sum_assignment``). The Bhattacharyya distance compares means *and* covariances, so two
regimes that differ only in correlation are told apart, and it is invariant to any common affine change of the
features (both summaries are standardised with window k's scaler, which only sets the size of a 1e-6 ridge). The
first window's components are labelled by decreasing weight (0: the most common one).

**Walk-forward contract.** Window k's labels are a deterministic function of the models of windows 0 … k (a
chain: each window is matched to the previous one's labelled summaries), and every model reads only rows before
its fit bar, so a bar's label never depends on later data (truncation invariance) and the batched and bar-by-bar
paths, which visit the windows in the same order, give the same labels. The chain lives on the indicator, not in
the model cache: a model's cached calibration state is the same whatever came before it. The fits do not depend on
each other (but for ``warm_start``) and may run in parallel worker processes (:mod:`.parallel_fits`); the matching
happens when the windows are evaluated, in order, from the models the fits wrote (the mixture is saved with the
flow).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from btdensity.models import RealNVP
from btdensity.models.checks import check_array

from .base import WalkForwardIndicator

__all__ = ["LabelledClusters", "LatentMixtureFlow", "LatentRegime", "bhattacharyya", "label_clusters",
           "match_clusters", "rolling_moments"]

_LOG_2PI = math.log(2.0 * math.pi)
#: the mixture's arrays, as a checkpoint keeps them (``_extra_state``)
_MIXTURE = ("weights", "means", "precisions_cholesky", "feature_means", "feature_covariances", "returns")
#: ridge added to standardised feature covariances before comparing them (a constant feature is singular)
MATCH_RIDGE = 1e-6


def rolling_moments(Z: np.ndarray, bars: int) -> np.ndarray:
    """Mean of ``z`` and of the upper triangle of ``z zᵀ`` over each run of ``bars`` consecutive rows of ``Z``,
    shape ``(n - bars + 1, d + d (d + 1) / 2)``; row ``i`` covers rows ``i … i + bars - 1``.

    >>> rolling_moments(np.array([[1.0], [3.0], [5.0]]), 2).tolist()
    [[2.0, 5.0], [4.0, 17.0]]
    """
    Z = np.asarray(Z, dtype=np.float64)
    n, d = Z.shape
    if not 1 <= bars <= n:
        raise ValueError(f"bars must be in [1, {n}] (the rows given); got {bars}")
    upper = np.triu_indices(d)
    rows = np.concatenate([Z, (Z[:, :, None] * Z[:, None, :])[:, upper[0], upper[1]]], axis=1)
    total = np.concatenate([np.zeros((1, rows.shape[1])), np.cumsum(rows, axis=0)])
    return (total[bars:] - total[:-bars]) / bars


def bhattacharyya(mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray) -> float:
    """Bhattacharyya distance between ``N(mean_a, cov_a)`` and ``N(mean_b, cov_b)``:
    ``(1/8) Δᵀ S⁻¹ Δ + (1/2) ln(det S / sqrt(det cov_a det cov_b))`` with ``S = (cov_a + cov_b) / 2``, ``Δ`` the
    difference of the means. 0 for equal Gaussians; unchanged by any invertible affine map of both.

    >>> round(bhattacharyya(np.zeros(1), np.eye(1), np.ones(1), np.eye(1)), 6)   # 1/8 of a squared distance of 1
    0.125
    """
    delta = np.asarray(mean_a, dtype=np.float64) - np.asarray(mean_b, dtype=np.float64)
    s = 0.5 * (cov_a + cov_b)
    logdet = [np.linalg.slogdet(c)[1] for c in (s, cov_a, cov_b)]
    return float(0.125 * delta @ np.linalg.solve(s, delta) + 0.5 * (logdet[0] - 0.5 * (logdet[1] + logdet[2])))


def match_clusters(ref_means: np.ndarray, ref_covs: np.ndarray, means: np.ndarray, covs: np.ndarray) -> np.ndarray:
    """The label of each cluster ``(means[j], covs[j])``: the reference cluster ``i`` it is assigned to, by the
    one-to-one assignment of least total :func:`bhattacharyya` distance (Hungarian algorithm). Both sets are
    Gaussian summaries in the same space, with as many clusters in each.

    >>> eye = np.stack([np.eye(2)] * 3)
    >>> centres = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    >>> match_clusters(centres, eye, centres[[2, 0, 1]] + 0.1, eye).tolist()
    [2, 0, 1]
    """
    if len(ref_means) != len(means):
        raise ValueError(f"match_clusters needs as many clusters as the reference; got {len(means)} and "
                         f"{len(ref_means)}")
    cost = np.array([[bhattacharyya(rm, rc, m, c) for m, c in zip(means, covs)]
                     for rm, rc in zip(ref_means, ref_covs)])
    rows, cols = linear_sum_assignment(cost)
    labels = np.empty(len(means), dtype=np.int64)
    labels[cols] = rows
    return labels


def _precision_cholesky(cov: np.ndarray) -> np.ndarray:
    """Upper-triangular ``P`` with ``P Pᵀ = cov⁻¹`` (scikit-learn's convention)."""
    return np.linalg.solve(np.linalg.cholesky(cov), np.eye(cov.shape[0])).T


def _mixture_terms(Z: np.ndarray, mixture: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(posterior, distance)`` of latent rows ``Z``: ``p(component | z)`` and the Mahalanobis distance of ``z`` to
    each component's centre under its covariance, both ``(n, k)``."""
    weights, means, chols = mixture["weights"], mixture["means"], mixture["precisions_cholesky"]
    d = Z.shape[1]
    sq = np.empty((Z.shape[0], weights.shape[0]))
    log_norm = np.empty(weights.shape[0])
    for k, (mu, prec) in enumerate(zip(means, chols)):
        y = (Z - mu) @ prec
        sq[:, k] = np.einsum("ij,ij->i", y, y)
        log_norm[k] = np.log(weights[k]) + np.log(np.diag(prec)).sum() - 0.5 * d * _LOG_2PI
    log_joint = log_norm - 0.5 * sq
    log_joint -= log_joint.max(axis=1, keepdims=True)
    post = np.exp(log_joint)
    post /= post.sum(axis=1, keepdims=True)
    return post, np.sqrt(sq)


def _start_mixture(Z: np.ndarray, n_clusters: int, bars: int, seed: int) -> tuple[np.ndarray, ...]:
    """``(weights, means, precisions)`` to start EM from: the k-means partition of the rows' rolling latent
    moments (:func:`rolling_moments` over ``bars`` rows centred on each row; the first and last rows take the
    nearest full run's cluster)."""
    from sklearn.cluster import KMeans

    n, d = Z.shape
    moments = rolling_moments(Z, bars)
    cut = KMeans(n_clusters, n_init=10, random_state=seed).fit(moments).labels_
    first = (bars - 1) // 2                      # the row at the centre of the first run
    labels = np.empty(n, dtype=np.int64)
    labels[first:first + cut.size] = cut
    labels[:first], labels[first + cut.size:] = cut[0], cut[-1]
    weights = np.bincount(labels, minlength=n_clusters).astype(np.float64)
    means, precisions = np.zeros((n_clusters, d)), np.zeros((n_clusters, d, d))
    for k in range(n_clusters):
        rows = Z[labels == k]
        means[k] = rows.mean(axis=0) if rows.size else Z.mean(axis=0)
        cov = np.cov(rows if rows.shape[0] > d else Z, rowvar=False).reshape(d, d)
        precisions[k] = np.linalg.inv(cov + 1e-3 * np.eye(d))
    return np.maximum(weights, 1.0) / np.maximum(weights, 1.0).sum(), means, precisions


class LatentMixtureFlow(RealNVP):
    """A RealNVP flow with a Gaussian mixture of ``n_clusters`` components on its latent codes ``z = f(x)``.

    ``fit(X, X_val=None, y=None, **fit_kwargs)`` fits the flow as :class:`RealNVP` does, then the mixture on the
    latent codes of ``X`` (full covariances, EM started from the k-means partition of the rolling latent moments
    over ``moment_bars`` consecutive rows: ``X``'s rows must be in time order), and keeps, for each component, the
    responsibility-weighted mean and covariance of ``X`` (``cluster_means_``, ``cluster_covariances_``: Gaussian
    summaries in feature space, comparable between models) and of ``y`` (``cluster_returns_``: e.g. the rows'
    forward returns; 0 without ``y``). ``clusters(X)`` gives each row's posterior and latent Mahalanobis distances.
    The mixture is saved with the flow (the checkpoint's extra tensors).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(-4, 1, (300, 2)), rng.normal(4, 1, (300, 2))]
    >>> y = np.r_[-np.ones(300), np.ones(300)]
    >>> m = LatentMixtureFlow(2, n_clusters=2, n_layers=2, hidden=8).fit(X, epochs=2, y=y)
    >>> post, _ = m.clusters(X)
    >>> sorted(np.round(m.cluster_returns_, 2).tolist()), bool((post[:300].argmax(1) != post[300:].argmax(1)[0]).all())
    ([-1.0, 1.0], True)
    """

    def __init__(self, n_features: int, n_clusters: int = 3, moment_bars: int = 24, n_layers: int = 8,
                 hidden: int = 128, scale_bound: float = 3.0, *, seed: int = 0, device: str | None = None):
        for name, value in (("n_clusters", n_clusters), ("moment_bars", moment_bars)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        super().__init__(n_features, n_layers=n_layers, hidden=hidden, scale_bound=scale_bound, seed=seed,
                         device=device)
        self.hyper.update(n_clusters=int(n_clusters), moment_bars=int(moment_bars))
        self._mixture: dict[str, np.ndarray] | None = None

    def fit(self, X: Any, X_val: Any = None, *, y: Any = None, **fit_kwargs: Any) -> "LatentMixtureFlow":
        """Fit the flow on ``X`` (early stopping on ``X_val``), then the latent mixture on ``X``'s codes; ``y`` (one
        value per row of ``X``, e.g. its forward return) gives ``cluster_returns_``."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.mixture import GaussianMixture
        from threadpoolctl import threadpool_limits

        X = check_array(X, self.n_features, "X", min_rows=2, dtype=np.float64)
        k = self.hyper["n_clusters"]
        if X.shape[0] < 2 * k:
            raise ValueError(f"LatentMixtureFlow needs at least 2 rows per cluster ({2 * k}); got {X.shape[0]}")
        target = np.zeros(X.shape[0]) if y is None else np.asarray(y, dtype=np.float64).reshape(-1)
        if target.shape[0] != X.shape[0] or not np.isfinite(target).all():
            raise ValueError(f"y must hold one finite value per row of X ({X.shape[0]}); got {target.shape[0]}")
        super().fit(X, X_val=X_val, **fit_kwargs)
        Z = self.transform(X)
        bars = min(self.hyper["moment_bars"], X.shape[0] // (2 * k))
        # one BLAS / OpenMP thread: the same mixture whatever the machine, in a worker process or here
        with threadpool_limits(1), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            weights, means, precisions = _start_mixture(Z, k, bars, self.seed)
            gm = GaussianMixture(k, covariance_type="full", weights_init=weights, means_init=means,
                                 precisions_init=precisions, max_iter=200, random_state=self.seed).fit(Z)
        mixture = {"weights": gm.weights_, "means": gm.means_, "precisions_cholesky": gm.precisions_cholesky_}
        resp, _ = _mixture_terms(Z, _contiguous(mixture))
        mass = resp.sum(axis=0)
        safe = np.maximum(mass, 1e-12)
        f_means = resp.T @ X / safe[:, None]
        f_covs = np.stack([((X - m) * r[:, None]).T @ (X - m) / s for m, r, s in zip(f_means, resp.T, safe)])
        mixture.update(feature_means=f_means, feature_covariances=f_covs, returns=resp.T @ target / safe)
        self._mixture = _contiguous(mixture)
        return self

    # ----------------------------------------------------------------- the mixture
    def _require_mixture(self) -> dict[str, np.ndarray]:
        self._require_fitted()
        if self._mixture is None:
            raise RuntimeError("LatentMixtureFlow has no latent mixture: call fit() or load() first")
        return self._mixture

    def clusters(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(posterior, distance)`` of the rows of ``X``, both ``(n, n_clusters)``: ``p(cluster | z)`` of the
        latent code ``z = f(x)``, and the Mahalanobis distance of ``z`` to each cluster's centre under its
        covariance."""
        mixture = self._require_mixture()
        return _mixture_terms(self.transform(X).astype(np.float64, copy=False), mixture)

    @property
    def cluster_weights_(self) -> np.ndarray:
        """The mixture weights, shape ``(n_clusters,)``."""
        return self._require_mixture()["weights"].copy()

    @property
    def cluster_means_(self) -> np.ndarray:
        """Each cluster's responsibility-weighted mean of the fit rows, in feature space, ``(n_clusters, d)``."""
        return self._require_mixture()["feature_means"].copy()

    @property
    def cluster_covariances_(self) -> np.ndarray:
        """Each cluster's responsibility-weighted covariance of the fit rows, in feature space,
        ``(n_clusters, d, d)``."""
        return self._require_mixture()["feature_covariances"].copy()

    @property
    def cluster_returns_(self) -> np.ndarray:
        """Each cluster's responsibility-weighted mean of ``y`` over the fit rows, ``(n_clusters,)``."""
        return self._require_mixture()["returns"].copy()

    # ----------------------------------------------------------------- checkpoint
    def _extra_state(self) -> dict[str, torch.Tensor]:
        mixture = self._require_mixture()
        return {f"mixture_{name}": torch.as_tensor(mixture[name]) for name in _MIXTURE}

    def _load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        self._mixture = _contiguous({name: state[f"mixture_{name}"].cpu().numpy() for name in _MIXTURE})


def _contiguous(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    # float64 in C order, whatever the source: a matrix product rounds differently for another memory layout, and a
    # loaded model must give the fitted one's values to the last bit
    return {name: np.ascontiguousarray(a, dtype=np.float64) for name, a in arrays.items()}


@dataclass(frozen=True)
class LabelledClusters:
    """One window's clusters with their regime labels: ``labels[j]`` is the regime of the model's cluster ``j``;
    ``means`` / ``covariances`` are the clusters' feature-space summaries in regime order (the reference the next
    window is matched to)."""

    labels: np.ndarray
    means: np.ndarray
    covariances: np.ndarray


def label_clusters(model: LatentMixtureFlow, reference: LabelledClusters | None) -> LabelledClusters:
    """Regime labels of ``model``'s clusters: :func:`match_clusters` to ``reference`` (the previous window's
    labelled clusters), both standardised with ``model``'s scaler, with :data:`MATCH_RIDGE` on the covariances;
    without a reference, by decreasing mixture weight."""
    means, covs = model.cluster_means_, model.cluster_covariances_
    if reference is None:
        labels = np.empty(len(means), dtype=np.int64)
        labels[np.argsort(-model.cluster_weights_, kind="stable")] = np.arange(len(means))
    else:
        centre, scale = model.scaler.mean, model.scaler.scale
        ridge = MATCH_RIDGE * np.eye(means.shape[1])

        def standard(m: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return (m - centre) / scale, c / np.outer(scale, scale) + ridge

        labels = match_clusters(*standard(reference.means, reference.covariances), *standard(means, covs))
    order = np.argsort(labels)
    return LabelledClusters(labels, means[order], covs[order])


class LatentRegime(WalkForwardIndicator):
    """``regime``: the label (0 … ``n_regimes`` − 1) of the bar's cluster in the flow's latent space, matched
    across refits so that a label keeps its meaning (label 0 is the first window's most common cluster);
    ``distance``: the Mahalanobis distance of the bar's latent code to that cluster's centre (under the cluster's
    covariance), over its median on the held-out tail of the training window (1 = a usual bar of the window, high:
    a state far from every regime seen); ``direction``: the expected forward log return over ``horizon`` bars
    given the bar's latent code, ``Σ_c p(c | z) m_c``, ``m_c`` the cluster's mean forward return over the fit rows
    (responsibility-weighted): positive in a regime whose bars went on to rise.

    ``model_kwargs`` go to :class:`LatentMixtureFlow` (``n_layers``, ``hidden``, ``moment_bars`` ...);
    ``n_regimes`` sets its number of clusters."""

    lines = ("regime", "distance", "direction")
    params = (("n_regimes", 3), ("horizon", 24))
    plotinfo = dict(subplot=True, plotname="Latent regime")
    plotlines = dict(regime=dict(color="#8c564b", drawstyle="steps-post"), distance=dict(_plotskip=True),
                     direction=dict(_plotskip=True))
    uses_labels = True
    default_model_kwargs = {"n_layers": 4, "hidden": 64}
    default_fit_kwargs = {"epochs": 40, "patience": 8, "lr": 2e-3}

    def __init__(self) -> None:
        n = self.p.n_regimes
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
            raise ValueError(f"LatentRegime(n_regimes={n!r}): a whole number of regimes >= 2")
        if "n_clusters" in (self.p.model_kwargs or {}):
            raise ValueError("LatentRegime(model_kwargs={'n_clusters': ...}): set n_regimes instead")
        super().__init__()
        self._chain: dict[int, LabelledClusters] = {}   # the labelled clusters of each window evaluated so far

    def model_class(self) -> type:
        return LatentMixtureFlow

    def extra_config(self) -> dict[str, Any]:
        return {"n_regimes": int(self.p.n_regimes)}

    def make_model(self, n_features: int) -> Any:
        return LatentMixtureFlow(n_features, n_clusters=int(self.p.n_regimes), seed=self.p.seed, **self.model_kwargs)

    def fit_model(self, model: Any, X: np.ndarray, y: np.ndarray | None, X_val: np.ndarray,
                  y_val: np.ndarray | None) -> None:
        model.fit(X, X_val=X_val, y=y, **self.fit_kwargs)

    def calibrate(self, model: Any, X_val: np.ndarray, y_val: Any) -> Any:
        """The median latent distance of the held-out tail's rows to their clusters (the unit of ``distance``)."""
        post, distance = model.clusters(X_val)
        scale = float(np.median(distance[np.arange(len(post)), post.argmax(axis=1)]))
        return scale if scale > 0 else 1.0

    def evaluate(self, model: Any, state: Any, X: np.ndarray) -> np.ndarray:
        scale, labelled = state
        post, distance = model.clusters(X)
        own = post.argmax(axis=1)
        return np.column_stack([labelled.labels[own].astype(np.float64), distance[np.arange(len(own)), own] / scale,
                                post @ model.cluster_returns_])

    # ------------------------------------------------------------------ labels matched along the windows
    def _model_of(self, window: Any, X: np.ndarray, y: np.ndarray | None) -> tuple[Any, Any]:
        """The base class's ``(model, calibration)`` of ``window``, the state extended with the window's labelled
        clusters (:meth:`_labelled`): ``evaluate`` receives ``(calibration, labelled clusters)``."""
        model, state = super()._model_of(window, X, y)
        if model is None:
            return model, state
        return model, (state, self._labelled(window.k, model, X, y))

    def _labelled(self, k: int, model: LatentMixtureFlow, X: np.ndarray, y: np.ndarray | None) -> LabelledClusters:
        """Window ``k``'s labelled clusters: matched to those of the last fitted window before it, which are
        matched to the one before theirs, and so on (windows that bad bars left unfitted are skipped). Windows
        are labelled in order, each once; a window reached out of order first labels the ones before it."""
        known = self._chain.get(k)
        if known is not None:
            return known
        for j in range(k):
            if j not in self._chain:
                window = self._window(j, X, y)
                if window is not None:
                    self._previous_model(window, X, y)   # its _model_of labels it (the windows before are done)
        earlier = [j for j in self._chain if j < k]
        known = label_clusters(model, self._chain[max(earlier)] if earlier else None)
        self._chain[k] = known
        return known
