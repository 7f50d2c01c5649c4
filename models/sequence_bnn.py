"""Pyro Bayesian sequence model: a recurrent network reads the last ``seq_len`` bars of features, a Bayesian output
layer turns its last state into the mean and the noise scale of a heteroscedastic likelihood.

A row of ``X`` is a window of ``seq_len`` consecutive feature rows, oldest first: shape ``(n, seq_len, n_features)``,
or flattened bar by bar to ``(n, seq_len * n_features)`` (what a walk-forward indicator's input rows are). The body
is a GRU or an LSTM (``cell``) of width ``hidden``; its state after the last bar feeds the output layer, a
:class:`~btdensity.models.bnn_network.BayesianMLP` without hidden layers: Gaussian priors on its weights, a Gaussian
or Student-t likelihood per output, and a mean-field Normal posterior (``AutoNormal``) over those weights.

The body's weights are point estimates, trained inside the same SVI objective: the negative ELBO of the output
layer's posterior is differentiated with respect to the guide's parameters and the body's weights alike (with
``weight_decay`` on the body only: a Gaussian prior's MAP). Only the output layer is Bayesian, so the
epistemic spread is that of the read-out given the learnt summary of the window, not of the summary itself.

Everything else follows :class:`~btdensity.models.bnn.BayesianNN`, which this class extends: inputs standardised
with statistics of the fit data (per feature, over every bar of the windows), targets standardised, KL annealing
over ``kl_warmup`` epochs, early stopping on the validation NLL with a deep copy of the best state, ``n_draws``
posterior draws taken once (at fit and load), predictive moments split into epistemic and aleatoric variance, a
variance scale recalibrated on the validation split (``criterion="coverage"``), one checkpoint file, a fit that
draws from a forked torch RNG (the caller's random state is left as it was) and identical results for a seed.

>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(200, 6, 1)); y = X[:, :, 0].mean(axis=1) + 0.1 * rng.normal(size=200)
>>> seq = SequenceBNN(1, seq_len=6, hidden=8, kl_warmup=2).fit(X, y, epochs=6)
>>> pred = seq.predict(X[:3].reshape(3, 6), level=0.9)
>>> pred.mean.shape, bool((pred.lower < pred.mean).all() and (pred.mean < pred.upper).all())
((3,), True)
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pyro import poutine
from pyro.infer import TraceMeanField_ELBO
from torch import nn

from .base import BaseModel
from .bnn import _VAL_DRAWS, BayesianNN, check_likelihood_settings
from .bnn_network import BayesianMLP, own_param_store
from .checks import check_array, check_target
from .standardizer import Standardizer
from .training import EarlyStopping, minibatch_epoch, seeded_torch_rng

__all__ = ["CELLS", "SequenceBNN", "SequenceEncoder"]

#: recurrent cells of the body
CELLS = ("gru", "lstm")


class SequenceEncoder(nn.Module):
    """A one-layer GRU or LSTM over windows ``(n, seq_len, n_features)``; returns its state after the last bar,
    ``(n, hidden)``."""

    def __init__(self, n_features: int, hidden: int, cell: str):
        super().__init__()
        self.rnn = (nn.GRU if cell == "gru" else nn.LSTM)(n_features, hidden, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return out[:, -1]


class SequenceBNN(BayesianNN):
    """Recurrent body (point estimates) and Bayesian output layer (mean-field SVI) over windows of feature rows.

    Parameters: ``n_features`` per bar; ``seq_len`` bars per window; ``hidden`` width of the recurrent state;
    ``cell`` ``"gru"`` or ``"lstm"``; ``likelihood`` ``"gaussian"`` or ``"studentt"`` (with ``df`` > 2);
    ``prior_scale`` of the output layer's weight priors; ``n_outputs`` targets; ``kl_warmup`` epochs of KL annealing;
    ``init_scale`` of the variational standard deviations; ``n_draws`` posterior draws taken once for ``predict``;
    ``zero_mean`` as :class:`~btdensity.models.bnn.BayesianNN`'s.

    ``fit(X, y, X_val=None, y_val=None, epochs=..., batch_size=..., lr=..., weight_decay=..., patience=...,
    val_fraction=...)``: ``weight_decay`` applies to the body; ``predict(X, n_samples, level)`` as
    :meth:`BayesianNN.predict`, for windows ``X``.
    """

    fit_defaults = {"epochs": 200, "batch_size": 128, "lr": 5e-3, "weight_decay": 1e-4, "patience": 20}

    def __init__(self, n_features: int, seq_len: int, hidden: int = 16, cell: str = "gru",
                 likelihood: str = "studentt", prior_scale: float = 1.0, n_outputs: int = 1, *, df: float = 5.0,
                 kl_warmup: int = 10, init_scale: float = 0.01, n_draws: int = 100, zero_mean: bool = False,
                 seed: int = 0, device: str | None = None):
        for name, value in (("seq_len", seq_len), ("hidden", hidden), ("n_outputs", n_outputs)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}; got {cell!r}")
        check_likelihood_settings(likelihood, prior_scale, init_scale, df)
        if n_draws < 2 or kl_warmup < 0:
            raise ValueError(f"need n_draws >= 2 and kl_warmup >= 0; got n_draws={n_draws}, kl_warmup={kl_warmup}")
        BaseModel.__init__(self, n_features, seed=seed, device=device, seq_len=int(seq_len), hidden=int(hidden),
                           cell=cell, likelihood=likelihood, prior_scale=float(prior_scale), n_outputs=int(n_outputs),
                           df=float(df), kl_warmup=int(kl_warmup), init_scale=float(init_scale),
                           n_draws=int(n_draws), **({"zero_mean": True} if zero_mean else {}))
        self.seq_len = int(seq_len)
        self.hidden = int(hidden)
        self.cell = cell
        self.n_outputs = int(n_outputs)
        self.likelihood = likelihood
        self.guide = "normal"
        self.n_draws = int(n_draws)
        self.df = float(df) if likelihood == "studentt" else None  # the predictive's shape, for calibration
        with seeded_torch_rng(self.seed, self.device):  # nn.Linear's initial weights (replaced by the priors)
            # the output layer: a BayesianMLP without hidden layers (its activation is never applied)
            self.net = BayesianMLP(self.hidden, [], self.n_outputs, float(prior_scale), "relu", likelihood,
                                   float(df), self.device)
        self.y_scaler: Standardizer | None = None
        self.variance_scale_ = 1.0
        self._draws: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None
        self._subsets: dict[int, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}

    # ----------------------------------------------------------------- modules
    def _dummy_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A tiny observed batch of the output layer's inputs (recurrent states) to trace the guide with."""
        return (torch.zeros(2, self.hidden, device=self.device), torch.zeros(2, self.n_outputs, device=self.device))

    def _build(self) -> nn.Module:
        """The fitted state: the recurrent ``body`` and the output layer's posterior ``guide``."""
        return nn.ModuleDict({"body": SequenceEncoder(self.n_features, self.hidden, self.cell),
                              "guide": self._new_guide("normal")}).to(self.device)

    def _take_draws(self) -> None:
        self._draws = self._sample_guide(self.module["guide"], self.n_draws, self.seed + 3)
        self._subsets = {}

    def _cast(self, dtype: torch.dtype) -> None:
        """Evaluation reads the body and the posterior draws."""
        super()._cast(dtype)
        self.module["body"].to(dtype)

    # ----------------------------------------------------------------- data
    def _windows(self, X: Any, name: str = "X", min_rows: int = 1) -> np.ndarray:
        """``X`` as float64 windows ``(n, seq_len, n_features)``, or a ValueError naming what is wrong."""
        L, F = self.seq_len, self.n_features
        arr = np.asarray(X)
        if arr.ndim == 3 and arr.shape[1:] == (L, F):
            arr = arr.reshape(arr.shape[0], L * F)
        elif arr.ndim != 2 or arr.shape[1] != L * F:
            raise ValueError(f"{name} must have shape (n, {L}, {F}) or (n, {L * F}) (the last seq_len={L} bars' "
                             f"{F} features, oldest first); got shape {arr.shape}")
        return check_array(arr, L * F, name, min_rows=min_rows, dtype=np.float64).reshape(-1, L, F)

    def _standardise(self, W: np.ndarray, dtype: type = np.float32) -> np.ndarray:
        return self.scaler.transform(W.reshape(-1, self.n_features), dtype=dtype).reshape(W.shape)

    def _prepare(self, X: Any, name: str = "X") -> torch.Tensor:
        """The recurrent state after the last bar of each window of ``X``: the output layer's inputs."""
        self._require_fitted()
        W = self._standardise(self._windows(X, name), np.float64 if self.dtype == torch.float64 else np.float32)
        return self._batched(self.module["body"], torch.as_tensor(W, device=self.device))

    # ----------------------------------------------------------------- fitting
    def fit(self, X: Any, y: Any, X_val: Any = None, y_val: Any = None, **fit_kwargs: Any) -> "SequenceBNN":
        """Fit body and posterior on windows ``X`` and targets ``y``; ``(X_val, y_val)`` stop SVI early and
        recalibrate (without them a random ``val_fraction`` of the rows is held out). Returns self."""
        W = self._windows(X, "X", min_rows=2)
        y = check_target(y, W.shape[0], "y", self.n_outputs)
        settings = self._settings(fit_kwargs)
        if (X_val is None) != (y_val is None):
            raise ValueError("X_val and y_val must be given together (or neither)")
        if X_val is not None:
            W_val = self._windows(X_val, "X_val")
            train, val = [W, y], [W_val, check_target(y_val, W_val.shape[0], "y_val", self.n_outputs)]
        else:
            train, val = self._split([W, y], settings.val_fraction)
        if not self._warm_pending and settings.epochs <= self.hyper["kl_warmup"]:
            raise ValueError(f"epochs={settings.epochs} must exceed kl_warmup={self.hyper['kl_warmup']}")
        self.module = self._draws = None
        self.dtype = torch.float32
        self.scaler = Standardizer().fit(train[0].reshape(-1, self.n_features))
        self.y_scaler = Standardizer().fit(train[1])
        to_t = lambda a: torch.as_tensor(a, device=self.device)  # noqa: E731
        t_train = (to_t(self._standardise(train[0])), to_t(self.y_scaler.transform(train[1])))
        t_val = (to_t(self._standardise(val[0])), to_t(self.y_scaler.transform(val[1]))) if val else ()
        with seeded_torch_rng(self.seed, self.device):  # body and guide initialisation, ELBO samples
            self.module = self._run_svi(t_train, t_val, settings)
        self.module.eval()
        self._take_draws()
        self.variance_scale_ = 1.0
        if val:
            self.recalibrate(val[0], val[1])
        return self

    def _run_svi(self, train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, ...],
                 s: Any) -> nn.Module:
        """SVI of the output layer's posterior with the body's weights as point estimates in the same objective;
        KL annealing, early stopping on the validation NLL; returns the module of body and guide."""
        module = self._build()
        warm = self._apply_warm_start(module)   # from a fitted model (warm_start): no KL annealing again
        body, guide = module["body"], module["guide"]
        opt = torch.optim.AdamW([{"params": list(body.parameters()), "weight_decay": s.weight_decay},
                                 {"params": list(guide.parameters()), "weight_decay": 0.0}], lr=s.lr)
        params = list(module.parameters())
        elbo = TraceMeanField_ELBO()
        warmup = 0 if warm else self.hyper["kl_warmup"]
        stopper = EarlyStopping(s.patience)
        gen = self._generator(1)
        n = train[0].shape[0]
        self.history_ = []

        def model(x: torch.Tensor, y: torch.Tensor, beta: float, data_scale: float) -> torch.Tensor:
            return self.net(body(x), y, beta, data_scale)

        with own_param_store():
            for epoch in range(s.epochs):
                module.train()
                beta = min(1.0, (epoch + 1) / warmup) if warmup else 1.0
                scaled_guide = poutine.scale(guide, scale=beta)
                total = minibatch_epoch(
                    lambda idx: elbo.differentiable_loss(model, scaled_guide, train[0][idx], train[1][idx], beta,
                                                         n / idx.numel()) / n,
                    n, s, params, opt, gen, f"SequenceBNN ELBO at epoch {epoch}")
                record = {"epoch": epoch, "beta": beta, "train_loss": total}
                if val:
                    module.eval()
                    with torch.no_grad():
                        states = body(val[0])
                    record["val_nll"] = self._val_nll(guide, (states, val[1]), _VAL_DRAWS)
                self.history_.append(record)
                if beta == 1.0 and stopper.step(record.get("val_nll", total), epoch, module.state_dict):
                    break
            if stopper.best_state is not None:
                module.load_state_dict(stopper.best_state)
            self.best_epoch_ = stopper.best_epoch
        return module
