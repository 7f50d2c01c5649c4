"""The strategy registry: ``run_backtest.py --strategy NAME`` and sweeps look strategies up here."""
from __future__ import annotations

import difflib
from typing import Any, Callable, Mapping, TypeVar

import backtrader as bt

__all__ = ["STRATEGIES", "check_params", "get_strategy", "register_strategy"]

STRATEGIES: dict[str, type[bt.Strategy]] = {}

S = TypeVar("S", bound=type)


def register_strategy(name: str) -> Callable[[S], S]:
    """Class decorator: make a ``bt.Strategy`` available under ``name``."""

    def deco(cls: S) -> S:
        if name in STRATEGIES and STRATEGIES[name] is not cls:
            raise ValueError(f"strategy name {name!r} is already registered to {STRATEGIES[name].__name__}")
        STRATEGIES[name] = cls
        return cls

    return deco


def get_strategy(name: str) -> type[bt.Strategy]:
    """The strategy registered as ``name``; a ValueError lists the known names otherwise."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}{_did_you_mean(name, STRATEGIES)}; "
                         f"choose one of {sorted(STRATEGIES)}") from None


def check_params(name: str, params: Mapping[str, Any]) -> None:
    """Raise a one-line ValueError for a parameter strategy ``name`` does not have (naming its parameters, with a
    "did you mean") or a value of another kind than the parameter's default (a number for a number, a flag for
    a flag, text for text; a parameter whose default is ``None`` takes anything).

    >>> check_params("sma_cross", {"fats": 10})
    Traceback (most recent call last):
    ...
    ValueError: strategy 'sma_cross' has no parameter 'fats' (did you mean 'fast'?); its parameters: band, edge_margin, fast, min_hold, overlay, reference_bars, short, slow, target, vol_halflife
    """
    defaults = dict(get_strategy(name).params._getitems())
    for key, value in params.items():
        if key not in defaults:
            raise ValueError(f"strategy {name!r} has no parameter {key!r}{_did_you_mean(key, defaults)}; "
                             f"its parameters: {', '.join(sorted(defaults))}")
        accepted = _kind(defaults[key])
        if accepted is None:
            continue
        types, what = accepted
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ValueError(f"strategy {name!r}: {key}={value!r} must be {what}, like its default {defaults[key]!r}")


def _kind(default: Any) -> tuple[tuple[type, ...], str] | None:
    """The types a parameter with this default accepts, and their name; ``None``: anything."""
    if isinstance(default, bool):
        return (bool,), "True or False"
    if isinstance(default, int):
        return (int,), "an integer"
    if isinstance(default, float):
        return (int, float), "a number"
    if isinstance(default, str):
        return (str,), "text"
    if isinstance(default, (tuple, list)):
        return (tuple, list), "a list"
    return None


def _did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
