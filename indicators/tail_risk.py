"""``TailRisk``: value-at-risk and expected shortfall of the forward log return, conditional on today's market state,
from a deep model of ``p(r | x)``, walk-forward like every model indicator.

The model learns the joint law of the next ``horizon`` one-bar log returns given the features ``x_t`` (row ``t``'s
label is ``(r_{t+1}, …, r_{t+h})``, known at bar ``t + h``), one of:

* ``"flow"`` -- :class:`~btdensity.models.conditional_flow.ConditionalRealNVP`, an exact conditional density;
* ``"bnn"`` -- :class:`~btdensity.models.mixture_bnn.MixtureBNN`, the Bayesian network's predictive: the mixture over
  posterior draws of its Student-t likelihood (not a t matched to its moments);
* ``"score"`` -- :class:`~btdensity.models.conditional_score.ConditionalScoreModel` of ``(x, r)``, read with the
  state held fixed (the score integrated along ``r``; Langevin over ``r`` for several returns and for scenarios).

Lines, for the ``h``-bar log return ``R = r_{t+1} + … + r_{t+h}`` and ``p = 1 - level``:

* ``var`` -- the ``p`` quantile of ``R`` (a return: a long loses ``1 - exp(var)`` of its value or more with
  probability ``p``); ``cvar`` -- the expected shortfall ``E[R | R <= var]``;
* ``var_short``, ``cvar_short`` -- the same for a short: the ``1 - p`` quantile and ``E[R | R >= var_short]``.

With ``horizon = 1`` the figures are exact functions of the fitted model (the flow's inverse at normal quantiles and
a Gaussian quadrature; the posterior mixture's quantile by bisection and its shortfall in closed form; the score's
conditional density on a grid of ``grid_points``). With ``horizon > 1`` they come from ``n_samples`` draws of the
path, the same draws for every bar (common random numbers: a bar's value depends on its own row only), so they are
exact functions of the model too, with Monte Carlo error.

``level`` is not part of the fit: indicators that differ only in ``level`` share their fitted models (the model
cache), so a 95 % and a 99 % line cost one fit. :meth:`TailRisk.scenarios` draws return paths from the model that
serves a bar (see :mod:`btdensity.indicators.scenarios`).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from btdensity.labels import forward_log_returns
from btdensity.models.conditional_flow import ConditionalRealNVP
from btdensity.models.conditional_score import ConditionalScoreModel
from btdensity.models.mixture_bnn import MixtureBNN
from btdensity.models.tail import grid_tail, mixture_t_tail, sample_tail

from .base import WalkForwardIndicator

__all__ = ["TAIL_MODELS", "TailRisk"]

#: model family -> (class, default model_kwargs, default fit_kwargs)
TAIL_MODELS: dict[str, tuple[type, dict[str, Any], dict[str, Any]]] = {
    "flow": (ConditionalRealNVP, {"n_layers": 3, "hidden": 32}, {"epochs": 100, "patience": 10, "lr": 5e-3}),
    "bnn": (MixtureBNN, {"hidden": (32, 16), "kl_warmup": 20, "likelihood": "studentt"},
            {"epochs": 80, "patience": 10, "lr": 5e-3}),
    "score": (ConditionalScoreModel, {"hidden": 64, "n_blocks": 2},
              {"epochs": 60, "patience": 10, "lr": 2e-3}),
}


def _upper(tail: Any, *args: Any) -> tuple[np.ndarray, np.ndarray]:
    """The upper tail through the lower one of the negated law: ``tail`` gets negated inputs, its outputs negated."""
    var, cvar = tail(*args)
    return -var, -cvar


class TailRisk(WalkForwardIndicator):
    """Conditional VaR (``var``) and expected shortfall (``cvar``) of the next ``horizon`` bars' log return at
    ``level``, and both for a short (``var_short``, ``cvar_short``), from ``model`` = ``"flow"`` | ``"bnn"`` |
    ``"score"``. ``n_draws``: posterior draws of the BNN; ``n_samples``: Monte Carlo paths when ``horizon > 1``;
    ``grid_points``: the score model's grid."""

    lines = ("var", "cvar", "var_short", "cvar_short")
    params = (("horizon", 1), ("level", 0.95), ("model", "flow"), ("n_draws", 64), ("n_samples", 2000),
              ("grid_points", 481))
    plotinfo = dict(subplot=True, plothlines=[0.0], plotname="Tail risk")
    plotlines = dict(var=dict(color="#d62728"), cvar=dict(color="#8c1c13", linestyle="--"),
                     var_short=dict(_plotskip=True), cvar_short=dict(_plotskip=True))
    uses_labels = True

    def __init__(self) -> None:
        if self.p.model not in TAIL_MODELS:
            raise ValueError(f"TailRisk(model={self.p.model!r}): choose one of {sorted(TAIL_MODELS)}")
        if not 0.5 < self.p.level < 1.0:
            raise ValueError(f"TailRisk(level={self.p.level}): level must be in (0.5, 1), e.g. 0.95 or 0.99")
        for name in ("horizon", "n_draws", "n_samples", "grid_points"):
            if int(getattr(self.p, name)) < (2 if name != "horizon" else 1):
                raise ValueError(f"TailRisk({name}={getattr(self.p, name)}): too small")
        super().__init__()
        _, model_kwargs, fit_kwargs = TAIL_MODELS[self.p.model]
        self.model_kwargs = {**model_kwargs, **(self.p.model_kwargs or {})}
        self.fit_kwargs = {**fit_kwargs, **(self.p.fit_kwargs or {})}
        if self.p.model == "bnn":
            self.keep_kl_warmup_within_epochs()

    # ------------------------------------------------------------------ hooks
    def model_class(self) -> type:
        return TAIL_MODELS[self.p.model][0]

    def extra_config(self) -> dict[str, Any]:
        return {"family": self.p.model}

    def labels(self, close: np.ndarray) -> np.ndarray:
        """Row ``t``: the one-bar log returns ``r_{t+1} … r_{t+h}`` (NaN until bar ``t + h``), shape ``(n, h)``."""
        one = forward_log_returns(close, 1)
        h = self.spec.horizon
        return np.column_stack([np.concatenate([one[j:], np.full(j, np.nan)]) for j in range(h)])

    def make_model(self, n_features: int) -> Any:
        h, seed = self.spec.horizon, int(self.p.seed)
        if self.p.model == "flow":
            return ConditionalRealNVP(n_features, n_targets=h, seed=seed, **self.model_kwargs)
        if self.p.model == "bnn":
            return MixtureBNN(n_features, n_outputs=h, seed=seed, **self.model_kwargs)
        return ConditionalScoreModel(n_features + h, n_targets=h, seed=seed, **self.model_kwargs)

    def fit_model(self, model: Any, X: np.ndarray, y: np.ndarray | None, X_val: np.ndarray,
                  y_val: np.ndarray | None) -> None:
        if self.p.model == "score":
            model.fit(np.column_stack([X, y]), X_val=np.column_stack([X_val, y_val]), **self.fit_kwargs)
        elif self.p.model == "flow":
            model.fit(X, y, X_val, y_val, **self.fit_kwargs)
        else:
            model.fit(X, y, X_val=X_val, y_val=y_val, **self.fit_kwargs)

    def calibrate(self, model: Any, X_val: np.ndarray, y_val: np.ndarray | None) -> Any:
        """The score model's grid of the return, over the range of its fit rows (other models need no state).
        Independent of ``level``, so indicators of other levels can share it."""
        return model.target_grid(int(self.p.grid_points)) if self.p.model == "score" and self.spec.horizon == 1 else None

    def evaluate(self, model: Any, state: Any, X: np.ndarray) -> np.ndarray:
        prob = 1.0 - float(self.p.level)
        if self.spec.horizon > 1:
            total = self._paths(model, X, int(self.p.n_samples), None).sum(axis=2)
            lower, upper = sample_tail(total, prob), _upper(sample_tail, -total, prob)
        elif self.p.model == "flow":
            lower, upper = model.tail(X, prob), model.tail(X, prob, upper=True)
        elif self.p.model == "bnn":
            loc, scale = (a[:, :, 0] for a in model.components(X, int(self.p.n_draws)))
            lower = mixture_t_tail(loc, scale, model.tail_df, prob)
            upper = _upper(mixture_t_tail, -loc, scale, model.tail_df, prob)
        else:
            logp = model.conditional_log_density(X, state)
            lower, upper = grid_tail(state, logp, prob), _upper(grid_tail, -state[::-1], logp[:, ::-1], prob)
        return np.column_stack([lower[0], lower[1], upper[0], upper[1]])

    # ------------------------------------------------------------------ scenarios
    def _paths(self, model: Any, X: np.ndarray, n: int, seed: int | None) -> np.ndarray:
        """``n`` draws of the next ``horizon`` one-bar log returns for each row: ``(rows, n, horizon)``."""
        if self.p.model == "flow":
            return model.sample(X, n, seed=seed)
        if self.p.model == "bnn":
            return model.sample(X, n, n_draws=int(self.p.n_draws), seed=seed)
        return model.conditional_sample(X, n, seed=seed)

    def scenarios(self, bar: int, n_paths: int = 500, seed: int | None = None) -> np.ndarray:
        """``n_paths`` scenarios of the next ``horizon`` bars after bar ``bar`` (an index into the data, after a run),
        from the model that serves that bar, given that bar's state: cumulative log returns from its close, shape
        ``(n_paths, horizon)``. Reads bars ``<= bar`` only; the model comes from the cache the run filled."""
        first = self.spec.first_fit
        if not first <= bar < self.data.buflen():
            raise ValueError(f"bar {bar} has no model: TailRisk serves bars {first} … {self.data.buflen() - 1}")
        X, y = self._features_and_labels(self._first_bars(bar + 1), bar)
        model, _ = self._window_model(self.spec.fit_index(bar), X, y)
        row = X[bar:bar + 1]
        if model is None or not np.isfinite(row).all():
            return np.full((int(n_paths), self.spec.horizon), np.nan)
        return np.cumsum(self._paths(model, row, int(n_paths), seed)[0], axis=1)
