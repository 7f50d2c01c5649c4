"""The backtest runner: ``backtest(df, BacktestConfig(...)) -> BacktestResult`` (``df`` one OHLCV frame, or several
by asset name: a portfolio, aligned by :func:`align_frames`), the performance figures of a result
(:mod:`btdensity.runner.metrics`), and paper trading on live feeds.

The names load on first use: reading figures (``btdensity.runner.metrics``, what reports and sweeps use) does not
import the strategies, the indicators or torch.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    **dict.fromkeys(("backtest", "indicator_lines", "model_settings"), ".backtest"),
    **dict.fromkeys(("align_frames", "as_frames"), ".assets"),
    "BacktestConfig": ".config",
    "BacktestResult": ".result",
    **dict.fromkeys(("PERFORMANCE_KEYS", "SUMMARY_KEYS", "asset_figures", "daily_returns", "performance",
                     "periods_per_year", "summarize"), ".metrics"),
    "paper_trading": ".paper",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
