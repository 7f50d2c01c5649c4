"""``write_report``: the tearsheet, the summary figures, the plot and the model diagnostics page of a finished
backtest."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from btdensity.atomic import write_text
from btdensity.runner.metrics import daily_returns, summarize

from .background import start_part
from .diagnostics import write_diagnostics
from .diagnostics_stats import diagnostic_figures, has_model_lines
from .plot import write_plot
from .tearsheet import write_tearsheet

if TYPE_CHECKING:   # reading a result needs neither the strategies nor torch
    from btdensity.runner import BacktestResult

__all__ = ["write_report"]


def write_report(result: "BacktestResult", out_dir: str | os.PathLike, *, title: str = "btdensity backtest",
                 plot: bool = True, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``tearsheet.html``, ``summary.json``, (unless ``plot=False``) ``plot.png`` and, when the strategy
    has model indicators, ``diagnostics.html`` into ``out_dir``; return the summary (what ``summary.json`` holds).
    The tearsheet is written in a forked child process beside the plot and the diagnostics
    (:mod:`~btdensity.reports.background`).

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
    tearsheet = start_part("tearsheet", write_tearsheet, out / "tearsheet.html", daily_returns(result.values, initial),
                           daily_returns(result.benchmark, initial), summary["periods_per_year"], title,
                           trading=summary)
    try:
        if plot and result.cerebro is not None:
            write_plot(result.cerebro, out / "plot.png")
        if has_model_lines(result.lines):
            write_diagnostics(out, prices=result.prices, lines=result.lines, trades=result.trades,
                              positions=result.positions, title=title, **settings)
    finally:
        tearsheet.wait()
    return summary
