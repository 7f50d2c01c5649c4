"""Performance figures of a backtest, computed as QuantStats computes them for the tearsheet: the one place the
figures of ``summary.json``, the printed table and the sweeps come from."""
from __future__ import annotations

import math
import warnings
from typing import Any, Protocol

import numpy as np
import pandas as pd

__all__ = ["PERFORMANCE_KEYS", "SUMMARY_KEYS", "daily_returns", "performance", "periods_per_year", "summarize"]

PERFORMANCE_KEYS = ("final_value", "total_return", "cagr", "sharpe", "sortino", "max_drawdown", "calmar")
SUMMARY_KEYS = ("final_value", "total_return", "cagr", "sharpe", "sortino", "max_drawdown", "calmar",
                "n_trades", "win_rate", "exposure", "fees_paid", "funding_paid", "bars", "start", "end",
                "runtime_s", "benchmark")


def periods_per_year(index: pd.DatetimeIndex) -> int:
    """365 for markets that trade every day (any weekend bar), 252 for weekday-only data."""
    return 365 if (index.day_of_week >= 5).any() else 252


def daily_returns(values: pd.Series, initial: float) -> pd.Series:
    """Compound a per-bar equity curve to daily returns (the first day is measured from ``initial``).

    Uses each UTC day's last value, so intraday returns compound, never sum.
    """
    daily = values.resample("D").last().dropna()
    prev = daily.shift(1)
    prev.iloc[0] = initial
    out = daily / prev - 1.0
    out.index = out.index.tz_localize(None)
    return out


def _finite(x: float) -> float:
    x = float(x)
    return x if math.isfinite(x) else 0.0


def performance(values: pd.Series, initial: float, periods: int) -> dict[str, float]:
    """Final value, total return, CAGR, Sharpe, Sortino, max drawdown (negative) and Calmar.

    Ratios use daily compounded returns annualised with ``periods`` days a year; a ratio that is
    undefined (no variation, no drawdown) is reported as 0.
    """
    import quantstats as qs

    rets = daily_returns(values, initial)
    final = float(values.iloc[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        equity = (1.0 + rets).cumprod()
        drawdown = float((equity / np.maximum.accumulate(np.r_[1.0, equity.to_numpy()])[1:] - 1.0).min())
        cagr = qs.stats.cagr(rets, periods=periods)
        figures = {
            "final_value": final,
            "total_return": final / initial - 1.0,
            "cagr": cagr,
            "sharpe": qs.stats.sharpe(rets, periods=periods),
            "sortino": qs.stats.sortino(rets, periods=periods),
            "max_drawdown": min(drawdown, 0.0),
            "calmar": cagr / abs(drawdown) if drawdown < 0 else 0.0,
        }
    return {k: _finite(v) for k, v in figures.items()}


class Scored(Protocol):
    """What :func:`summarize` reads (a ``BacktestResult``, or a window of one)."""

    values: pd.Series       # broker value at each bar's close, UTC index
    benchmark: pd.Series    # buy-and-hold value of the same bars
    trades: pd.DataFrame    # closed trades, with a ``pnlcomm`` column
    runtime_s: float
    exposure: float


def summarize(result: Scored, initial: float) -> dict[str, Any]:
    """The figures of ``summary.json``: performance of the strategy and, under ``benchmark``, of buy-and-hold,
    trades, exposure and span; ``fees_paid`` / ``funding_paid`` when the result has them."""
    periods = periods_per_year(result.values.index)
    trades = result.trades
    n_trades = int(len(trades))
    summary: dict[str, Any] = performance(result.values, initial, periods)
    summary.update({
        "n_trades": n_trades,
        "win_rate": float((trades["pnlcomm"] > 0).mean()) if n_trades else 0.0,
        "exposure": float(result.exposure),
        "bars": int(len(result.values)),
        "start": result.values.index[0].isoformat(),
        "end": result.values.index[-1].isoformat(),
        "runtime_s": float(result.runtime_s),
        "periods_per_year": periods,
        "benchmark": performance(result.benchmark, initial, periods),
    })
    for key in ("fees_paid", "funding_paid"):
        if hasattr(result, key):
            summary[key] = float(getattr(result, key))
    return summary
