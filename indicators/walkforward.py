"""The walk-forward contract, in numpy: when models are fitted, on which rows, and the on-disk model cache.

For a history of bars ``0 … n-1`` with features valid from row ``first_row`` (the feature lookback) and
labels that need ``horizon`` bars to become known:

- fits happen at bars ``T_k = T_0 + k · retrain_every``; the model fitted at ``T_k`` serves bars
  ``T_k … T_{k+1} − 1``; ``T_0 = first_row + train_bars + horizon + embargo``;
- the fit at ``T_k`` uses rows ``t`` with ``t + horizon + embargo ≤ T_k − 1`` only: the bar ``T_k`` itself
  may still be forming (replay, live), so it never enters the fit that serves it;
- rolling windows take the last ``train_bars`` such rows, ``expanding`` ones all of them;
- the last ``val_fraction`` of the window is held out: early stopping and calibration statistics
  (energy mean / std, log-density quantiles) come from it.

Everything depends on the bar index only, never on how many bars follow: truncation invariance.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

import numpy as np

from btdensity import __version__
from btdensity.cachedir import model_cache_dir
from btdensity.labels import forward_log_returns

log = logging.getLogger(__name__)

__all__ = ["FitCache", "WalkForwardSpec", "default_cache_dir", "forward_log_returns", "spec_config"]


@dataclass(frozen=True)
class WalkForwardSpec:
    """Walk-forward schedule of one indicator."""

    first_row: int            # first row whose features are all defined
    train_bars: int = 2000
    retrain_every: int = 500
    horizon: int = 0          # bars until a row's label is known (0: no labels)
    embargo: int = 0
    expanding: bool = False
    val_fraction: float = 0.3

    def __post_init__(self) -> None:
        if self.train_bars < 20:
            raise ValueError(f"train_bars must be at least 20; got {self.train_bars}")
        if self.retrain_every < 1:
            raise ValueError(f"retrain_every must be at least 1; got {self.retrain_every}")
        if self.horizon < 0 or self.embargo < 0 or self.first_row < 0:
            raise ValueError(f"horizon, embargo and first_row must be >= 0; got {self}")
        if not 0.05 <= self.val_fraction <= 0.5:
            raise ValueError(f"val_fraction must be in [0.05, 0.5]; got {self.val_fraction}")

    @property
    def first_fit(self) -> int:
        """``T_0``: the first bar with a value."""
        return self.first_row + self.train_bars + self.horizon + self.embargo

    def fit_index(self, bar: int) -> int:
        """``k`` of the model that serves ``bar`` (−1 before the first fit)."""
        return -1 if bar < self.first_fit else (bar - self.first_fit) // self.retrain_every

    def fit_bar(self, k: int) -> int:
        return self.first_fit + k * self.retrain_every

    def served(self, k: int, n_bars: int) -> range:
        """The bars the ``k``-th model produces values for, within ``n_bars`` bars."""
        start = self.fit_bar(k)
        return range(start, min(start + self.retrain_every, n_bars))

    def training_rows(self, k: int) -> tuple[range, range]:
        """(fit rows, held-out tail rows) of the ``k``-th fit, in time order."""
        end = self.fit_bar(k) - self.horizon - self.embargo   # rows t < end, i.e. t + h + embargo <= T_k - 1
        start = self.first_row if self.expanding else end - self.train_bars
        n_val = max(int(round((end - start) * self.val_fraction)), 10)
        return range(start, end - n_val), range(end - n_val, end)


def default_cache_dir() -> Path:
    """The fitted-model folder of :mod:`btdensity.cachedir`: ``$BTDENSITY_CACHE/models``, else
    ``~/.cache/btdensity/models``."""
    return model_cache_dir()


@dataclass
class FitCache:
    """Fitted models on disk, keyed by a hash of (model, config, training rows, package version).

    ``cache_dir=None`` keeps nothing on disk. Files are written atomically by the models' ``save``, with the key
    and the package version inside (``save(path, meta=...)``; ``load`` gives them back as ``meta_``): a file whose
    key or version is not the one asked for (copied over another, left by another version), or that cannot be
    read, is fitted again and overwritten, with one warning naming the file and the reason.
    Models this process has fitted or loaded are also kept in memory (``MEMORY_ITEMS`` of them, least
    recently used dropped first) together with their calibration state, so a second backtest in the same
    process (sweeps, notebooks) neither reloads nor recalibrates. ``fits`` and ``hits`` count what happened.
    """

    cache_dir: Path | None
    fits: int = 0
    hits: int = 0
    _version: str = __version__

    MEMORY_ITEMS: ClassVar[int] = 256
    _memory: ClassVar[OrderedDict[str, tuple[Any, Any]]] = OrderedDict()

    def key(self, config: Mapping[str, Any], *arrays: np.ndarray) -> str:
        h = hashlib.sha256()
        h.update(json.dumps({**config, "version": self._version}, sort_keys=True, default=str).encode())
        for a in arrays:
            a = np.ascontiguousarray(a, dtype=np.float64)
            h.update(str(a.shape).encode())
            h.update(a.tobytes())
        return h.hexdigest()[:32]

    def path(self, key: str, label: str) -> Path | None:
        """The file of ``key``'s model (``label`` names it), or None without a cache folder."""
        return None if self.cache_dir is None else Path(self.cache_dir) / f"{label}-{key}.pt"

    def meta(self, key: str) -> dict[str, Any]:
        """What a checkpoint of ``key`` says of itself (checked on load)."""
        return {"key": key, "version": self._version}

    def has(self, key: str, label: str) -> bool:
        """Whether ``key``'s model is in memory or (not yet checked) on disk: a fit would not run."""
        path = self.path(key, label)
        return key in type(self)._memory or (path is not None and path.exists())

    def get_or_fit(self, key: str, label: str, load: Callable[[Path], Any], fit: Callable[[], Any],
                   calibrate: Callable[[Any], Any]) -> tuple[Any, Any]:
        """``(model, calibration state)`` stored under ``key``: from memory, from disk, or ``fit()`` and store it
        (``label`` names the file). ``calibrate(model)`` computes the state of a model new to this process."""
        memory = type(self)._memory
        if key in memory:
            memory.move_to_end(key)
            self.hits += 1
            return memory[key]
        path = self.path(key, label)
        model = None if path is None or not path.exists() else self._load_checked(path, key, load)
        if model is not None:
            self.hits += 1
        else:
            model = fit()
            self.fits += 1
            if path is not None:
                model.save(path, meta=self.meta(key))
        return self._remember(key, model, calibrate)

    def adopt(self, key: str, label: str, load: Callable[[Path], Any], path: Path | str, fit: Callable[[], Any],
              calibrate: Callable[[Any], Any]) -> tuple[Any, Any]:
        """Like :meth:`get_or_fit` for a model another process fitted into ``path`` (a worker of
        :mod:`.parallel_fits`): load it (counted as a fit), or, should the file not be ``key``'s, fit it here."""
        memory = type(self)._memory
        if key in memory:
            memory.move_to_end(key)
            self.hits += 1
            return memory[key]
        model = self._load_checked(Path(path), key, load)
        if model is None:
            return self.get_or_fit(key, label, load, fit, calibrate)
        self.fits += 1
        return self._remember(key, model, calibrate)

    def _load_checked(self, path: Path, key: str, load: Callable[[Path], Any]) -> Any:
        """The model in ``path`` if it is ``key``'s, of this version, and readable; else None, with one warning."""
        try:
            model = load(path)
            found = getattr(model, "meta_", {})
            if found != self.meta(key):
                raise ValueError(f"it holds the model of key {found.get('key')} (version {found.get('version')})")
            return model
        except Exception as exc:  # unreadable, truncated, another key's or version's model: refit, overwrite
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            log.warning("model cache file %s is not usable (%s); fitting the model again", path, reason)
            return None

    def _remember(self, key: str, model: Any, calibrate: Callable[[Any], Any]) -> tuple[Any, Any]:
        memory = type(self)._memory
        memory[key] = (model, calibrate(model))
        while len(memory) > self.MEMORY_ITEMS:
            memory.popitem(last=False)
        return memory[key]

    @classmethod
    def forget(cls) -> None:
        """Drop the models kept in memory (the disk cache stays)."""
        cls._memory.clear()


def spec_config(spec: WalkForwardSpec) -> dict[str, Any]:
    """The parts of the spec that change a fit (for cache keys)."""
    return asdict(spec)
