"""``RegimePool``: ``Regime``'s model — its JEM's class probabilities pooled with two classical forecasts.

The probabilities are the equal-weight mixture (linear pool) of three forecasts of the next ``h`` bars' regime:

- the joint energy-based classifier (:class:`~btdensity.models.jem.JointEnergyClassifier`) on the bar's features,
  which also gives the energy;
- persistence: the training window's transition frequencies from the last label known
  (:class:`~btdensity.indicators.persistence.RegimeTransitions`);
- the regime implied by a volatility forecast
  (:class:`~btdensity.indicators.volatility_regime.VolatilityRegimeForecast`).

Why a pool: a 2,000-bar window's 24-bar labels overlap, so it holds ~60 independent labels. The JEM fitted to them
is overconfident out of sample (alone it scored 1.233 / 1.211 nats on BTC/USDT hourly 2017-19, seeds 0 / 1, against
persistence's 1.199), while the classical forecasts fit little (a 4 x 4 transition table; six regression
coefficients and the window's residuals). A linear pool's log loss is at most the mean of its members' (the log is
concave), and equal weights are fitted to nothing, so there is nothing to overfit; weights fitted on the held-out
tail trusted the JEM too much (measured: a pool with a fitted weight scored 1.231). Measured on the same data: all
three 1.152 / 1.147; the volatility forecast alone 1.157, the two classical forecasts pooled without the JEM 1.148:
the JEM adds nothing measurable to the probabilities there (its own product is the energy), and the pool keeps it
because it costs nothing measurable either and the indicator's energy comes from the same fit.

Inputs: the columns of a row are the JEM's features, then the volatility forecast's ``VOLATILITY_FEATURES``, then
the last known forward row ``[return, realised vol]`` of bar ``t − h`` (persistence's input). The checkpoint is the
JEM's, with the two classical models' fitted numbers in its ``meta`` (JSON; floats round-trip exactly).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from btdensity.models import JointEnergyClassifier
from btdensity.models.torch_wrapper import TorchWrapper

from .persistence import RegimeTransitions
from .regime import regime_labels
from .volatility_regime import VolatilityRegimeForecast

__all__ = ["PREVIOUS_COLUMNS", "RegimePool"]

PREVIOUS_COLUMNS = 2   # columns of the last known forward row


class RegimePool(TorchWrapper):
    """The JEM, persistence and the volatility forecast of one training window; ``proba_and_energy`` gives the
    equal-weight mixture of their class probabilities and the JEM's energy."""

    fit_defaults = JointEnergyClassifier.fit_defaults
    inner = JointEnergyClassifier
    META_KEY = "regime_pool"
    STATE_NAME = "the state of a RegimePool"

    def __init__(self, jem: JointEnergyClassifier, n_volatility: int):
        self.jem, self.n_volatility = jem, int(n_volatility)
        self.transitions = RegimeTransitions()
        self.volatility = VolatilityRegimeForecast(self.n_volatility)
        self.meta_: dict[str, Any] = {}

    @property
    def n_jem(self) -> int:
        return self.jem.n_features

    def _split(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        X = np.asarray(X, dtype=np.float64)
        expected = self.n_jem + self.n_volatility + PREVIOUS_COLUMNS
        if X.ndim != 2 or X.shape[1] != expected:
            raise ValueError(f"RegimePool rows have {expected} columns (JEM features {self.n_jem}, volatility "
                             f"features {self.n_volatility}, last forward row {PREVIOUS_COLUMNS}); got shape {X.shape}")
        a, b = self.n_jem, self.n_jem + self.n_volatility
        return X[:, :a], X[:, a:b], X[:, b:]

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
            **fit_kwargs: Any) -> "RegimePool":
        """Fit the three on fit rows ``X`` / forward rows ``y`` and the held-out tail ``X_val`` / ``y_val``; every
        label with the fit rows' thresholds."""
        (jf, vf, pf), (jv, vv, pv) = self._split(X), self._split(X_val)
        self.jem.fit(jf, regime_labels(y), X_val=jv, y_val=regime_labels(y_val, reference=y), **fit_kwargs)
        self.transitions.fit(pf, y, pv, y_val)
        self.volatility.fit(vf, y, vv, y_val)
        return self

    def proba_and_energy(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(pooled class probabilities, JEM energy)`` of each row."""
        jf, vf, pf = self._split(X)
        proba, energy = self.jem.proba_and_energy(jf)
        pooled = (proba + self.transitions.predict_proba(pf) + self.volatility.predict_proba(vf)) / 3.0
        return pooled, energy

    @property
    def torch_model(self) -> JointEnergyClassifier:
        return self.jem

    def wrapped_state(self) -> dict[str, Any]:
        return {"n_volatility": self.n_volatility, "transitions": self.transitions.state(),
                "volatility": self.volatility.state()}

    @classmethod
    def from_wrapped_state(cls, model: JointEnergyClassifier, state: dict[str, Any]) -> "RegimePool":
        pool = cls(model, state["n_volatility"])
        pool.transitions = RegimeTransitions.from_state(state["transitions"])
        pool.volatility = VolatilityRegimeForecast.from_state(state["volatility"])
        return pool
