"""``PersistenceRegime``: the classical baseline of ``Regime`` — the regime stays what it last was.

At bar ``t`` the last label known is that of bar ``t − h`` (``h`` = ``horizon``): it reads bars ``t − h … t``,
so it is known at ``t``. ``regime`` is that label, labelled with the thresholds of the training window of the
fit that serves ``t`` (the fit rows' half standard deviation of the return and 75th percentile of the realised
volatility, exactly as ``Regime`` labels its training rows). The class probabilities are the training window's
transition frequencies ``P(label_s | label_{s−h})`` over its rows ``s`` (fit rows and held-out tail), with
add-one (Laplace) smoothing; ``confidence`` is the probability of ``regime`` staying (the diagonal entry).

Add-one smoothing: a window of a few hundred rows may never see some transition (bear to bull within ``h``
bars); a raw frequency of 0 would give an infinite log loss the first time it happens out of sample, and a
previous class the window never saw would have no row at all. Add-one is the posterior mean under a uniform
Dirichlet prior (Laplace's rule of succession): a row of ``n`` transitions moves at most ``4 / (n + 4)`` of
its mass towards uniform, and an unseen previous class gets the uniform row.

There is no ``energy`` line: the baseline has no notion of an unusual state, and a NaN line would silently
turn every comparison a strategy makes with it into False; a strategy that reads ``energy`` fails loudly.

The walk-forward schedule, and so the fit rows and thresholds, are ``Regime``'s for the same parameters: the
first row follows the lookback of ``features`` (or ``h``, if longer) although the baseline reads no feature.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from btdensity.labels import REGIME_NAMES
from btdensity.models.json_checkpoint import JsonStateModel

from .features import lookback
from .regime import ClassicalRegime, label_regimes, previous_forward_rows, regime_thresholds

__all__ = ["PersistenceRegime", "RegimeTransitions"]


class RegimeTransitions(JsonStateModel):
    """Transition frequencies between regime labels ``h`` bars apart, add-``smoothing`` smoothed.

    ``fit(X, y, X_val, y_val)`` takes rows ``X`` = ``[return, realised vol]`` of the ``h`` bars before each row
    (the forward row of ``s − h``) and ``y`` = the same of the ``h`` bars after it (the forward row of ``s``);
    the thresholds come from ``y`` (the fit rows), the counts from the pairs of all rows given.

    >>> import numpy as np
    >>> y = np.array([[0.02, 0.01], [-0.02, 0.01], [0.0, 0.01], [0.0, 0.05]])
    >>> m = RegimeTransitions().fit(np.roll(y, 1, axis=0), y)
    >>> float(m.counts_.sum()), m.predict_proba(y[:1]).round(3).tolist()
    (4.0, [[0.2, 0.4, 0.2, 0.2]])
    """

    def __init__(self, n_features: int = 2, smoothing: float = 1.0, *, seed: int = 0):
        if n_features != 2:
            raise ValueError(f"RegimeTransitions reads rows [return, realised vol]: n_features must be 2; "
                             f"got {n_features}")
        if not smoothing >= 0:
            raise ValueError(f"smoothing must be >= 0; got {smoothing!r}")
        self.n_features, self.smoothing, self.seed = 2, float(smoothing), int(seed)
        self.thresholds_: np.ndarray | None = None     # (half_sd, vol_cut)
        self.counts_: np.ndarray | None = None         # counts_[i, j]: rows labelled i h bars ago, j now
        self.meta_: dict[str, Any] = {}

    @property
    def n_classes(self) -> int:
        return len(REGIME_NAMES)

    def get_config(self) -> dict[str, Any]:
        return {"n_features": self.n_features, "smoothing": self.smoothing, "seed": self.seed}

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> "RegimeTransitions":
        """Thresholds from ``y``; counts of (label of ``X`` row, label of ``y`` row) over all rows given."""
        self.thresholds_ = np.array(regime_thresholds(np.asarray(y, dtype=np.float64)))
        before, after = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if X_val is not None:
            before, after = np.r_[before, X_val], np.r_[after, y_val]
        counts = np.zeros((self.n_classes, self.n_classes))
        np.add.at(counts, (self.label(before), self.label(after)), 1.0)
        self.counts_ = counts
        return self

    def label(self, rows: np.ndarray) -> np.ndarray:
        """Regime labels of ``[return, realised vol]`` rows with the fitted thresholds."""
        if self.thresholds_ is None:
            raise RuntimeError("RegimeTransitions is not fitted yet: call fit() or load() first")
        return label_regimes(np.asarray(rows, dtype=np.float64), *self.thresholds_)

    @property
    def transition_(self) -> np.ndarray:
        """``P(label now = j | label h bars ago = i)``, rows summing to 1."""
        smoothed = self.counts_ + self.smoothing
        total = smoothed.sum(axis=1, keepdims=True)
        return np.divide(smoothed, total, out=np.full_like(smoothed, 1.0 / self.n_classes), where=total > 0)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """The transition row of each ``X`` row's label, shape ``(n, n_classes)``."""
        return self.transition_[self.label(X)]

    def double(self) -> "RegimeTransitions":
        return self

    def state(self) -> dict[str, Any]:
        """The fitted numbers as JSON values (floats round-trip exactly)."""
        return {"config": self.get_config(), "thresholds": self.thresholds_.tolist(), "counts": self.counts_.tolist()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "RegimeTransitions":
        model = cls(**state["config"])
        model.thresholds_, model.counts_ = np.array(state["thresholds"]), np.array(state["counts"])
        return model


class PersistenceRegime(ClassicalRegime):
    """``regime``: the label of bar ``t − horizon`` (the last one known at ``t``); ``p_bull`` … ``p_volatile``:
    the training window's smoothed transition frequencies from that label; ``confidence``: the probability of
    ``regime`` (the regime persisting). ``model_kwargs``: ``smoothing`` (1.0: add-one)."""

    plotinfo = dict(plotname="Persistence regime (0 bull, 1 bear, 2 ranging, 3 volatile)")

    def model_class(self) -> type:
        return RegimeTransitions

    def inputs(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Row ``t``: ``[return, realised vol]`` of bars ``t − h … t`` (the forward row of ``t − h``, known at
        ``t``); NaN for the first ``h`` bars."""
        return previous_forward_rows(arrays["close"], self.spec.horizon)

    def input_lookback(self) -> int:
        """``h`` bars at least; the lookback of ``features`` when longer, so that the walk-forward schedule, the
        training rows and the label thresholds are ``Regime``'s with the same parameters."""
        return max(int(self.p.horizon), lookback(tuple(self.p.features)))

    def input_key(self) -> Any:
        return (type(self).__name__, self.spec.horizon)

    def evaluate(self, model: Any, state: Any, X: np.ndarray) -> np.ndarray:
        last = model.label(X)
        proba = model.transition_[last]
        return np.column_stack([last.astype(np.float64), proba[np.arange(last.shape[0]), last], proba])
