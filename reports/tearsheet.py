"""The QuantStats HTML tearsheet: strategy against buy-and-hold of the same data, no network."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import warnings
from html import escape
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from btdensity.atomic import atomic_path

__all__ = ["trading_note", "write_tearsheet"]

# QuantStats' template links a favicon on its author's site; an offline report must not fetch anything.
FLAT_NOTE = ('<p style="background:#fff3cd;padding:8px 12px;font-family:sans-serif">The strategy never held a '
             'position: its returns are flat, so the comparison with buy-and-hold is left out here '
             '(buy-and-hold\'s figures are in summary.json).</p>')
_EXTERNAL_ICON = re.compile(r'<link rel="shortcut icon" href="https?://[^"]*"[^>]*>\s*')
_NOTE_STYLE = "background:#eef3f8;padding:8px 12px;font-family:sans-serif;font-size:14px"


def trading_note(figures: Mapping[str, Any]) -> str:
    """The tearsheet's line on what trading cost: turnover, fees as a share of the average equity per year, the
    average holding time and the trades (from ``summary.json``'s figures; empty without them).

    >>> note = trading_note({"turnover_per_year": 12.0, "fees_per_year": 0.012, "avg_holding_days": 3.5, "n_trades": 4})
    >>> "fees 1.20 % of the average equity a year; positions held 3.5 days on average; 4 trades." in note
    True
    """
    if "turnover_per_year" not in figures:
        return ""
    text = (f"Trading: turnover {figures['turnover_per_year']:.1f}× the average equity a year; fees "
            f"{100 * figures['fees_per_year']:.2f} % of the average equity a year; positions held "
            f"{figures['avg_holding_days']:.1f} days on average; {int(figures.get('n_trades', 0))} trades.")
    return f'<p class="trading" style="{_NOTE_STYLE}">{escape(text)}</p>'


def write_tearsheet(path: str | os.PathLike, returns: pd.Series, benchmark: pd.Series,
                    periods_per_year: int, title: str, trading: Mapping[str, Any] | None = None) -> Path:
    """Write the tearsheet of daily ``returns`` against daily ``benchmark`` returns (both Series); ``trading``
    (``summary.json``'s figures) adds a line on turnover, fees and holding time at the top (:func:`trading_note`).

    The benchmark is passed as a Series: QuantStats downloads a benchmark given as a ticker string.
    """
    from btdensity.compat import use_headless_matplotlib

    use_headless_matplotlib()
    import quantstats as qs

    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # QuantStats asks for Arial

    path = Path(path)
    # QuantStats' regression against the benchmark fails on a strategy that never moved: show it alone
    flat = not (returns != 0).any()
    with atomic_path(path) as tmp:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            qs.reports.html(returns.rename("Strategy"), benchmark=None if flat else benchmark.rename("Buy & hold"),
                            periods_per_year=periods_per_year, output=str(tmp), title=title,
                            match_dates=False,  # the whole run, warm-up included, as summary.json reports it
                            benchmark_title="Buy & hold", strategy_title="Strategy")
        html = _EXTERNAL_ICON.sub("", tmp.read_text(encoding="utf-8"))
        notes = (FLAT_NOTE if flat else "") + trading_note(trading or {})
        if notes:
            html = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + notes, html, count=1)
        tmp.write_text(html, encoding="utf-8")
    import matplotlib.pyplot as plt

    plt.close("all")
    return path
