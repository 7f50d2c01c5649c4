"""``Regime``: the market regime by a joint energy-based classifier (JEM), with its confidence and energy.

The label of bar ``t`` comes from the next ``horizon`` bars (known at ``t + horizon``): ``volatile`` when
their realised volatility is above the training window's 75th percentile, otherwise ``bull`` / ``bear``
when their return is above / below ± half its standard deviation in the window, otherwise ``ranging``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from btdensity.labels import REGIME_NAMES
from btdensity.models import JointEnergyClassifier

from .base import OHLCV, WalkForwardIndicator
from .features import VOLATILITY_FEATURES, lookback, market_features

__all__ = ["ClassicalRegime", "PROBABILITY_LINES", "REGIME_NAMES", "Regime", "classify_regimes", "forward_rows",
           "label_regimes", "previous_forward_rows", "regime_labels", "regime_thresholds"]

#: the lines holding each class's probability, in ``REGIME_NAMES`` order: ``p_bull``, ``p_bear``, ...
PROBABILITY_LINES = tuple(f"p_{name}" for name in REGIME_NAMES)


def forward_rows(close: np.ndarray, horizon: int) -> np.ndarray:
    """Rows ``[return, realised vol]`` of bars ``t+1 … t+horizon`` for each bar ``t``: the log return from ``t``
    to ``t + horizon`` and the standard deviation of the ``horizon`` one-bar log returns; NaN where the future
    is not there yet (the last ``horizon`` bars)."""
    h = int(horizon)
    logc = np.log(np.asarray(close, dtype=np.float64))
    r1 = np.r_[np.nan, np.diff(logc)]
    out = np.full((logc.shape[0], 2), np.nan)
    n = logc.shape[0] - h
    if n > 0:
        out[:n, 0] = logc[h:] - logc[:n]
        window = np.lib.stride_tricks.sliding_window_view(r1[1:], h)  # r_{t+1} .. r_{t+h}
        out[:n, 1] = window[:n].std(axis=-1)
    return out


def previous_forward_rows(close: np.ndarray, horizon: int) -> np.ndarray:
    """Row ``t``: the forward row of bar ``t − horizon`` (``[return, realised vol]`` of bars ``t − h … t``, the
    last one known at ``t``); NaN for the first ``horizon`` bars."""
    forward = forward_rows(close, horizon)
    h = int(horizon)
    rows = np.full_like(forward, np.nan)
    rows[h:] = forward[:forward.shape[0] - h]
    return rows


def regime_thresholds(reference: np.ndarray) -> tuple[float, float]:
    """``(half_sd, vol_cut)`` of ``reference`` rows ``[return, realised vol]``: half the standard deviation of
    the return and the 75th percentile of the realised volatility."""
    return float(0.5 * reference[:, 0].std()), float(np.percentile(reference[:, 1], 75))


def label_regimes(forward: np.ndarray, half_sd: float, vol_cut: float) -> np.ndarray:
    """Class indices (into ``REGIME_NAMES``) of rows ``forward = [return, realised vol]`` for given thresholds:
    ``volatile`` above ``vol_cut``, else ``bull`` / ``bear`` above / below ``± half_sd``, else ``ranging``."""
    return classify_regimes(forward[:, 0], forward[:, 1], half_sd, vol_cut)


def classify_regimes(ret: np.ndarray, vol: np.ndarray, half_sd: float, vol_cut: float) -> np.ndarray:
    """:func:`label_regimes` of returns ``ret`` and realised volatilities ``vol`` given apart, in any shape."""
    labels = np.full(np.shape(ret), REGIME_NAMES.index("ranging"), dtype=np.int64)
    labels[ret > half_sd] = REGIME_NAMES.index("bull")
    labels[ret < -half_sd] = REGIME_NAMES.index("bear")
    labels[vol > vol_cut] = REGIME_NAMES.index("volatile")
    return labels


def regime_labels(forward: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Class indices (into ``REGIME_NAMES``) of rows ``forward = [return, realised vol]`` over the next bars;
    thresholds come from ``reference`` rows (default: ``forward`` itself)."""
    return label_regimes(forward, *regime_thresholds(forward if reference is None else reference))


class Regime(WalkForwardIndicator):
    """``regime``: the most probable class (0 bull, 1 bear, 2 ranging, 3 volatile); ``confidence``: its
    probability; ``energy``: the JEM energy −logsumexp(logits), high on states unlike any regime seen;
    ``p_bull``, ``p_bear``, ``p_ranging``, ``p_volatile``: each class's probability (they sum to 1).

    ``pool=True`` (the default): the probabilities are the equal-weight mixture of the JEM's, persistence's and a
    volatility forecast's (:class:`~btdensity.indicators.regime_pool.RegimePool`); ``regime`` and ``confidence`` read
    the mixture, ``energy`` the JEM. ``pool=False``: the JEM's own probabilities."""

    lines = ("regime", "confidence", "energy", *PROBABILITY_LINES)
    params = (("horizon", 24), ("n_regimes", 4), ("pool", True))
    plotinfo = dict(subplot=True, plotname="Regime (0 bull, 1 bear, 2 ranging, 3 volatile)")
    plotlines = dict(regime=dict(color="#8c564b", drawstyle="steps-post"),
                     **{name: dict(_plotskip=True) for name in ("confidence", "energy", *PROBABILITY_LINES)})
    uses_labels = True
    #: the JEM's generative (SGLD) term at a tenth of the classification loss: a walk-forward window holds ~2,000 rows
    #: whose labels overlap over ``horizon`` bars, and at equal weight the generative term dominates the fit. On
    #: BTC/USDT 2017-19 hourly (seeds 0 / 1) the log loss fell from 1.348 / 1.352 to 1.277 / 1.259 nats and the accuracy
    #: rose from 0.44 / 0.43 to 0.48 / 0.48; on the sample market the energy's anomaly AUROC rose from 0.89 to 0.94,
    #: and the energy stays a log density (tests/models/test_jem.py)
    default_model_kwargs = {"hidden": (64, 64), "generative_weight": 0.1}
    default_fit_kwargs = {"epochs": 40, "patience": 8, "lr": 2e-3}
    #: window k's fit starts from window k-1's classifier, with a quarter of the epochs: a window's labels overlap over
    #: ``horizon`` bars (~60 independent ones in 2,000 rows), too few to learn the regimes afresh. On the BTC/USDT
    #: 2017-19 scorecard (seeds 0 / 1) the log loss fell from 1.277 / 1.259 to 1.233 / 1.211 nats (persistence: 1.199)
    #: and the accuracy rose from 0.48 to 0.52
    default_warm_start = True

    def __init__(self) -> None:
        if self.p.n_regimes != len(REGIME_NAMES):
            raise ValueError(f"Regime(n_regimes={self.p.n_regimes}): the labelling defines "
                             f"{len(REGIME_NAMES)} regimes {REGIME_NAMES}")
        if not isinstance(self.p.pool, (bool, np.bool_)):
            raise ValueError(f"Regime(pool={self.p.pool!r}): True (pool the JEM with persistence and a volatility "
                             "forecast) or False (the JEM alone)")
        if int(self.p.horizon) < 2:
            raise ValueError(f"Regime(horizon={self.p.horizon}): labels need at least 2 forward bars (the realised "
                             "volatility of a single return is 0, so no bar could be 'volatile')")
        super().__init__()

    def labels(self, close: np.ndarray) -> np.ndarray:
        return forward_rows(close, self.spec.horizon)

    def inputs(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Row ``t``: the JEM's features; with ``pool``, then the volatility forecast's features and the last known
        forward row (bar ``t − h``'s, see :class:`~btdensity.indicators.regime_pool.RegimePool`)."""
        rows = super().inputs(arrays)
        if not self.p.pool:
            return rows
        volatility = market_features(*(arrays[name] for name in OHLCV), spec=VOLATILITY_FEATURES)
        return np.column_stack([rows, volatility, previous_forward_rows(arrays["close"], self.spec.horizon)])

    def input_lookback(self) -> int:
        if not self.p.pool:
            return super().input_lookback()
        return max(lookback(self.feature_spec), lookback(VOLATILITY_FEATURES), int(self.p.horizon))

    def input_key(self) -> Any:
        """Without ``pool`` the rows are the features' (shared with the other indicators reading them)."""
        return ("RegimePool", self.feature_spec, int(self.p.horizon)) if self.p.pool else self.feature_spec

    def model_class(self) -> type:
        from .regime_pool import RegimePool

        return RegimePool if self.p.pool else JointEnergyClassifier

    def make_model(self, n_features: int) -> Any:
        if not self.p.pool:
            return JointEnergyClassifier(n_features, n_classes=len(REGIME_NAMES), seed=self.p.seed,
                                         **self.model_kwargs)
        from .regime_pool import PREVIOUS_COLUMNS, RegimePool

        n_jem = n_features - len(VOLATILITY_FEATURES) - PREVIOUS_COLUMNS
        return RegimePool(JointEnergyClassifier(n_jem, n_classes=len(REGIME_NAMES), seed=self.p.seed,
                                                **self.model_kwargs), len(VOLATILITY_FEATURES))

    def fit_model(self, model: Any, X: np.ndarray, y: np.ndarray | None, X_val: np.ndarray,
                  y_val: np.ndarray | None) -> None:
        if self.p.pool:
            model.fit(X, y, X_val, y_val, **self.fit_kwargs)
        else:
            model.fit(X, regime_labels(y), X_val=X_val, y_val=regime_labels(y_val, reference=y), **self.fit_kwargs)

    def evaluate(self, model: Any, state: Any, X: np.ndarray) -> np.ndarray:
        proba, energy = model.proba_and_energy(X)
        return np.column_stack([proba.argmax(axis=1).astype(np.float64), proba.max(axis=1), energy, proba])


class ClassicalRegime(WalkForwardIndicator):
    """The frame of ``Regime``'s classical baselines: lines ``regime``, ``confidence``, ``p_bull`` … ``p_volatile``;
    rows labelled as ``Regime`` labels its rows; a model without a training loop (``model_class()``, built with the
    seed and ``model_kwargs``), fitted on a window's fit rows and held-out tail by ``fit(X, y, X_val, y_val)``."""

    lines = ("regime", "confidence", *PROBABILITY_LINES)
    params = (("horizon", 24),)
    plotinfo = dict(subplot=True)
    plotlines = dict(regime=dict(color="#8c564b", drawstyle="steps-post"),
                     **{name: dict(_plotskip=True) for name in ("confidence", *PROBABILITY_LINES)})
    uses_labels = True
    takes_fit_kwargs = False

    def __init__(self) -> None:
        if int(self.p.horizon) < 2:
            raise ValueError(f"{type(self).__name__}(horizon={self.p.horizon}): labels need at least 2 forward bars")
        super().__init__()

    def labels(self, close: np.ndarray) -> np.ndarray:
        """Row ``t``: ``[return, realised vol]`` of bars ``t+1 … t+h``, as ``Regime`` labels its rows."""
        return forward_rows(close, self.spec.horizon)

    def make_model(self, n_features: int) -> Any:
        return self.model_class()(n_features, seed=self.p.seed, **self.model_kwargs)

    def fit_model(self, model: Any, X: np.ndarray, y: np.ndarray | None, X_val: np.ndarray,
                  y_val: np.ndarray | None) -> None:
        model.fit(X, y, X_val, y_val)
