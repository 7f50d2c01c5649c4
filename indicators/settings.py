"""``WalkForwardSettings``: the walk-forward settings shared by every model indicator of a strategy, typed and
checked once, when they are made (the command line, strategies, ``BacktestConfig`` and sweeps all use it)."""
from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .features import DEFAULT_FEATURES, lookback

__all__ = ["LONGEST_HORIZON", "WalkForwardSettings"]

#: the longest label horizon of the suite's indicators by default (Regime's 24 bars)
LONGEST_HORIZON = 24


@dataclass(frozen=True)
class WalkForwardSettings:
    """How every model indicator of a strategy is trained walk-forward.

    ``train_bars`` rows per training window (all rows so far with ``expanding``), a refit every ``retrain_every``
    bars, ``embargo`` bars between a window's last label and its fit, the last ``val_fraction`` of a window held
    out for early stopping and calibration, ``seed`` of the models, ``cache_dir`` of fitted models
    (``"default"``: ``$BTDENSITY_CACHE`` or ``~/.cache/btdensity/models``; ``None``: no disk cache), ``quiet``
    hides progress bars; ``fit_kwargs`` go to every model's ``fit`` (e.g. ``{"epochs": 20}``; an indicator's own
    ``fit_kwargs`` update them).

    >>> WalkForwardSettings(train_bars=1000).warmup_bars()
    1073
    >>> WalkForwardSettings.from_mapping({"train_bar": 1000})
    Traceback (most recent call last):
    ...
    ValueError: unknown walk-forward setting 'train_bar' (did you mean 'train_bars'?); known: cache_dir, embargo, expanding, fit_kwargs, quiet, retrain_every, seed, train_bars, val_fraction
    """

    train_bars: int = 2000
    retrain_every: int = 500
    embargo: int = 0
    expanding: bool = False
    val_fraction: float = 0.3
    seed: int = 0
    cache_dir: str | None = "default"
    quiet: bool = True
    fit_kwargs: Mapping[str, Any] | None = None

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
        for name in ("expanding", "quiet"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"walk-forward setting {name} must be True or False; got {getattr(self, name)!r}")
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

    def warmup_bars(self, horizon: int = LONGEST_HORIZON, features: Sequence[str] = DEFAULT_FEATURES) -> int:
        """Bars an indicator with these settings needs before its first value (its minimum period): the features'
        lookback, a training window, the label ``horizon`` and the embargo, and the bar itself. With the default
        ``horizon`` every model indicator of the suite is warm after this many bars."""
        return lookback(features) + self.train_bars + horizon + self.embargo + 1
