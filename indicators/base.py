"""``WalkForwardIndicator``: the backtrader side of the walk-forward contract (see ``walkforward.py``).

Subclasses name their lines and implement four hooks: ``make_model(n_features)``, ``fit_model(model,
X, y, X_val, y_val)``, ``calibrate(model, X_val, y_val) -> state`` and ``evaluate(model, state, X) ->
(n, n_lines) array``. This class computes causal features, schedules fits, caches models, and fills
the lines. The rows ``X`` are ``market_features`` of the ``features`` parameter unless a subclass supplies its own
causal rows: ``inputs(arrays)``, with ``input_lookback()`` and ``input_key()`` (the classical baselines do):

- ``once()`` (runonce): one batched ``evaluate`` per training window over all the bars it serves;
- ``next()`` (bar by bar, live, replay): fits from the buffered history when a new window starts, then
  evaluates the current bar alone from its trailing bars.

A bar's value never depends on how many bars follow it (truncation invariance, exact): ``once()`` evaluates
every window in batches of one fixed shape, padded at the end of the data. The two paths evaluate the same
models on the same feature values in batches of different shapes, in float64: they agree to ~1e-14 (mode
parity).

A bad bar never aborts a run. Features are finite on any valid OHLCV data (see ``features.py``); a bar that is
not valid (a NaN, a non-positive price, a negative volume: what ``validate_ohlcv`` rejects, but a frame or a live
feed can still hold) makes the rows whose feature windows hold it non-finite. Such a row has NaN lines (both
paths), and training windows leave it out; a window left with fewer than half of its fit rows or of its
calibration rows is not fitted, and the bars it serves are NaN. The first such row logs one warning per
indicator.
"""
from __future__ import annotations

import json
import logging
from array import array
from collections import OrderedDict
from pathlib import Path
from typing import Any


import backtrader as bt
import numpy as np

from .features import DEFAULT_FEATURES, lookback, market_features
from .walkforward import FitCache, WalkForwardSpec, default_cache_dir, forward_log_returns, spec_config

__all__ = ["WalkForwardIndicator"]

log = logging.getLogger(__name__)

_OHLCV = ("open", "high", "low", "close", "volume")
#: feature arrays kept per data feed (the indicators of one feed share them; see ``_features``)
_FEATURE_MEMO_ITEMS = 16
#: most rows ``once()`` evaluates in one batch (bounds memory when ``retrain_every`` is long)
MAX_BATCH = 4096


class WalkForwardIndicator(bt.Indicator):
    """Base of the model indicators: walk-forward fits on causal features, batched and incremental."""

    params = (
        ("features", DEFAULT_FEATURES),
        ("train_bars", 2000),
        ("retrain_every", 500),
        ("embargo", 0),
        ("expanding", False),
        ("horizon", 0),
        ("val_fraction", 0.3),
        ("seed", 0),
        ("cache_dir", "default"),   # a folder, None for no disk cache, "default" for default_cache_dir()
        ("model_kwargs", None),
        ("fit_kwargs", None),
        ("quiet", True),
    )
    plotinfo = dict(subplot=True)

    #: whether rows need labels (forward returns over ``horizon`` bars); sets the minimum horizon to 1
    uses_labels = False
    #: model settings of this indicator unless model_kwargs / fit_kwargs override them
    default_model_kwargs: dict[str, Any] = {}
    default_fit_kwargs: dict[str, Any] = {}
    #: False for models without a training loop (the classical baselines): ``fit_kwargs`` such as the epochs that
    #: ``WalkForwardSettings`` hands to every indicator of a strategy are then ignored (and left out of the cache key)
    takes_fit_kwargs = True

    # ------------------------------------------------------------------ hooks
    def make_model(self, n_features: int) -> Any:
        raise NotImplementedError

    def model_class(self) -> type:
        raise NotImplementedError

    def fit_model(self, model: Any, X: np.ndarray, y: np.ndarray | None, X_val: np.ndarray,
                  y_val: np.ndarray | None) -> None:
        model.fit(X, X_val=X_val, **self.fit_kwargs)

    def calibrate(self, model: Any, X_val: np.ndarray, y_val: np.ndarray | None) -> Any:
        return None

    def evaluate(self, model: Any, state: Any, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def inputs(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Causal input rows of the bars in ``arrays`` (``open`` … ``volume``; invalid values already NaN), shape
        ``(n_bars, n_inputs)``: row ``t`` reads bars ``t - input_lookback() … t`` only and is NaN before that.
        Default: ``market_features`` of the ``features`` parameter."""
        return market_features(*(arrays[name] for name in _OHLCV), spec=self.feature_spec)

    def input_lookback(self) -> int:
        """Bars before ``t`` that row ``t`` of ``inputs`` reads (its first rows are NaN)."""
        return lookback(self.feature_spec)

    def input_key(self) -> Any:
        """What ``inputs`` computes, besides the bars (hashable): indicators of one data feed with equal keys share
        their rows. A subclass that overrides ``inputs`` keys on its own rows unless it overrides this too."""
        if type(self).inputs is WalkForwardIndicator.inputs:
            return self.feature_spec
        return (type(self).__qualname__, self._own_inputs)

    def labels(self, close: np.ndarray) -> np.ndarray:
        """Row labels: forward log returns over ``horizon`` bars (NaN until known)."""
        return forward_log_returns(close, self.spec.horizon)

    # ------------------------------------------------------------------ set-up
    def __init__(self) -> None:
        missing = [name for name in _OHLCV if not hasattr(self.data, name)]
        if missing:
            raise ValueError(f"{type(self).__name__} needs a data feed with OHLCV lines; "
                             f"missing {missing} (pass the data feed, not one of its lines)")
        self.feature_spec = tuple(self.p.features)
        horizon = max(int(self.p.horizon), 1) if self.uses_labels else 0
        self.spec = WalkForwardSpec(first_row=self.input_lookback(), train_bars=int(self.p.train_bars),
                                    retrain_every=int(self.p.retrain_every), horizon=horizon,
                                    embargo=int(self.p.embargo), expanding=bool(self.p.expanding),
                                    val_fraction=float(self.p.val_fraction))
        self.model_kwargs = {**self.default_model_kwargs, **(self.p.model_kwargs or {})}
        self.fit_kwargs = {**self.default_fit_kwargs, **(self.p.fit_kwargs or {})} if self.takes_fit_kwargs else {}
        cache_dir = default_cache_dir() if self.p.cache_dir == "default" else self.p.cache_dir
        self.cache = FitCache(None if cache_dir is None else Path(cache_dir))
        self.addminperiod(self.spec.first_fit + 1)
        self._k = -2                # index of the model in use by next()
        self._model: Any = None
        self._state: Any = None
        self._once_done = False
        self._warned = False        # about rows with non-finite features (one warning per indicator)
        self._own_inputs = object()  # input_key() of an indicator whose inputs() are its own

    @property
    def n_fits(self) -> int:
        """Models fitted by this indicator (cache hits excluded)."""
        return self.cache.fits

    # ------------------------------------------------------------------ fitting
    def _config(self) -> dict[str, Any]:
        return {"indicator": type(self).__name__, "model": self.model_class().__name__,
                "model_kwargs": self.model_kwargs, "fit_kwargs": self.fit_kwargs, "features": self.feature_spec,
                "seed": int(self.p.seed), "spec": spec_config(self.spec), **self.extra_config()}

    def extra_config(self) -> dict[str, Any]:
        """Further settings that change a fit (e.g. the model family); part of the cache key."""
        return {}

    def _warn_bad_rows(self, bar: int) -> None:
        """Log, once per indicator, that rows from ``bar`` on have non-finite features (bad bars in the data)."""
        if not self._warned:
            self._warned = True
            log.warning("%s: bar %d has non-finite features or labels (NaN, non-positive price or negative "
                        "volume in the data?); such bars get NaN values and training windows leave them out "
                        "(not reported again)", type(self).__name__, bar)

    def _finite_rows(self, X: np.ndarray, y: np.ndarray | None, rows: range) -> tuple[np.ndarray, np.ndarray | None]:
        """The rows ``rows`` of ``X`` and ``y`` whose features and label are all finite."""
        Xp = X[rows.start:rows.stop]
        yp = None if y is None else y[rows.start:rows.stop]
        ok = np.isfinite(Xp).all(axis=1)
        if yp is not None:
            ok &= np.isfinite(yp.reshape(len(yp), -1)).all(axis=1)
        if ok.all():
            return Xp, yp
        self._warn_bad_rows(rows.start + int(np.argmin(ok)))
        return Xp[ok], None if yp is None else yp[ok]

    def _window_model(self, k: int, X: np.ndarray, y: np.ndarray | None) -> tuple[Any, Any]:
        """The fitted ``k``-th model and its calibration state; ``(None, None)`` when bad bars left fewer than
        half of the window's fit rows or calibration rows."""
        fit_rows, val_rows = self.spec.training_rows(k)
        (Xf, yf), (Xv, yv) = self._finite_rows(X, y, fit_rows), self._finite_rows(X, y, val_rows)
        if 2 * len(Xf) < len(fit_rows) or 2 * len(Xv) < len(val_rows):
            return None, None
        arrays = [Xf, Xv] + ([yf, yv] if y is not None else [])
        key = self.cache.key(self._config(), *arrays)
        cls = self.model_class()

        def fit() -> Any:
            model = self.make_model(Xf.shape[1])
            self.fit_model(model, Xf, yf, Xv, yv)
            return model

        # models evaluate in float64: batched and bar-by-bar values then agree to ~1e-15 (see BaseModel.double)
        return self.cache.get_or_fit(key, type(self).__name__, cls.load, fit,
                                     lambda model: self.calibrate(model.double(), Xv, yv))

    def _features(self, arrays: dict[str, np.ndarray], end_bar: int) -> np.ndarray:
        """Input rows (``inputs``) of the bars in ``arrays`` (the last one is bar ``end_bar``), shared by the
        indicators on this data feed with the same ``input_key()``: computed once per bar, not once per indicator.

        The key holds the last bar's values, so a bar still forming (replay, live) is never served stale rows;
        the bars before it are final. The rows are read-only, as they are shared.
        """
        last = tuple(float(arrays[name][-1]) for name in _OHLCV)
        key = (self.input_key(), end_bar, len(arrays["close"]), last)
        memo = getattr(self.data, "_btdensity_features", None)
        if memo is None:
            memo = OrderedDict()
            self.data._btdensity_features = memo
        X = memo.get(key)
        if X is None:
            # invalid bars (non-positive price, negative volume) become NaN: their rows are non-finite, not an error
            valid = {name: np.where(arrays[name] >= 0 if name == "volume" else arrays[name] > 0, arrays[name], np.nan)
                     for name in _OHLCV}
            X = self.inputs(valid)
            X.flags.writeable = False
            memo[key] = X
            while len(memo) > _FEATURE_MEMO_ITEMS:
                memo.popitem(last=False)
        return X

    def _features_and_labels(self, arrays: dict[str, np.ndarray], end_bar: int) -> tuple[np.ndarray, np.ndarray | None]:
        X = self._features(arrays, end_bar)
        y = self.labels(arrays["close"]) if self.uses_labels else None
        return X, y

    def _history(self, size: int) -> dict[str, np.ndarray]:
        """The last ``size`` bars of the data, as fresh numpy arrays (never views of the line buffers)."""
        return {name: np.array(getattr(self.data, name).get(size=size), dtype=np.float64) for name in _OHLCV}

    # ------------------------------------------------------------------ runonce
    def preonce(self, start: int, end: int) -> None:
        pass

    def oncestart(self, start: int, end: int) -> None:
        self.once(start, end)

    def once(self, start: int, end: int) -> None:
        if self._once_done:  # backtrader calls oncestart and once: the work is done on the first call
            return
        self._once_done = True
        n = self.data.buflen()
        arrays = {name: np.array(getattr(self.data, name).array[:n], dtype=np.float64) for name in _OHLCV}
        X, y = self._features_and_labels(arrays, n - 1)
        out = np.full((n, self.size()), np.nan)
        n_windows = self.spec.fit_index(n - 1) + 1
        windows = range(n_windows)
        if not self.p.quiet and n_windows > 1:
            from tqdm.auto import tqdm
            windows = tqdm(windows, desc=type(self).__name__, unit="fit", leave=False)
        for k in windows:
            model, state = self._window_model(k, X, y)
            bars = self.spec.served(k, n)
            if model is not None:
                out[bars.start:bars.stop] = self._evaluate_window(model, state, X[bars.start:bars.stop], bars.start)
        for j in range(self.size()):
            self.lines[j].array[0:n] = array("d", out[:, j])

    def _evaluate_window(self, model: Any, state: Any, X: np.ndarray, first_bar: int = 0) -> np.ndarray:
        """All bars a window serves (``X`` starts at its first bar, ``first_bar``), in batches of
        ``min(retrain_every, MAX_BATCH)`` rows, the last one padded with copies of its last row.

        Kernels round differently for different batch shapes, but a row's result inside a batch of a fixed
        shape does not depend on the other rows: with every batch of the same shape, a bar's value is the
        same number wherever the data ends (truncation invariance). A row with a non-finite feature goes in
        as zeros (the models reject NaN) and comes out NaN.
        """
        ok = np.isfinite(X).all(axis=1)
        if not ok.all():
            self._warn_bad_rows(first_bar + int(np.argmin(ok)))
            X = np.where(ok[:, None], X, 0.0)
        size = min(self.spec.retrain_every, MAX_BATCH)
        out = []
        for i in range(0, X.shape[0], size):
            rows = X[i:i + size]
            m = rows.shape[0]
            if m < size:
                rows = np.concatenate([rows, np.repeat(rows[-1:], size - m, axis=0)])
            out.append(self.evaluate(model, state, rows)[:m])
        values = np.concatenate(out) if out else np.empty((0, self.size()))
        values[~ok] = np.nan
        return values

    # ------------------------------------------------------------------ bar by bar
    def nextstart(self) -> None:
        self.next()

    def next(self) -> None:
        bar = len(self.data) - 1
        k = self.spec.fit_index(bar)
        if k < 0:
            return
        if k != self._k:
            # the fit needs the history before bar T_k only; take all buffered bars up to now
            arrays = self._history(bar + 1)
            X, y = self._features_and_labels(arrays, bar)
            self._model, self._state = self._window_model(k, X, y)
            self._k = k
        row = self._features(self._history(self.spec.first_row + 1), bar)[-1:]
        if self._model is not None and np.isfinite(row).all():
            values = self.evaluate(self._model, self._state, row)[0]
        else:
            if self._model is not None:
                self._warn_bad_rows(bar)
            values = np.full(self.size(), np.nan)
        for j in range(self.size()):
            self.lines[j][0] = float(values[j])

    def _plotlabel(self) -> list[str]:
        """What backtrader's plot shows after the name: the model, not every parameter (features, paths ...)."""
        return [self.model_class().__name__]

    def describe(self) -> str:
        """A one-line description for logs: the schedule and the fits done."""
        return json.dumps({"indicator": type(self).__name__, "first_fit": self.spec.first_fit,
                           "retrain_every": self.spec.retrain_every, "fits": self.cache.fits,
                           "cache_hits": self.cache.hits})
