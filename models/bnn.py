"""Pyro Bayesian neural network regression with separated aleatoric and epistemic uncertainty.

The network is a ``PyroModule`` MLP whose weights and biases carry Gaussian ``PyroSample`` priors
(weights ``N(0, prior_scale^2 / fan_in)``, biases ``N(0, prior_scale^2)``). Its last layer has two
heads per output: the mean and the noise scale (softplus), so the likelihood (Gaussian or Student-t)
is heteroscedastic and the two kinds of uncertainty separate:

* aleatoric variance = E_w[noise variance(x, w)]  (what more data would not remove),
* epistemic variance = Var_w[mean(x, w)]           (what the posterior is unsure of),
* predictive variance = their sum (law of total variance).

The posterior over the weights is approximated by SVI with ``AutoNormal`` (mean field),
``AutoLowRankMultivariateNormal`` or ``AutoLaplaceApproximation`` (MAP, then a Gaussian from the
Hessian of the full-data loss), or sampled with NUTS (small networks). SVI anneals the KL term over a
warm-up and stops early on the validation NLL of the posterior predictive. ``n_draws`` posterior
weight draws are taken once, at the end of ``fit`` (and at ``load``, from the same seed), and
``predict`` evaluates them with batched matrix products: no Pyro machinery runs per call. A variance
scale fitted on the validation split recalibrates the predictive so that its central intervals cover at
their nominal levels (see :mod:`btdensity.models.calibration`).

Pyro keeps parameters in a global store keyed by name; two models with the same architecture would
share them. Every Pyro call of a model therefore runs in a fresh, empty scope of the store (the
guide's parameters live on the guide module itself), and the store is restored afterwards.

>>> rng = np.random.default_rng(0)
>>> X = rng.uniform(-2, 2, size=(300, 1)); y = np.sin(X[:, 0]) + 0.1 * rng.normal(size=300)
>>> bnn = BayesianNN(1, hidden=(16,), kl_warmup=5).fit(X, y, epochs=30, batch_size=300)
>>> pred = bnn.predict(X[:3], level=0.9)
>>> pred.mean.shape, bool((pred.lower < pred.mean).all() and (pred.mean < pred.upper).all())
((3,), True)
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple, Sequence

import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.infer import MCMC, NUTS, Trace_ELBO, TraceMeanField_ELBO
from pyro.infer.autoguide import (AutoLaplaceApproximation, AutoLowRankMultivariateNormal,
                                  AutoMultivariateNormal, AutoNormal)
from pyro.infer.autoguide.initialization import init_to_sample
from torch import nn

from .base import BaseModel
from .bnn_network import ACTIVATIONS, BayesianMLP, DrawBank, hessian, mlp, own_param_store
from .calibration import central_quantile, fit_shape_and_scale, fit_variance_scale, moved_targets, predictive_nll
from .checks import check_array, check_target
from .standardizer import Standardizer
from .training import EarlyStopping, minibatch_epoch, seeded_torch_rng

__all__ = ["BayesianNN", "Prediction"]

LIKELIHOODS = ("gaussian", "studentt")
GUIDES = ("normal", "lowrank", "laplace", "nuts")
_VAL_DRAWS = 16            # posterior draws behind the validation NLL during SVI
_CHUNK_ELEMENTS = 1 << 22  # bound on draws * rows * width held at once by predict
_PRIOR_PRECISION_GRID = tuple(10.0 ** k for k in np.arange(0.0, 4.01, 0.5))  # Laplace prior precision factors


class Prediction(NamedTuple):
    """Posterior predictive summary in the raw target's units.

    Arrays have shape ``(n,)`` for one output, ``(n, n_outputs)`` otherwise. ``std`` is the total
    predictive standard deviation, ``std**2 == epistemic**2 + aleatoric**2``; ``lower`` / ``upper``
    bound the central interval at the level asked for.
    """

    mean: np.ndarray
    epistemic: np.ndarray
    aleatoric: np.ndarray
    std: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def check_likelihood_settings(likelihood: str, prior_scale: float, init_scale: float, df: float) -> None:
    """One-line ValueErrors for the settings every Bayesian network here shares: the likelihood, positive prior and
    initial scales, and a Student-t ``df`` above 2."""
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}; got {likelihood!r}")
    for name, value in (("prior_scale", prior_scale), ("init_scale", init_scale)):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number; got {value!r}")
    if not (np.isfinite(df) and df > 2):
        raise ValueError(f"df must be > 2 so that the Student-t noise has a variance; got {df!r}")


class BayesianNN(BaseModel):
    """Bayesian MLP regression (Pyro) with calibrated aleatoric + epistemic predictive uncertainty.

    Parameters: ``hidden`` widths; ``likelihood`` ``"gaussian"`` or ``"studentt"`` (with ``df``
    degrees of freedom, > 2); ``guide`` ``"normal"`` (AutoNormal, mean field), ``"lowrank"``
    (AutoLowRankMultivariateNormal of ``rank``, default sqrt of the weight count), ``"laplace"``
    (AutoLaplaceApproximation) or ``"nuts"`` (``n_draws`` NUTS samples after ``nuts_warmup`` steps,
    trees of depth <= ``nuts_max_tree_depth``; small networks only); ``prior_scale`` of the weight priors; ``n_outputs`` targets (e.g.
    horizons); ``activation`` (relu, tanh, silu); ``kl_warmup`` epochs over which the KL weight
    rises linearly to 1 (early stopping watches only epochs after it); ``init_scale`` of the
    variational standard deviations; ``n_draws`` posterior draws taken once for ``predict``; ``fit_df``: the
    predictive's Student-t shape is fitted on the validation split with the variance scale (the likelihood's
    ``df`` is the prior guess the network trains with); ``zero_mean``: the predictive is centred at zero, not at the
    network's mean (the network still learns a mean, so that its noise scale is the scale around it; ``mean`` is 0,
    the interval symmetric about 0 and recalibrated there, ``epistemic`` still the spread of the draws' means).

    ``fit(X, y, X_val=None, y_val=None, epochs=..., batch_size=..., lr=..., patience=...,
    val_fraction=...)``: without ``X_val`` a random ``val_fraction`` of the rows is held out. The
    validation split drives early stopping and fits the recalibration variance scale.
    """

    fit_defaults = {"epochs": 400, "batch_size": 256, "lr": 1e-2, "weight_decay": 0.0, "patience": 30}
    #: ``predict`` gives arrays of shape ``(n,)`` for a network with one output (``(n, n_outputs)`` otherwise)
    single_output_as_vector = True

    def __init__(self, n_features: int, hidden: Sequence[int] = (64, 32), likelihood: str = "gaussian",
                 guide: str = "normal", prior_scale: float = 1.0, n_outputs: int = 1, *, df: float = 5.0,
                 activation: str = "relu", kl_warmup: int = 50, init_scale: float = 0.01,
                 rank: int | None = None, n_draws: int = 100, nuts_warmup: int = 200,
                 nuts_max_tree_depth: int = 8, fit_df: bool = False, zero_mean: bool = False, seed: int = 0,
                 device: str | None = None):
        hidden = [hidden] if isinstance(hidden, (int, np.integer)) else list(hidden)
        if not all(isinstance(h, (int, np.integer)) and h >= 1 for h in hidden):
            raise ValueError(f"hidden must be a sequence of positive integer widths; got {hidden!r}")
        check_likelihood_settings(likelihood, prior_scale, init_scale, df)
        if fit_df and likelihood != "studentt":
            raise ValueError("fit_df=True fits the Student-t shape of the predictive: it needs likelihood='studentt'")
        if guide not in GUIDES:
            raise ValueError(f"guide must be one of {GUIDES}; got {guide!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}; got {activation!r}")
        if not (isinstance(n_outputs, (int, np.integer)) and n_outputs >= 1):
            raise ValueError(f"n_outputs must be a positive integer; got {n_outputs!r}")
        if (n_draws < 2 or kl_warmup < 0 or nuts_warmup < 1 or nuts_max_tree_depth < 1
                or (rank is not None and rank < 1)):
            raise ValueError(f"need n_draws >= 2, kl_warmup >= 0, nuts_warmup >= 1, nuts_max_tree_depth >= 1 and "
                             f"rank >= 1 (or None); got n_draws={n_draws}, kl_warmup={kl_warmup}, "
                             f"nuts_warmup={nuts_warmup}, nuts_max_tree_depth={nuts_max_tree_depth}, rank={rank}")
        super().__init__(n_features, seed=seed, device=device, hidden=[int(h) for h in hidden],
                         likelihood=likelihood, guide=guide, prior_scale=float(prior_scale),
                         n_outputs=int(n_outputs), df=float(df), activation=activation,
                         kl_warmup=int(kl_warmup), init_scale=float(init_scale),
                         rank=None if rank is None else int(rank), n_draws=int(n_draws),
                         nuts_warmup=int(nuts_warmup), nuts_max_tree_depth=int(nuts_max_tree_depth),
                         **({"fit_df": True} if fit_df else {}), **({"zero_mean": True} if zero_mean else {}))
        self.n_outputs = int(n_outputs)
        self.likelihood = likelihood
        self.guide = guide
        self.n_draws = int(n_draws)
        self.df = float(df) if likelihood == "studentt" else None  # the predictive's shape, for calibration
        with seeded_torch_rng(self.seed, self.device):  # nn.Linear's initial weights (replaced by the priors)
            self.net = BayesianMLP(self.n_features, self.hyper["hidden"], self.n_outputs, float(prior_scale),
                                    activation, likelihood, float(df), self.device)
        self.y_scaler: Standardizer | None = None
        self.variance_scale_ = 1.0
        self._draws: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None
        self._subsets: dict[int, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}

    # ----------------------------------------------------------------- posterior modules
    def _dummy_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A tiny observed batch to trace guides with (``y`` observed, so it never becomes a latent)."""
        return (torch.zeros(2, self.n_features, device=self.device),
                torch.zeros(2, self.n_outputs, device=self.device))

    def _new_guide(self, kind: str) -> nn.Module:
        """A fresh guide with its parameters created (prototype traced on a dummy batch)."""
        if kind == "normal":
            guide = AutoNormal(self.net, init_loc_fn=init_to_sample, init_scale=self.hyper["init_scale"])
        elif kind == "lowrank":
            guide = AutoLowRankMultivariateNormal(self.net, init_loc_fn=init_to_sample,
                                                  init_scale=self.hyper["init_scale"], rank=self.hyper["rank"])
        elif kind == "laplace":
            guide = AutoLaplaceApproximation(self.net, init_loc_fn=init_to_sample)
        else:  # "mvn": the form a Laplace approximation takes, with loc / scale / scale_tril as buffers
            guide = AutoMultivariateNormal(self.net)
        with own_param_store():
            guide(*self._dummy_data())
        if kind == "mvn":
            dim = guide.latent_dim
            del guide.loc, guide.scale, guide.scale_tril
            guide.register_buffer("loc", torch.zeros(dim, device=self.device))
            guide.register_buffer("scale", torch.ones(dim, device=self.device))
            guide.register_buffer("scale_tril", torch.eye(dim, device=self.device))
        return guide.to(self.device)

    def _build(self) -> nn.Module:
        """The module holding the fitted posterior (what ``save`` writes and ``load`` fills in)."""
        if self.guide == "nuts":
            shapes = [((l.out_features, l.in_features), (l.out_features,)) for l in self.net.layers]
            return DrawBank(shapes, self.n_draws, self.device)
        return self._new_guide("mvn" if self.guide == "laplace" else self.guide)

    def _sample_guide(self, guide: nn.Module, n: int, seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``n`` posterior weight draws from a guide, deterministic for ``seed``."""
        n_layers = len(self.net.layers)
        with own_param_store(), torch.no_grad(), seeded_torch_rng(seed, self.device):
            with pyro.plate("posterior_draws", n, dim=-1):  # one vectorised call draws all n
                sample = guide(*self._dummy_data())
        return ([sample[f"layers.{i}.weight"] for i in range(n_layers)],
                [sample[f"layers.{i}.bias"] for i in range(n_layers)])

    def _take_draws(self) -> None:
        """Draw the posterior weights used by every later ``predict`` (once per fit / load)."""
        if isinstance(self.module, DrawBank):
            self._draws = self.module.draws()
        else:
            self._draws = self._sample_guide(self.module, self.n_draws, self.seed + 3)
        self._subsets = {}

    def _cast(self, dtype: torch.dtype) -> None:
        """Evaluation reads the posterior draws only (not the guide)."""
        self._draws = ([w.to(dtype) for w in self._draws[0]], [b.to(dtype) for b in self._draws[1]])
        self._subsets = {}

    # ----------------------------------------------------------------- evaluation
    def _moments(self, Z: torch.Tensor, draws: tuple[list[torch.Tensor], list[torch.Tensor]]
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Predictive mean, epistemic and aleatoric variance (standardised units) for rows ``Z``."""
        weights, biases = draws
        width = max(w.shape[1] for w in weights)
        chunk = max(1, _CHUNK_ELEMENTS // (weights[0].shape[0] * width))
        parts = []
        with torch.no_grad():
            for i in range(0, max(Z.shape[0], 1), chunk):
                loc, scale = self.net.heads(mlp(Z[i:i + chunk], weights, biases, self.net.activation))
                parts.append(torch.stack([loc.mean(0), loc.var(0, unbiased=False),
                                          self.net.noise_variance(scale).mean(0)]))
        out = torch.cat(parts, dim=1)
        return out[0], out[1], out[2]

    def _draw_subset(self, n_samples: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``n_samples`` of the stored draws, evenly spaced (thins a NUTS chain; any subset of iid draws)."""
        if n_samples not in self._subsets:
            idx = torch.linspace(0, self.n_draws - 1, n_samples, device=self.device).round().long()
            self._subsets[n_samples] = ([w[idx] for w in self._draws[0]], [b[idx] for b in self._draws[1]])
        return self._subsets[n_samples]

    # ----------------------------------------------------------------- fitting
    def fit(self, X: Any, y: Any, X_val: Any = None, y_val: Any = None, **fit_kwargs: Any) -> "BayesianNN":
        """Fit the posterior on ``(X, y)``; ``(X_val, y_val)`` stop SVI early and recalibrate. Returns self."""
        X = check_array(X, self.n_features, "X", min_rows=2)
        y = check_target(y, X.shape[0], "y", self.n_outputs)
        settings = self._settings(fit_kwargs)
        if (X_val is None) != (y_val is None):
            raise ValueError("X_val and y_val must be given together (or neither)")
        if X_val is not None:
            X_val = check_array(X_val, self.n_features, "X_val")
            train, val = [X, y], [X_val, check_target(y_val, X_val.shape[0], "y_val", self.n_outputs)]
        else:
            train, val = self._split([X, y], settings.val_fraction)
        if self.guide != "nuts" and not self._warm_pending and settings.epochs <= self.hyper["kl_warmup"]:
            raise ValueError(f"epochs={settings.epochs} must exceed kl_warmup={self.hyper['kl_warmup']}")
        self.module = self._draws = None
        self.dtype = torch.float32
        self.scaler = Standardizer().fit(train[0])
        self.y_scaler = Standardizer().fit(train[1])
        to_t = lambda a: torch.as_tensor(a, device=self.device)  # noqa: E731
        t_train = (to_t(self.scaler.transform(train[0])), to_t(self.y_scaler.transform(train[1])))
        t_val = (to_t(self.scaler.transform(val[0])), to_t(self.y_scaler.transform(val[1]))) if val else ()
        with seeded_torch_rng(self.seed, self.device):  # guide initialisation, ELBO samples, NUTS
            self.module = self._run_nuts(t_train) if self.guide == "nuts" else self._run_svi(t_train, t_val, settings)
        self._take_draws()
        self.variance_scale_ = 1.0
        if val:
            self.recalibrate(val[0], val[1])
        return self

    def _val_nll(self, guide: nn.Module, val: tuple[torch.Tensor, torch.Tensor], n_draws: int) -> float:
        mean, epi, ale = self._moments(val[0], self._sample_guide(guide, n_draws, self.seed + 2))
        return predictive_nll(val[1].cpu().numpy(), mean.cpu().numpy(), (epi + ale).sqrt().cpu().numpy(), self.df)

    def _run_svi(self, train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, ...],
                 s: Any) -> nn.Module:
        """SVI with KL annealing and early stopping on the validation NLL; returns the posterior guide."""
        guide = self._new_guide(self.guide)
        warm = self._apply_warm_start(guide)   # from a fitted posterior (warm_start): no KL annealing again
        params = [p for p in guide.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
        elbo = TraceMeanField_ELBO() if self.guide == "normal" else Trace_ELBO()
        warmup = 0 if warm else self.hyper["kl_warmup"]
        val_draws = 1 if self.guide == "laplace" else _VAL_DRAWS  # a MAP guide has one point
        stopper = EarlyStopping(s.patience)
        gen = self._generator(1)
        n = train[0].shape[0]
        self.history_ = []
        with own_param_store():
            for epoch in range(s.epochs):
                beta = min(1.0, (epoch + 1) / warmup) if warmup else 1.0
                scaled_guide = poutine.scale(guide, scale=beta)
                total = minibatch_epoch(
                    lambda idx: elbo.differentiable_loss(self.net, scaled_guide, train[0][idx], train[1][idx],
                                                         beta, n / idx.numel()) / n,
                    n, s, params, opt, gen, f"BayesianNN ELBO at epoch {epoch}")
                record = {"epoch": epoch, "beta": beta, "train_loss": total}
                if val:
                    record["val_nll"] = self._val_nll(guide, val, val_draws)
                self.history_.append(record)
                if beta == 1.0 and stopper.step(record.get("val_nll", total), epoch, guide.state_dict):
                    break
            if stopper.best_state is not None:
                guide.load_state_dict(stopper.best_state)
            self.best_epoch_ = stopper.best_epoch
            if self.guide == "laplace":
                guide = self._laplace(guide, train, val)
        return guide

    def _laplace(self, guide: AutoLaplaceApproximation, train: tuple[torch.Tensor, torch.Tensor],
                 val: tuple[torch.Tensor, ...]) -> nn.Module:
        """Gaussian posterior around the MAP from the Hessian of the full-data negative log joint.

        This is ``AutoLaplaceApproximation.laplace_approximation`` made robust in two standard ways.
        SVI stops (early) short of an exact optimum, where the likelihood's Hessian has negative
        eigenvalues and Pyro's inverse fails: the likelihood Hessian is projected onto the positive
        semi-definite cone (negative curvature clipped to 0), in float64. And the prior precision in
        the posterior precision ``H_lik + tau * H_prior`` is tuned on the validation NLL over a grid
        of ``tau`` (``tau = 1`` without a validation split): a Laplace posterior pushed through a
        network with the raw prior precision is far too wide in the directions the data leave flat.
        """
        guide_trace = poutine.trace(guide).get_trace(*train)
        model_trace = poutine.trace(poutine.replay(self.net, trace=guide_trace)).get_trace(*train)
        model_trace.compute_log_prob()
        sites = [site for site in model_trace.nodes.values() if site["type"] == "sample"]
        nll = -sum(site["log_prob_sum"] for site in sites if site["is_observed"])
        neg_log_prior = -sum(site["log_prob_sum"] for site in sites if not site["is_observed"])
        h_lik = hessian(nll, guide.loc).double()
        h_prior = hessian(neg_log_prior, guide.loc).double()
        eigval, eigvec = torch.linalg.eigh(0.5 * (h_lik + h_lik.T))
        h_lik = (eigvec * eigval.clamp(min=0.0)) @ eigvec.T
        best_nll, best = math.inf, None
        for tau in (_PRIOR_PRECISION_GRID if val else (1.0,)):
            cov = torch.cholesky_inverse(torch.linalg.cholesky(h_lik + tau * h_prior))
            scale = cov.diagonal().sqrt()
            posterior = self._new_guide("mvn")  # Pyro's parameterisation: loc, scale, correlation Cholesky
            posterior.loc.copy_(guide.loc.detach())
            posterior.scale.copy_(scale)
            posterior.scale_tril.copy_(torch.linalg.cholesky(cov / scale[:, None] / scale[None, :]))
            score = self._val_nll(posterior, val, _VAL_DRAWS) if val else 0.0
            if best is None or score < best_nll:
                best_nll, best, best_tau = score, posterior, tau
        self.history_.append({"laplace_prior_precision": best_tau, "val_nll": best_nll})
        return best

    def _run_nuts(self, train: tuple[torch.Tensor, torch.Tensor]) -> nn.Module:
        """NUTS on the full training data; the ``n_draws`` samples become the posterior."""
        kernel = NUTS(self.net, max_tree_depth=self.hyper["nuts_max_tree_depth"])
        mcmc = MCMC(kernel, num_samples=self.n_draws, warmup_steps=self.hyper["nuts_warmup"],
                    disable_progbar=True)
        with own_param_store():
            mcmc.run(*train)
        samples = mcmc.get_samples()
        bank = self._build()
        for i in range(len(self.net.layers)):
            getattr(bank, f"weight_{i}").copy_(samples[f"layers.{i}.weight"])
            getattr(bank, f"bias_{i}").copy_(samples[f"layers.{i}.bias"])
        self.history_ = [{"accept_rate": float(mcmc.diagnostics().get("acceptance rate", {}).get("chain 0", math.nan))}]
        return bank

    def recalibrate(self, X: Any, y: Any) -> "BayesianNN":
        """Refit the predictive variance scale on held-out ``(X, y)`` so that its central intervals cover them
        at their nominal levels (``fit_variance_scale(criterion="coverage")``); ``fit`` does this on its
        validation split. With ``fit_df=True`` the predictive's Student-t shape is fitted with it
        (``fit_shape_and_scale``; the likelihood's ``df`` stays what the network was trained with). Both read the
        targets that moved only (``moved_targets``: a flat bar's exact 0 is no draw of a continuous law)."""
        Z = self._prepare(X)
        y = check_target(y, Z.shape[0], "y", self.n_outputs)
        mean, epi, ale = self._moments(Z, self._draws)
        mean = mean.cpu().numpy()
        if self.hyper.get("zero_mean"):   # 0 in the target's units
            mean = np.broadcast_to(self.y_scaler.transform(np.zeros((1, self.n_outputs))), mean.shape)
        args = (self.y_scaler.transform(y), mean, (epi + ale).sqrt().cpu().numpy())
        moved = moved_targets(y)
        if self.hyper.get("fit_df"):
            self.df, self.variance_scale_ = fit_shape_and_scale(*args, moved=moved)
        else:
            self.variance_scale_ = fit_variance_scale(*args, self.df, criterion="coverage", moved=moved)
        return self

    # ----------------------------------------------------------------- prediction
    def predict(self, X: Any, n_samples: int = 100, level: float = 0.9) -> Prediction:
        """Posterior predictive mean, uncertainties and central ``level`` interval for rows ``X``.

        Uses ``n_samples`` (<= ``n_draws``) of the posterior draws taken at fit / load time.
        """
        self._require_fitted()
        if not (isinstance(n_samples, (int, np.integer)) and 2 <= n_samples <= self.n_draws):
            raise ValueError(f"n_samples must be an integer in [2, n_draws={self.n_draws}]; got {n_samples!r}")
        half_width = central_quantile(float(level), self.df)
        mean, epi, ale = self._moments(self._prepare(X), self._draw_subset(int(n_samples)))
        y_scale = self.y_scaler.scale
        c = np.sqrt(np.asarray(self.variance_scale_, dtype=np.float64))   # one scale, or one per output
        mean = mean.to("cpu", torch.float64).numpy() * y_scale + self.y_scaler.mean
        if self.hyper.get("zero_mean"):
            mean = np.zeros_like(mean)
        epistemic = np.sqrt(epi.to("cpu", torch.float64).numpy()) * (c * y_scale)
        aleatoric = np.sqrt(ale.to("cpu", torch.float64).numpy()) * (c * y_scale)
        std = np.sqrt(epistemic ** 2 + aleatoric ** 2)
        out = [mean, epistemic, aleatoric, std, mean - half_width * std, mean + half_width * std]
        if self.n_outputs == 1 and self.single_output_as_vector:
            out = [a[:, 0] for a in out]
        return Prediction(*out)

    # ----------------------------------------------------------------- persistence
    def _extra_state(self) -> dict[str, torch.Tensor]:
        fitted_df = {"predictive_df": torch.tensor(self.df, dtype=torch.float64)} if self.hyper.get("fit_df") else {}
        return {"y_mean": torch.as_tensor(self.y_scaler.mean), "y_scale": torch.as_tensor(self.y_scaler.scale),
                "variance_scale": torch.tensor(self.variance_scale_, dtype=torch.float64), **fitted_df}

    def _load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        self.y_scaler = Standardizer(state["y_mean"].cpu().numpy(), state["y_scale"].cpu().numpy())
        self.variance_scale_ = float(state["variance_scale"])
        if "predictive_df" in state:
            self.df = float(state["predictive_df"])
        self._take_draws()
