"""``WalkForwardSettings``: the walk-forward settings shared by every model indicator of a strategy, typed and
checked once, when they are made (the command line, strategies, ``BacktestConfig`` and sweeps all use it)."""
from __future__ import annotations

import dataclasses
import difflib
import multiprocessing
import os
import sys
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .features import DEFAULT_FEATURES, RISK_FEATURES, SCALE_FEATURES, lookback

__all__ = ["DEVICES", "JOBS_ENV", "LONGEST_HORIZON", "WARM_EPOCHS", "WalkForwardSettings",
           "resolve_device", "resolve_jobs"]

#: the longest label horizon of the suite's indicators by default (Regime's 24 bars)
LONGEST_HORIZON = 24
#: the environment variable that sets how many fits run at once when ``n_jobs`` is not given
JOBS_ENV = "BTDENSITY_JOBS"
#: where models are fitted and evaluated: ``"auto"`` is CUDA when there is a GPU, else the CPU
DEVICES = ("auto", "cpu", "cuda")
#: the share of the epochs (and of the early-stopping patience) that a warm-started fit runs (``warm_start``: window k's
#: fit starts from window k-1's weights; each indicator says whether it does by default, ``default_warm_start``)
WARM_EPOCHS = 0.25


def resolve_jobs(n_jobs: int | None = None) -> int:
    """How many walk-forward fits run at once: ``n_jobs`` when given, else ``$BTDENSITY_JOBS``, else the CPUs this
    process may use, but 1 inside a worker process (a sweep's trial, a Ray task, a fit worker): their machine is
    already shared out.

    >>> resolve_jobs(3)
    3
    """
    if n_jobs is None:
        raw = os.environ.get(JOBS_ENV, "").strip()
        if raw:
            try:
                n_jobs = int(raw)
            except ValueError:
                raise ValueError(f"${JOBS_ENV} must be a whole number of fits at once (1: serial); "
                                 f"got {raw!r}") from None
        elif _in_worker():
            return 1
        else:
            n_jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive whole number of fits at once (1: serial); got {n_jobs!r}")
    return n_jobs


def resolve_device(device: str) -> str:
    """``"cpu"`` or ``"cuda"`` for a ``device`` setting: ``"auto"`` is CUDA when torch sees a GPU, else the CPU;
    ``"cuda"`` without a GPU is an error.

    >>> resolve_device("cpu")
    'cpu'
    """
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}; got {device!r}")
    if device == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise ValueError("device='cuda' was asked for but torch sees no CUDA GPU; use device='auto' or 'cpu'")
    return "cpu"


def _in_worker() -> bool:
    """True in a process of a pool (multiprocessing) or a Ray task: work is already spread over the machine."""
    if multiprocessing.parent_process() is not None:
        return True
    ray = sys.modules.get("ray")
    try:
        return bool(ray is not None and ray.is_initialized()
                    and ray.get_runtime_context().worker.mode == ray.WORKER_MODE)
    except Exception:  # an older or partial Ray: not a task as far as we can tell
        return False


@dataclass(frozen=True)
class WalkForwardSettings:
    """How every model indicator of a strategy is trained walk-forward.

    ``train_bars`` rows per training window (all rows so far with ``expanding``; ``None``: as each indicator
    does by default, all rows for the forecasts ``BNNUncertainty`` and ``GarchForecast``, the last ``train_bars``
    for the others), a refit every ``retrain_every`` bars, ``embargo`` bars between a window's last label and its
    fit, the last ``val_fraction`` of a window held out for early stopping and calibration, ``seed`` of the models, ``cache_dir`` of fitted models
    (``"default"``: ``$BTDENSITY_CACHE`` or ``~/.cache/btdensity/models``; ``None``: no disk cache), ``quiet``
    hides progress bars; ``fit_kwargs`` go to every model's ``fit`` (e.g. ``{"epochs": 20}``; an indicator's own
    ``fit_kwargs`` update them).

    Speed: ``n_jobs`` fits run at once in worker processes (``None``: :func:`resolve_jobs`, ``$BTDENSITY_JOBS`` or
    the machine's CPUs; 1: serial, in this process); the values are the same either way. ``warm_start`` starts
    window k's fit from window k-1's weights (same architecture) with ``warm_epochs`` of the epochs and patience
    (``None``: as each indicator does by default, warm for ``LogDensity`` and ``Regime``, cold for the others);
    ``device`` (``"auto"``, ``"cpu"``, ``"cuda"``) is where models are fitted and evaluated.

    >>> WalkForwardSettings(train_bars=1000).warmup_bars()
    1193
    >>> WalkForwardSettings.from_mapping({"train_bar": 1000})
    Traceback (most recent call last):
    ...
    ValueError: unknown walk-forward setting 'train_bar' (did you mean 'train_bars'?); known: cache_dir, device, embargo, expanding, fit_kwargs, n_jobs, quiet, retrain_every, seed, train_bars, val_fraction, warm_epochs, warm_start
    """

    train_bars: int = 2000
    retrain_every: int = 500
    embargo: int = 0
    expanding: bool | None = None
    val_fraction: float = 0.3
    seed: int = 0
    cache_dir: str | None = "default"
    quiet: bool = True
    fit_kwargs: Mapping[str, Any] | None = None
    n_jobs: int | None = None
    warm_start: bool | None = None
    warm_epochs: float = WARM_EPOCHS
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("train_bars", "retrain_every", "embargo", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"walk-forward setting {name} must be an integer; got {value!r}")
        if self.train_bars < 20:
            raise ValueError(f"train_bars must be at least 20; got {self.train_bars}")
        if self.retrain_every < 1 or self.embargo < 0:
            raise ValueError(f"retrain_every must be >= 1 and embargo >= 0; got {self.retrain_every}, {self.embargo}")
        if not isinstance(self.val_fraction, (int, float)) or not 0.05 <= self.val_fraction <= 0.5:
            raise ValueError(f"val_fraction must be a number in [0.05, 0.5]; got {self.val_fraction!r}")
        if self.n_jobs is not None:
            resolve_jobs(self.n_jobs)
        if isinstance(self.warm_epochs, bool) or not isinstance(self.warm_epochs, (int, float)) \
                or not 0 < self.warm_epochs <= 1:
            raise ValueError(f"warm_epochs is the share of the epochs a warm-started fit runs, in (0, 1]; "
                             f"got {self.warm_epochs!r}")
        if self.device not in DEVICES:
            close = difflib.get_close_matches(str(self.device), DEVICES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"device must be one of {', '.join(DEVICES)}; got {self.device!r}{hint}")
        for name in ("expanding", "warm_start"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), bool):
                raise ValueError(f"walk-forward setting {name} must be True, False or None (each indicator's own "
                                 f"default); got {getattr(self, name)!r}")
        if not isinstance(self.quiet, bool):
            raise ValueError(f"walk-forward setting quiet must be True or False; got {self.quiet!r}")
        if self.cache_dir is not None and not isinstance(self.cache_dir, (str, os.PathLike)):
            raise ValueError(f"cache_dir must be a folder, None or 'default'; got {self.cache_dir!r}")
        if isinstance(self.cache_dir, os.PathLike):
            object.__setattr__(self, "cache_dir", os.fspath(self.cache_dir))
        if self.fit_kwargs is not None and not isinstance(self.fit_kwargs, Mapping):
            raise ValueError(f"fit_kwargs must be a mapping of fit settings (e.g. {{'epochs': 20}}); got {self.fit_kwargs!r}")

    @classmethod
    def from_mapping(cls, values: "WalkForwardSettings | Mapping[str, Any] | None" = None,
                     **overrides: Any) -> "WalkForwardSettings":
        """Settings from a mapping (or settings, or ``None``) and keyword overrides; an unknown key is an error
        that names it and the known ones."""
        if isinstance(values, WalkForwardSettings):
            values = {f.name: getattr(values, f.name) for f in dataclasses.fields(values)}
        elif values is not None and not isinstance(values, Mapping):
            raise ValueError(f"walk-forward settings must be a mapping of {', '.join(cls.names())}; got {values!r}")
        merged = {**(values or {}), **overrides}
        for key in merged:
            if key not in cls.names():
                close = difflib.get_close_matches(str(key), cls.names(), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(f"unknown walk-forward setting {key!r}{hint}; known: {', '.join(sorted(cls.names()))}")
        return cls(**merged)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def replace(self, **changes: Any) -> "WalkForwardSettings":
        """A copy with ``changes`` (checked like a new object)."""
        return self.from_mapping(self, **changes)

    def indicator_params(self) -> dict[str, Any]:
        """The keyword arguments of a model indicator (``WalkForwardIndicator``) for these settings."""
        params = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        params["fit_kwargs"] = dict(self.fit_kwargs or {})
        return params

    def warmup_bars(self, horizon: int = LONGEST_HORIZON,
                    features: Sequence[str] = DEFAULT_FEATURES + RISK_FEATURES + SCALE_FEATURES) -> int:
        """Bars an indicator with these settings needs before its first value (its minimum period): the features'
        lookback, a training window, the label ``horizon`` and the embargo, and the bar itself. With the defaults
        (the model indicators' default features and the longest label horizon) every model indicator of the suite
        is warm after this many bars."""
        return lookback(tuple(dict.fromkeys(features))) + self.train_bars + horizon + self.embargo + 1
