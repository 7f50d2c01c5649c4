"""The strategy registry: ``run_backtest.py --strategy NAME`` and sweeps look strategies up here."""
from __future__ import annotations

from typing import Callable, TypeVar


import backtrader as bt

__all__ = ["STRATEGIES", "get_strategy", "register_strategy"]

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
        raise ValueError(f"unknown strategy {name!r}; choose one of {sorted(STRATEGIES)}") from None
