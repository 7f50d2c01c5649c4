"""``write_report``: the tearsheet, the summary figures, the plot and the model diagnostics page of a finished
backtest."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from .diagnostics import write_diagnostics
from .diagnostics_stats import diagnostic_figures, has_model_lines
from .metrics import daily_returns, performance, periods_per_year
from .plot import write_plot
from .tearsheet import write_tearsheet

__all__ = ["SUMMARY_KEYS", "summarize", "write_report"]

SUMMARY_KEYS = ("final_value", "total_return", "cagr", "sharpe", "sortino", "max_drawdown", "calmar",
                "n_trades", "win_rate", "exposure", "fees_paid", "funding_paid", "bars", "start", "end",
                "runtime_s", "benchmark")


class Result(Protocol):
    """What a report reads of a backtest (``strategies.BacktestResult`` has it)."""

    values: pd.Series       # broker value at each bar's close, UTC index
    benchmark: pd.Series    # buy-and-hold value of the same bars
    trades: pd.DataFrame    # closed trades, with ``open`` (fill time) and ``pnlcomm`` columns
    positions: pd.Series    # position size at each bar's close
    runtime_s: float
    exposure: float
    # a BacktestResult also has fees_paid (total commission) and funding_paid (net perpetual funding
    # paid, negative when received), cash units; summaries of results without them leave them out
    cerebro: Any
    strategy: Any           # the backtrader strategy after the run (its data and indicators)


def summarize(result: Result, initial: float) -> dict[str, Any]:
    """The figures of ``summary.json`` (performance of the strategy and, under ``benchmark``, of buy-and-hold)."""
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


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


_OHLCV = ("open", "high", "low", "close", "volume")


def _bars(strategy: Any, index: pd.DatetimeIndex) -> pd.DataFrame:
    """The strategy's OHLCV bars on ``index`` (its bars' datetimes)."""
    n = len(index)
    return pd.DataFrame({k: np.asarray(getattr(strategy.data, k).array, dtype=np.float64)[:n] for k in _OHLCV},
                        index=index)


def _model_settings(strategy: Any) -> dict[str, Any]:
    """The diagnostics' settings read off the strategy's first BNNUncertainty (``horizon``, ``level``),
    LogDensity (``alpha``) and ScoreDirection (``score_horizon``) indicators."""
    settings: dict[str, Any] = {"horizon": 1, "level": None, "alpha": None, "score_horizon": 1}
    for ind in reversed(strategy.getindicators()):     # reversed: the first of a class wins
        name = type(ind).__name__
        if name == "BNNUncertainty":
            settings.update(horizon=max(int(ind.p.horizon), 1), level=float(ind.p.level))
        elif name == "LogDensity":
            settings["alpha"] = float(ind.p.alpha)
        elif name == "ScoreDirection":
            settings["score_horizon"] = max(int(ind.p.horizon), 1)
    return settings


def write_report(result: Result, out_dir: str | os.PathLike, *, initial: float, title: str = "btdensity backtest",
                 plot: bool = True, extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write ``tearsheet.html``, ``summary.json``, (unless ``plot=False``) ``plot.png`` and, when the strategy
    has model indicators, ``diagnostics.html`` (:func:`reports.diagnostics.write_diagnostics`) into ``out_dir``.

    The summary also holds :func:`reports.diagnostics_stats.diagnostic_figures` (time in market, gate-closed
    and in-distribution shares, BNN interval coverage: those the strategy's indicators allow).
    ``initial`` is the starting cash; ``extra`` figures are merged into the summary.
    Returns the paths written, by name.
    """
    from strategies.backtest import indicator_lines   # the lines of the run (strategies imports indicators, torch)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = indicator_lines(result.strategy)
    prices = _bars(result.strategy, lines.index)
    settings = _model_settings(result.strategy)
    summary = summarize(result, initial)
    summary.update(diagnostic_figures(lines, result.positions, prices, horizon=settings["horizon"],
                                      level=settings["level"], score_horizon=settings["score_horizon"]))
    if extra:
        summary.update(extra)
    paths = {"summary": out / "summary.json", "tearsheet": out / "tearsheet.html"}
    bad = [k for k, v in summary.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise ValueError(f"summary figures are not finite: {bad}")
    _atomic_write_text(paths["summary"], json.dumps(summary, indent=2) + "\n")
    write_tearsheet(paths["tearsheet"], daily_returns(result.values, initial),
                    daily_returns(result.benchmark, initial), summary["periods_per_year"], title)
    if plot:
        paths["plot"] = write_plot(result.cerebro, out / "plot.png")
    if has_model_lines(lines):
        paths["diagnostics"] = write_diagnostics(out, prices=prices, lines=lines, trades=result.trades,
                                                 positions=result.positions, title=title, **settings)
    return paths
