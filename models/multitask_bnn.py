"""A multi-task Bayesian neural network: one shared body over the inputs, one head per task (asset).

``MultiTaskBNN(n_features, n_tasks)`` regresses ``n_tasks`` targets (e.g. the forward returns of several assets) on
one input row (e.g. the features of all of them). The body's hidden layers are shared by every task — what they
learn of the common state (a market-wide volatility, say) is learnt from every asset's returns at once — and each
task has its own head (``head_hidden`` layers and an output of a mean and a noise scale), so each asset's return and
its risk may depend on that state in its own way.

It is :class:`~btdensity.models.BayesianNN` with this network: the same Gaussian priors on every weight, the same
heteroscedastic Gaussian or Student-t likelihood, SVI with KL annealing and early stopping on the validation NLL,
posterior draws taken once at the end of ``fit`` (and at ``load``) and evaluated with batched matrix products, the
same split of the predictive variance into epistemic and aleatoric parts, and its own param-store scope. Targets are
standardised per task and the predictive variance is recalibrated per task on the validation split.

>>> rng = np.random.default_rng(0)
>>> X = rng.uniform(-1, 1, size=(400, 2)); Y = np.column_stack([X[:, 0], -X[:, 0]]) + 0.1 * rng.normal(size=(400, 2))
>>> model = MultiTaskBNN(2, n_tasks=2, hidden=(16,), head_hidden=(8,), kl_warmup=5).fit(X, Y, epochs=30)
>>> model.predict(X[:3]).mean.shape
(3, 2)
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.nn import PyroModule, PyroSample
from torch import nn

from .bnn import BayesianNN
from .bnn_network import ACTIVATIONS, mlp, own_param_store
from .calibration import fit_variance_scale, moved_targets
from .checks import check_target
from .training import seeded_torch_rng

__all__ = ["MultiTaskBNN", "MultiTaskMLP"]

GUIDES = ("normal", "lowrank")
_MIN_NOISE = 1e-3          # floor of the noise scale, in standardised target units (as BayesianMLP's)
_CHUNK_ELEMENTS = 1 << 22  # bound on draws * rows * width held at once by predict


def _bayesian_linear(fan_in: int, fan_out: int, prior_scale: float, device: torch.device) -> PyroModule:
    """A linear layer with priors ``N(0, prior_scale² / fan_in)`` on the weights and ``N(0, prior_scale²)`` on the
    biases (:class:`~btdensity.models.bnn_network.BayesianMLP`'s)."""
    layer = PyroModule[nn.Linear](fan_in, fan_out)
    zero = torch.zeros((), device=device)
    w_scale = torch.full((), prior_scale / math.sqrt(fan_in), device=device)
    layer.weight = PyroSample(dist.Normal(zero, w_scale).expand([fan_out, fan_in]).to_event(2))
    layer.bias = PyroSample(dist.Normal(zero, zero + prior_scale).expand([fan_out]).to_event(1))
    return layer


class MultiTaskMLP(PyroModule):
    """Pyro model: a shared body (``hidden`` widths) and ``n_tasks`` heads (``head_hidden`` widths, then a mean and a
    noise scale), Gaussian priors on every weight, a heteroscedastic likelihood on the ``(n, n_tasks)`` targets."""

    def __init__(self, n_features: int, hidden: Sequence[int], head_hidden: Sequence[int], n_tasks: int,
                 prior_scale: float, activation: str, likelihood: str, df: float, device: torch.device):
        super().__init__()
        body = [n_features, *hidden]
        head = [body[-1], *head_hidden, 2]
        self.n_tasks = n_tasks
        self.activation = ACTIVATIONS[activation]
        self.likelihood = likelihood
        self.df = df
        self.body = PyroModule[nn.ModuleList]([_bayesian_linear(a, b, prior_scale, device)
                                               for a, b in zip(body, body[1:])])
        self.heads = PyroModule[nn.ModuleList]([
            PyroModule[nn.ModuleList]([_bayesian_linear(a, b, prior_scale, device) for a, b in zip(head, head[1:])])
            for _ in range(n_tasks)])

    def site_names(self) -> list[str]:
        """The layers' names in the order of :meth:`run`'s weights: the body's, then each head's."""
        return ([f"body.{i}" for i in range(len(self.body))]
                + [f"heads.{k}.{j}" for k in range(self.n_tasks) for j in range(len(self.heads[k]))])

    def run(self, x: torch.Tensor, weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor]
            ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and noise scale ``(..., n, n_tasks)`` for one weight set or a stack of draws (``w: (S, out, in)``),
        the weights in :meth:`site_names`' order."""
        n_body, n_head = len(self.body), len(self.heads[0])
        h = self.activation(mlp(x, weights[:n_body], biases[:n_body], self.activation)) if n_body else x
        locs, scales = [], []
        for k in range(self.n_tasks):
            part = slice(n_body + k * n_head, n_body + (k + 1) * n_head)
            out = mlp(h, weights[part], biases[part], self.activation)
            locs.append(out[..., 0])
            scales.append(F.softplus(out[..., 1]) + _MIN_NOISE)
        return torch.stack(locs, dim=-1), torch.stack(scales, dim=-1)

    def noise_variance(self, scale: torch.Tensor) -> torch.Tensor:
        """Variance of the likelihood with this scale (Student-t: scale² × df / (df - 2))."""
        var = scale * scale
        return var if self.likelihood == "gaussian" else var * (self.df / (self.df - 2.0))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, beta: float = 1.0,
                data_scale: float = 1.0) -> torch.Tensor:
        # beta < 1 anneals the KL term (the guide is scaled alike); data_scale lifts a mini-batch to N.
        layers = [*self.body, *(layer for head in self.heads for layer in head)]
        with poutine.scale(scale=beta):
            weights = [layer.weight for layer in layers]
            biases = [layer.bias for layer in layers]
        loc, scale = self.run(x, weights, biases)
        noise = dist.Normal(loc, scale) if self.likelihood == "gaussian" else dist.StudentT(self.df, loc, scale)
        with pyro.plate("data", x.shape[0]), poutine.scale(scale=data_scale):
            return pyro.sample("y", noise.to_event(1), obs=y)


class MultiTaskBNN(BayesianNN):
    """Bayesian multi-task regression: a shared body, one head per task (see the module docstring).

    Parameters as :class:`~btdensity.models.BayesianNN`'s (``hidden`` are the shared body's widths) plus ``n_tasks``
    (the targets, one column of ``y`` each) and ``head_hidden`` (each head's hidden widths; ``()``: a linear head).
    ``guide`` is ``"normal"`` (mean field) or ``"lowrank"``. ``fit(X, Y, X_val=None, Y_val=None, ...)`` takes
    ``Y`` of shape ``(n, n_tasks)``; ``predict`` returns a :class:`~btdensity.models.Prediction` whose arrays have
    shape ``(n, n_tasks)`` (also for one task). ``variance_scale_`` holds each task's recalibration factor.
    """

    single_output_as_vector = False

    def __init__(self, n_features: int, n_tasks: int = 2, hidden: Sequence[int] = (32,),
                 head_hidden: Sequence[int] = (16,), likelihood: str = "gaussian", guide: str = "normal",
                 prior_scale: float = 1.0, *, df: float = 5.0, activation: str = "relu", kl_warmup: int = 50,
                 init_scale: float = 0.01, rank: int | None = None, n_draws: int = 100, seed: int = 0,
                 device: str | None = None):
        if isinstance(n_tasks, bool) or not isinstance(n_tasks, (int, np.integer)) or n_tasks < 1:
            raise ValueError(f"n_tasks must be a positive integer; got {n_tasks!r}")
        head_hidden = [head_hidden] if isinstance(head_hidden, (int, np.integer)) else list(head_hidden)
        if not all(isinstance(h, (int, np.integer)) and h >= 1 for h in head_hidden):
            raise ValueError(f"head_hidden must be a sequence of positive integer widths; got {head_hidden!r}")
        if guide not in GUIDES:
            raise ValueError(f"guide must be one of {GUIDES}; got {guide!r}")
        super().__init__(n_features, hidden=hidden, likelihood=likelihood, guide=guide, prior_scale=prior_scale,
                         n_outputs=int(n_tasks), df=df, activation=activation, kl_warmup=kl_warmup,
                         init_scale=init_scale, rank=rank, n_draws=n_draws, seed=seed, device=device)
        # the saved config: this constructor's arguments (BayesianNN's n_outputs and NUTS settings do not apply)
        self.hyper = {"n_tasks": int(n_tasks), "hidden": self.hyper["hidden"],
                      "head_hidden": [int(h) for h in head_hidden],
                      **{k: self.hyper[k] for k in ("likelihood", "guide", "prior_scale", "df", "activation",
                                                    "kl_warmup", "init_scale", "rank", "n_draws")}}
        self.n_tasks = int(n_tasks)
        with seeded_torch_rng(self.seed, self.device):  # nn.Linear's initial weights (replaced by the priors)
            self.net = MultiTaskMLP(self.n_features, self.hyper["hidden"], self.hyper["head_hidden"], self.n_tasks,
                                    float(prior_scale), activation, likelihood, float(df), self.device)
        self.variance_scale_ = np.ones(self.n_tasks)

    # ----------------------------------------------------------------- posterior draws and moments
    def _sample_guide(self, guide: nn.Module, n: int, seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``n`` posterior weight draws from a guide, deterministic for ``seed``, in the network's layer order."""
        with own_param_store(), torch.no_grad(), seeded_torch_rng(seed, self.device):
            with pyro.plate("posterior_draws", n, dim=-1):  # one vectorised call draws all n
                sample = guide(*self._dummy_data())
        names = self.net.site_names()
        return [sample[f"{name}.weight"] for name in names], [sample[f"{name}.bias"] for name in names]

    def _moments(self, Z: torch.Tensor, draws: tuple[list[torch.Tensor], list[torch.Tensor]]
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Predictive mean, epistemic and aleatoric variance ``(n, n_tasks)`` (standardised units) for rows ``Z``."""
        weights, biases = draws
        width = max(max(w.shape[1] for w in weights), 2 * self.n_tasks)
        chunk = max(1, _CHUNK_ELEMENTS // (weights[0].shape[0] * width * self.n_tasks))
        parts = []
        with torch.no_grad():
            for i in range(0, max(Z.shape[0], 1), chunk):
                loc, scale = self.net.run(Z[i:i + chunk], weights, biases)
                parts.append(torch.stack([loc.mean(0), loc.var(0, unbiased=False),
                                          self.net.noise_variance(scale).mean(0)]))
        out = torch.cat(parts, dim=1)
        return out[0], out[1], out[2]

    # ----------------------------------------------------------------- calibration and prediction
    def fit(self, X: Any, y: Any, X_val: Any = None, y_val: Any = None, **fit_kwargs: Any) -> "MultiTaskBNN":
        """Fit the posterior on ``(X, y)`` (``y``: ``(n, n_tasks)``); ``(X_val, y_val)`` stop SVI early and
        recalibrate each task. Returns self."""
        super().fit(X, y, X_val=X_val, y_val=y_val, **fit_kwargs)
        self.variance_scale_ = np.broadcast_to(np.asarray(self.variance_scale_, dtype=np.float64),
                                               (self.n_tasks,)).copy()
        return self

    def recalibrate(self, X: Any, y: Any) -> "MultiTaskBNN":
        """Refit each task's predictive variance scale on held-out ``(X, y)`` (coverage criterion, as BayesianNN's)."""
        Z = self._prepare(X)
        y = check_target(y, Z.shape[0], "y", self.n_outputs)
        moved = moved_targets(y)
        y = self.y_scaler.transform(y, dtype=np.float64)
        mean, epi, ale = self._moments(Z, self._draws)
        mean, std = mean.cpu().double().numpy(), (epi + ale).sqrt().cpu().double().numpy()
        self.variance_scale_ = np.array([fit_variance_scale(y[:, k], mean[:, k], std[:, k], self.df,
                                                            criterion="coverage", moved=moved[:, k])
                                         for k in range(self.n_tasks)])
        return self

    # ----------------------------------------------------------------- persistence
    def _load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        super()._load_extra_state({**state, "variance_scale": torch.zeros(())})
        self.variance_scale_ = state["variance_scale"].cpu().double().numpy().reshape(self.n_tasks).copy()
