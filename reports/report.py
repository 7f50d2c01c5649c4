"""``write_report``: the tearsheet, the summary figures, the plot and the model diagnostics page of a finished
backtest; for a portfolio (several assets) also each asset's figures (``assets.csv``, the tearsheet's asset table,
``summary.json``'s ``assets``)."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from btdensity.atomic import atomic_path, write_text
from btdensity.runner.metrics import ASSET_KEYS, daily_returns, summarize

from .background import start_part
from .diagnostics import write_diagnostics
from .diagnostics_stats import diagnostic_figures, has_model_lines
from .plot import write_plot
from .tearsheet import write_tearsheet

if TYPE_CHECKING:   # reading a result needs neither the strategies nor torch
    from btdensity.runner import BacktestResult

__all__ = ["portfolio_total", "write_report"]


def portfolio_total(summary: dict[str, Any], cash: float) -> dict[str, Any]:
    """The portfolio's row of the asset table, under the assets' keys (``ASSET_KEYS``): its P&L (final value minus
    ``cash``), the sum of the assets' average weights (the average net exposure), the equal-weight buy-and-hold's
    return, and its own figures for the rest."""
    assets = summary.get("assets") or {}
    row = {**summary, "pnl": summary["final_value"] - cash,
           "avg_weight": sum(figures["avg_weight"] for figures in assets.values()),
           "buy_and_hold_return": summary["benchmark"]["total_return"]}
    return {key: row[key] for key in ASSET_KEYS}


def write_report(result: "BacktestResult", out_dir: str | os.PathLike, *, title: str = "btdensity backtest",
                 plot: bool = True, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``tearsheet.html``, ``summary.json``, (unless ``plot=False``) ``plot.png`` and, when the strategy
    has model indicators, ``diagnostics.html`` into ``out_dir``; return the summary (what ``summary.json`` holds).
    The tearsheet is written in a forked child process beside the plot and the diagnostics
    (:mod:`~btdensity.reports.background`).

    A portfolio (several assets) also gets ``assets.csv``: one row per asset (``ASSET_KEYS``, see
    :func:`btdensity.runner.metrics.asset_figures`) and a ``total`` row (:func:`portfolio_total`); the same table
    heads the tearsheet, which is of the total against an equal-weight buy-and-hold; the diagnostics are of the
    first asset.

    The summary is :func:`btdensity.runner.summarize` of the run from its starting cash, with
    :func:`~btdensity.reports.diagnostics_stats.diagnostic_figures` (time in market, gate-closed and
    in-distribution shares, BNN interval coverage: those the strategy's indicators allow) and ``extra`` merged in.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    initial = result.config.cash
    settings = result.settings
    summary = summarize(result, initial)
    summary.update(diagnostic_figures(result.lines, result.positions, result.prices, horizon=settings["horizon"],
                                      level=settings["level"], score_horizon=settings["score_horizon"]))
    if extra:
        summary.update(extra)
    bad = [k for k, v in summary.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise ValueError(f"summary figures are not finite: {bad}")
    write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    total = None
    several = getattr(result, "several", False)
    if several:
        total = portfolio_total(summary, initial)
        table = pd.DataFrame({**summary["assets"], "total": total}).T.rename_axis("asset")
        with atomic_path(out / "assets.csv") as tmp:
            table.to_csv(tmp, float_format="%.10g")
    tearsheet = start_part("tearsheet", write_tearsheet, out / "tearsheet.html", daily_returns(result.values, initial),
                           daily_returns(result.benchmark, initial), summary["periods_per_year"], title,
                           trading=summary, total=total)
    try:
        if plot and result.cerebro is not None:
            write_plot(result.cerebro, out / "plot.png")
        if has_model_lines(result.lines):
            # a portfolio's diagnostics are of its first asset: its bars, positions and trades, and the first
            # indicator of each class (the other assets' indicators are in the run's lines, suffixed _2, _3, ...)
            trades = result.trades
            if several:
                trades = trades[trades["asset"] == result.assets[0]].drop(columns="asset")
            write_diagnostics(out, prices=result.prices, lines=result.lines, trades=trades,
                              positions=result.positions, title=title, **settings)
    finally:
        tearsheet.wait()
    return summary
