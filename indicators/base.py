"""``WalkForwardIndicator``: the backtrader side of the walk-forward contract (see ``walkforward.py``).

Subclasses name their lines and implement four hooks: ``make_model(n_features)``, ``fit_model(model,
X, y, X_val, y_val)``, ``calibrate(model, X_val, y_val) -> state`` and ``evaluate(model, state, X) ->
(n, n_lines) array``. This class computes causal features, schedules fits, caches models, and fills
the lines. The rows ``X`` are ``market_features`` of the ``features`` parameter unless a subclass supplies its own
causal rows: ``inputs(arrays)``, with ``input_lookback()`` and ``input_key()`` (the classical baselines do):

- ``once()`` (runonce): one batched ``evaluate`` per training window over all the bars it serves;
- ``next()`` (bar by bar, live, replay): fits from the buffered history when a new window starts, then
  evaluates the current bar alone from its trailing bars.

Speed: in ``once()`` the fits of every window of every walk-forward indicator on the data feed are known up front;
with ``n_jobs > 1`` they go to one pool of worker processes (:mod:`.parallel_fits`) and each indicator then
evaluates its windows in order, waiting only for the fits it needs; the models are the same as fitted serially.
With ``warm_start`` window k's fit starts from window k-1's weights and runs ``warm_epochs`` of the epochs (the
previous window's key is then part of the cache key); ``device`` is where models fit and evaluate.

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

import dataclasses
import json
import logging
import types
import weakref
from array import array
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any


import backtrader as bt
import numpy as np

from .features import DEFAULT_FEATURES, lookback, market_features
from .settings import WARM_EPOCHS, resolve_device, resolve_jobs
from .walkforward import FitCache, WalkForwardSpec, default_cache_dir, forward_log_returns, spec_config

__all__ = ["WalkForwardIndicator"]

log = logging.getLogger(__name__)

#: the price and volume lines a model indicator reads
OHLCV = ("open", "high", "low", "close", "volume")
#: backtrader's number of 1970-01-01 00:00 UTC (its datetime line counts days from year 1): ``time`` = days since then
_UNIX_EPOCH = 719163.0
#: feature arrays kept per data feed (the indicators of one feed share them; see ``_features``)
_FEATURE_MEMO_ITEMS = 16
#: most rows ``once()`` evaluates in one batch (bounds memory when ``retrain_every`` is long)
MAX_BATCH = 4096


def bar_arrays(data: Any, *, first: int | None = None, size: int | None = None) -> dict[str, np.ndarray]:
    """The ``first`` bars of a (preloaded) feed, or its last ``size`` bars, as fresh numpy arrays (never views of the
    line buffers): ``open`` … ``volume`` and ``time`` (days since 1970-01-01 UTC)."""
    if (first is None) == (size is None):
        raise ValueError("bar_arrays: give first or size")

    def read(line: Any) -> np.ndarray:
        return np.array(line.array[:first] if size is None else line.get(size=size), dtype=np.float64)

    arrays = {name: read(getattr(data, name)) for name in OHLCV}
    arrays["time"] = read(data.datetime) - _UNIX_EPOCH
    return arrays


@dataclass(eq=False)
class _Window:
    """The fit of window ``k`` as planned: its cache key, the window whose model it starts from (warm start), and
    its job in the pool of parallel fits, if it went there."""

    k: int
    key: str
    warm_from: "_Window | None" = None
    job: Any = None


class WalkForwardIndicator(bt.Indicator):
    """Base of the model indicators: walk-forward fits on causal features, batched and incremental."""

    params = (
        ("features", DEFAULT_FEATURES),
        ("train_bars", 2000),
        ("retrain_every", 500),
        ("embargo", 0),
        ("expanding", None),         # train on every row so far; None: the indicator's default_expanding
        ("horizon", 0),
        ("val_fraction", 0.3),
        ("seed", 0),
        ("cache_dir", "default"),   # a folder, None for no disk cache, "default" for default_cache_dir()
        ("model_kwargs", None),
        ("fit_kwargs", None),
        ("quiet", True),
        ("n_jobs", None),            # fits at once (None: $BTDENSITY_JOBS, else the CPUs; 1: serial)
        ("warm_start", None),        # window k's fit starts from window k-1's weights; None: default_warm_start
        ("warm_epochs", WARM_EPOCHS),  # share of the epochs and patience of a warm-started fit
        ("device", "auto"),          # "auto" (CUDA when present), "cpu" or "cuda"
    )
    plotinfo = dict(subplot=True)

    #: whether rows need labels (forward returns over ``horizon`` bars); sets the minimum horizon to 1
    uses_labels = False
    #: whether windows hold every row so far (not the last ``train_bars``) unless ``expanding`` says otherwise
    default_expanding = False
    #: whether window k's fit starts from window k-1's weights unless ``warm_start`` says otherwise (torch models only)
    default_warm_start = False
    #: model settings of this indicator unless model_kwargs / fit_kwargs override them
    default_model_kwargs: dict[str, Any] = {}
    default_fit_kwargs: dict[str, Any] = {}
    #: False for models without a training loop (the classical baselines): ``fit_kwargs`` such as the epochs that
    #: ``WalkForwardSettings`` hands to every indicator of a strategy are then ignored (and left out of the cache key)
    takes_fit_kwargs = True
    #: the last lines, computed not by the model but from the indicator's own earlier values (e.g. a hysteresis gate
    #: on the p-values): ``evaluate`` returns the other lines, ``derive_all`` fills these over a batched run and
    #: ``derive_bar`` for the current bar of a bar-by-bar run, from the same rule
    derived_lines: tuple[str, ...] = ()

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

    def derive_all(self, n: int) -> np.ndarray:
        """The ``derived_lines`` of the first ``n`` bars, shape ``(n, len(derived_lines))``, from the lines the model
        gave (read from ``self.lines``)."""
        raise NotImplementedError

    def derive_bar(self) -> tuple[float, ...]:
        """The ``derived_lines`` of the current bar (its model lines are set; ``[-1]`` … are the bars before)."""
        raise NotImplementedError

    def keep_kl_warmup_within_epochs(self) -> None:
        """For a Bayesian model: unless ``model_kwargs`` set ``kl_warmup``, end the KL warm-up within the epochs asked
        for (a quarter of them, at most 20), so a short fit still reaches the full ELBO."""
        if "kl_warmup" not in (self.p.model_kwargs or {}):
            self.model_kwargs["kl_warmup"] = min(20, max(1, int(self.fit_kwargs.get("epochs", 80)) // 4))

    def inputs(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Causal input rows of the bars in ``arrays`` (``open`` … ``volume``, invalid values already NaN, and
        ``time``, days since 1970-01-01 UTC), shape
        ``(n_bars, n_inputs)``: row ``t`` reads bars ``t - input_lookback() … t`` only and is NaN before that.
        Default: ``market_features`` of the ``features`` parameter."""
        return market_features(*(arrays[name] for name in OHLCV), spec=self.feature_spec, time=arrays.get("time"))

    def feature_names(self) -> tuple[str, ...]:
        """The features of the input rows (``feature_spec``): the ``features`` parameter."""
        return tuple(self.p.features)

    def input_lookback(self) -> int:
        """Bars before ``t`` that row ``t`` of ``inputs`` reads (its first rows are NaN)."""
        return lookback(self.feature_spec)

    def input_key(self) -> Any:
        """What ``inputs`` computes, besides the bars (hashable): indicators of one data feed with equal keys share
        their rows. A subclass that overrides ``inputs`` keys on its own rows unless it overrides this too."""
        if type(self).inputs is WalkForwardIndicator.inputs:
            return self.feature_spec
        return (type(self).__qualname__, self._own_inputs)

    def _own_default(self, name: str) -> bool:
        """The switch ``name`` (``expanding``, ``warm_start``) as given; for None, ``default_<name>``."""
        value, default = getattr(self.p, name), bool(getattr(self, f"default_{name}"))
        if value is None:
            return default
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{type(self).__name__}({name}={value!r}): True, False or None (the indicator's default, "
                             f"{default})")
        return bool(value)

    def labels(self, close: np.ndarray) -> np.ndarray:
        """Row labels: forward log returns over ``horizon`` bars (NaN until known)."""
        return forward_log_returns(close, self.spec.horizon)

    # ------------------------------------------------------------------ set-up
    def __init__(self) -> None:
        missing = [name for name in OHLCV if not hasattr(self.data, name)]
        if missing:
            raise ValueError(f"{type(self).__name__} needs a data feed with OHLCV lines; "
                             f"missing {missing} (pass the data feed, not one of its lines)")
        self.feature_spec = self.feature_names()
        horizon = max(int(self.p.horizon), 1) if self.uses_labels else 0
        self.spec = WalkForwardSpec(first_row=self.input_lookback(), train_bars=int(self.p.train_bars),
                                    retrain_every=int(self.p.retrain_every), horizon=horizon,
                                    embargo=int(self.p.embargo), expanding=self._own_default("expanding"),
                                    val_fraction=float(self.p.val_fraction))
        self.model_kwargs = {**self.default_model_kwargs, **(self.p.model_kwargs or {})}
        self.fit_kwargs = {**self.default_fit_kwargs, **(self.p.fit_kwargs or {})} if self.takes_fit_kwargs else {}
        cache_dir = default_cache_dir() if self.p.cache_dir == "default" else self.p.cache_dir
        self.cache = FitCache(None if cache_dir is None else Path(cache_dir))
        self.n_jobs = resolve_jobs(self.p.n_jobs)
        if isinstance(self.p.warm_epochs, bool) or not 0 < float(self.p.warm_epochs) <= 1:
            raise ValueError(f"{type(self).__name__}(warm_epochs={self.p.warm_epochs!r}): the share of the epochs a "
                             "warm-started fit runs, in (0, 1]")
        torch_model = self._torch_model()
        self.device = resolve_device(self.p.device) if torch_model else "cpu"
        if self.device != "cpu":   # the models are built there; a CPU fit keeps its cache key of before
            self.model_kwargs.setdefault("device", self.device)
        self._warm = self._own_default("warm_start") and torch_model and self.takes_fit_kwargs
        self.addminperiod(self.spec.first_fit + 1)
        self._k = -2                # index of the model in use by next()
        self._model: Any = None
        self._state: Any = None
        self._once_done = False
        self._warned = False        # about rows with non-finite features (one warning per indicator)
        self._own_inputs = object()  # input_key() of an indicator whose inputs() are its own
        self._windows: dict[int, _Window | None] = {}   # the planned fits (see _window)
        self._queued = False        # its fits went to the pool of parallel fits (once())
        self._pool: Any = None      # that pool
        feed = getattr(self.data, "_btdensity_walkforward", None)   # the walk-forward indicators of this feed
        if feed is None:
            feed = self.data._btdensity_walkforward = []
        feed[:] = [ref for ref in feed if ref() is not None]          # weak: a feed outlives its strategies
        feed.append(weakref.ref(self))

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

    def _torch_model(self) -> bool:
        """Whether the model is one of :mod:`btdensity.models`' torch models (warm start and devices apply)."""
        from btdensity.models.base import BaseModel

        try:
            cls = self.model_class()
        except NotImplementedError:
            return False
        return isinstance(cls, type) and (issubclass(cls, BaseModel) or bool(getattr(cls, "torch_backed", False)))

    def _load(self, path: Path) -> Any:
        cls = self.model_class()
        return cls.load(path, device=self.device) if self.device != "cpu" else cls.load(path)

    def _training_arrays(self, k: int, X: np.ndarray, y: np.ndarray | None) -> tuple | None:
        """``(Xf, yf, Xv, yv)`` of the ``k``-th fit: its finite fit rows and held-out tail; None when bad bars left
        fewer than half of either."""
        fit_rows, val_rows = self.spec.training_rows(k)
        (Xf, yf), (Xv, yv) = self._finite_rows(X, y, fit_rows), self._finite_rows(X, y, val_rows)
        if 2 * len(Xf) < len(fit_rows) or 2 * len(Xv) < len(val_rows):
            return None
        return Xf, yf, Xv, yv

    def _window(self, k: int, X: np.ndarray, y: np.ndarray | None) -> _Window | None:
        """The planned fit of window ``k`` (None when bad bars leave it unfitted), and of the windows before it.

        Its cache key hashes the config and the window's rows; a warm-started fit adds the key of the window it
        starts from (and so, in a chain, of every window before). A window's rows end before its fit bar and
        never change, so plans are kept."""
        for j in range(k + 1):
            if j in self._windows:
                continue
            arrays = self._training_arrays(j, X, y)
            if arrays is None:
                self._windows[j] = None
                continue
            Xf, yf, Xv, yv = arrays
            previous = self._windows.get(j - 1) if self._warm else None
            config = self._config()
            if previous is not None:
                config["warm_start"] = {"from": previous.key, "epochs": float(self.p.warm_epochs)}
            key = self.cache.key(config, Xf, Xv, *([yf, yv] if y is not None else []))
            self._windows[j] = _Window(j, key, previous)
        return self._windows[k]

    def _warm_fit_kwargs(self) -> dict[str, Any]:
        """``fit_kwargs`` of a warm-started fit: ``warm_epochs`` of the epochs and of the patience."""
        from btdensity.models.training import warm_fit_kwargs

        return warm_fit_kwargs(self.fit_kwargs, self.model_class().fit_defaults, float(self.p.warm_epochs))

    def _fit(self, window: _Window, arrays: tuple, X: np.ndarray, y: np.ndarray | None) -> Any:
        """Fit the model of ``window`` here: from the seed, or from the previous window's model (warm start)."""
        Xf, yf, Xv, yv = arrays
        model = self.make_model(Xf.shape[1])
        if window.warm_from is None:
            self.fit_model(model, Xf, yf, Xv, yv)
            return model
        model.warm_start(self._previous_model(window.warm_from, X, y))
        full, self.fit_kwargs = self.fit_kwargs, self._warm_fit_kwargs()
        try:
            self.fit_model(model, Xf, yf, Xv, yv)
        finally:
            self.fit_kwargs = full
        return model

    def _previous_model(self, window: _Window, X: np.ndarray, y: np.ndarray | None) -> Any:
        """The model a warm-started fit starts from (a look-up for a fit, not a use: it counts no cache hit)."""
        hits = self.cache.hits
        model = self._model_of(window, X, y)[0]
        self.cache.hits = hits
        return model

    def _model_of(self, window: _Window | None, X: np.ndarray, y: np.ndarray | None) -> tuple[Any, Any]:
        """The model of ``window`` and its calibration state: from memory or disk, from its parallel fit, or
        fitted here; ``(None, None)`` for a window bad bars left unfitted."""
        if window is None:
            return None, None
        arrays = self._training_arrays(window.k, X, y)
        Xv, yv = arrays[2], arrays[3]
        label = type(self).__name__

        def fit() -> Any:
            return self._fit(window, arrays, X, y)

        # models evaluate in float64: batched and bar-by-bar values then agree to ~1e-15 (see BaseModel.double)
        def calibrate(model: Any) -> Any:
            return self.calibrate(model.double(), Xv, yv)

        job = window.job
        if job is None:
            return self.cache.get_or_fit(window.key, label, self._load, fit, calibrate)
        pool = self._pool
        path = pool.wait(job)
        try:
            return self.cache.adopt(window.key, label, self._load, path, fit, calibrate)
        finally:
            window.job = None
            pool.release(job)

    def _window_model(self, k: int, X: np.ndarray, y: np.ndarray | None) -> tuple[Any, Any]:
        """The fitted ``k``-th model and its calibration state; ``(None, None)`` when bad bars left fewer than
        half of the window's fit rows or calibration rows."""
        return self._model_of(self._window(k, X, y), X, y)

    # ------------------------------------------------------------------ parallel fits
    def _fit_state(self) -> dict[str, Any]:
        """What a worker's stand-in of this indicator needs to run ``make_model`` / ``fit_model``: the parameters
        and the plain attributes (numbers, strings, arrays, containers of them, frozen dataclasses)."""
        state = {name: value for name, value in vars(self).items() if _plain(value)}
        params = types.SimpleNamespace(**{name: getattr(self.p, name) for name in self.p._getkeys()})
        state.update(p=params, params=params, model_kwargs=dict(self.model_kwargs), fit_kwargs=dict(self.fit_kwargs))
        return state

    def _queue_fits(self, pool: Any, rank: int) -> list[Any]:
        """Send the fits of every window of the whole data that are in neither cache to ``pool``; return the jobs.
        Only models with a training loop go (the torch models): the closed-form baselines fit faster than a task
        travels. An indicator whose class a worker cannot import (defined in ``__main__`` or in a function) keeps
        its fits here, in ``once()``."""
        from .parallel_fits import FitTask

        cls = type(self)
        if not self._torch_model() or cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
            return []
        X, y, n = self._once_inputs()
        label = type(self).__name__
        state = self._fit_state()
        warm_kwargs = self._warm_fit_kwargs() if self._warm else None
        jobs = []
        for k in range(self.spec.fit_index(n - 1) + 1):
            window = self._window(k, X, y)
            if window is None or self.cache.has(window.key, label):
                continue
            after = warm_from = None
            if window.warm_from is not None:
                previous = window.warm_from
                after = previous.job
                warm_from = str(after.path) if after is not None else self._model_file(previous, X, y, pool)
            path = self.cache.path(window.key, label)
            temporary = path is None
            if temporary:
                path = pool.temporary_folder() / f"{label}-{window.key}.pt"
            task = FitTask((cls.__module__, cls.__qualname__), state, self._training_arrays(k, X, y), str(path),
                           self.cache.meta(window.key), warm_from, warm_kwargs)
            try:
                window.job = pool.submit(window.key, task, after=after, priority=(k, rank), temporary=temporary)
            except Exception as exc:   # not picklable (a parameter holding a function ...): fit here, serially
                log.debug("%s: fitting here, not in worker processes (%s)", label, exc)
                break
            jobs.append(window.job)
        return jobs

    def _model_file(self, window: _Window, X: np.ndarray, y: np.ndarray | None, pool: Any) -> str:
        """A checkpoint of ``window``'s model (cached: in memory or on disk), for a warm-started worker to read."""
        model = self._previous_model(window, X, y)   # loads it (and checks the file), or fits it again
        path = self.cache.path(window.key, type(self).__name__)
        if path is None or not path.exists():
            path = pool.temporary_folder() / f"{type(self).__name__}-{window.key}.pt"
            model.save(path, meta=self.cache.meta(window.key))
        return str(path)

    def _queue_feed_fits(self) -> None:
        """Send the fits of every walk-forward indicator of this data feed (not yet queued, n_jobs > 1) to one pool,
        with one progress bar over them unless all are quiet."""
        from .parallel_fits import get_pool

        feed = [ref() for ref in getattr(self.data, "_btdensity_walkforward", [])]
        group = [ind for ind in feed if ind is not None and ind.n_jobs > 1 and not ind._queued
                 and (ind is self or not ind._once_done)]
        if not any(ind is self for ind in group):   # (identity: backtrader's == builds a line operation)
            group.insert(0, self)
        pool = get_pool(self.n_jobs)
        jobs = []
        for rank, ind in enumerate(group):
            ind._queued, ind._pool = True, pool
            jobs.extend(ind._queue_fits(pool, rank))
        if jobs and not all(ind.p.quiet for ind in group):
            from tqdm.auto import tqdm

            bar = tqdm(total=len(jobs), desc="model fits", unit="fit", leave=False)

            def done(job: Any) -> None:
                bar.update(1)
                if bar.n >= bar.total:
                    bar.close()

            for job in jobs:
                job.on_done = done

    def _features(self, arrays: dict[str, np.ndarray], end_bar: int) -> np.ndarray:
        """Input rows (``inputs``) of the bars in ``arrays`` (the last one is bar ``end_bar``), shared by the
        indicators on this data feed with the same ``input_key()``: computed once per bar, not once per indicator.

        The key holds the last bar's values, so a bar still forming (replay, live) is never served stale rows;
        the bars before it are final. The rows are read-only, as they are shared.
        """
        last = tuple(float(arrays[name][-1]) for name in (*OHLCV, "time"))
        key = (self.input_key(), end_bar, len(arrays["close"]), last)
        memo = getattr(self.data, "_btdensity_features", None)
        if memo is None:
            memo = OrderedDict()
            self.data._btdensity_features = memo
        X = memo.get(key)
        if X is None:
            # invalid bars (non-positive price, negative volume) become NaN: their rows are non-finite, not an error
            valid = {name: np.where(arrays[name] >= 0 if name == "volume" else arrays[name] > 0, arrays[name], np.nan)
                     for name in OHLCV}
            X = self.inputs({**valid, "time": arrays["time"]})
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
        return bar_arrays(self.data, size=size)

    # ------------------------------------------------------------------ runonce
    def preonce(self, start: int, end: int) -> None:
        pass

    def oncestart(self, start: int, end: int) -> None:
        self.once(start, end)

    def _once_inputs(self) -> tuple[np.ndarray, np.ndarray | None, int]:
        """Rows, labels and length of the whole (preloaded) data, as ``once()`` sees it."""
        n = self.data.buflen()
        X, y = self._features_and_labels(self._first_bars(n), n - 1)
        return X, y, n

    def _first_bars(self, n: int) -> dict[str, np.ndarray]:
        """The first ``n`` bars of the (preloaded) data, as fresh numpy arrays with their ``time``."""
        return bar_arrays(self.data, first=n)

    def once(self, start: int, end: int) -> None:
        if self._once_done:  # backtrader calls oncestart and once: the work is done on the first call
            return
        self._once_done = True
        if self.n_jobs > 1 and not self._queued:
            self._queue_feed_fits()
        X, y, n = self._once_inputs()
        out = np.full((n, self.size()), np.nan)
        n_windows = self.spec.fit_index(n - 1) + 1
        windows = range(n_windows)
        if not self.p.quiet and n_windows > 1 and not self._queued:
            from tqdm.auto import tqdm
            windows = tqdm(windows, desc=type(self).__name__, unit="fit", leave=False)
        try:
            for k in windows:
                model, state = self._model_of(self._window(k, X, y), X, y)
                bars = self.spec.served(k, n)
                if model is not None:
                    out[bars.start:bars.stop] = self._evaluate_window(model, state, X[bars.start:bars.stop],
                                                                      bars.start)
        except BaseException:
            if self._pool is not None:   # nothing will wait for the fits not yet started
                self._pool.cancel_pending()
            raise
        for j in range(self.size()):
            self.lines[j].array[0:n] = array("d", out[:, j])
        if self.derived_lines:
            derived = self.derive_all(n)
            for j, name in enumerate(self.derived_lines):
                getattr(self.lines, name).array[0:n] = array("d", derived[:, j])

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
            out.append(self._model_lines(self.evaluate(model, state, rows)[:m]))
        values = np.concatenate(out) if out else np.empty((0, self.size()))
        values[~ok] = np.nan
        return values

    # ------------------------------------------------------------------ bar by bar
    def nextstart(self) -> None:
        self.next()

    def _model_lines(self, values: np.ndarray) -> np.ndarray:
        """``evaluate``'s rows with NaN columns for the ``derived_lines`` (filled after)."""
        if not self.derived_lines:
            return values
        return np.concatenate([values, np.full((values.shape[0], len(self.derived_lines)), np.nan)], axis=1)

    def next(self) -> None:
        self._next_model_lines()
        if self.derived_lines:
            for name, value in zip(self.derived_lines, self.derive_bar()):
                getattr(self.lines, name)[0] = float(value)

    def _next_model_lines(self) -> None:
        bar = len(self.data) - 1
        k = self.spec.fit_index(bar)
        if k < 0:
            return
        if k != self._k:
            # the fit needs the history before bar T_k only; take all buffered bars up to now
            arrays = self._history(bar + 1)
            X, y = self._features_and_labels(arrays, bar)
            self._model, self._state = self._model_of(self._window(k, X, y), X, y)
            self._k = k
        row = self._features(self._history(self.spec.first_row + 1), bar)[-1:]
        if self._model is not None and np.isfinite(row).all():
            values = self._model_lines(self.evaluate(self._model, self._state, row))[0]
        else:
            if self._model is not None:
                self._warn_bad_rows(bar)
            values = np.full(self.size(), np.nan)
        for j in range(self.size()):
            self.lines[j][0] = float(values[j])

    def _plotlabel(self) -> list[str]:
        """What backtrader's plot shows after the name: the model (its ``label``, else its class name), not every
        parameter (features, paths ...)."""
        cls = self.model_class()
        return [getattr(cls, "label", cls.__name__)]

    def describe(self) -> str:
        """A one-line description for logs: the schedule and the fits done."""
        return json.dumps({"indicator": type(self).__name__, "first_fit": self.spec.first_fit,
                           "retrain_every": self.spec.retrain_every, "fits": self.cache.fits,
                           "cache_hits": self.cache.hits})


def _plain(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is plain data a worker can rebuild (numbers, strings, arrays, paths, frozen dataclasses and
    containers of them), not a backtrader object, a cache or a function."""
    if depth > 4:
        return False
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes, np.generic, np.ndarray, Path)):
        return True
    if isinstance(value, (tuple, list, set, frozenset)):
        return all(_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v, depth + 1) for k, v in value.items())
    if dataclasses.is_dataclass(value) and not isinstance(value, type) and value.__dataclass_params__.frozen:
        return all(_plain(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value))
    return False
