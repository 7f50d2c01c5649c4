"""The QuantStats HTML tearsheet: strategy against buy-and-hold of the same data, no network; a portfolio's tearsheet
is of the total, with a table of each asset's figures at the top."""
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

__all__ = ["ASSET_COLUMNS", "asset_table", "trading_note", "write_tearsheet"]

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


#: the columns of a portfolio's asset table: (summary key, heading, format)
ASSET_COLUMNS = (("total_return", "return", "{:+.2%}"), ("pnl", "P&L", "{:,.2f}"),
                 ("volatility", "volatility", "{:.1%}"), ("sharpe", "Sharpe", "{:.2f}"),
                 ("max_drawdown", "max drawdown", "{:.1%}"), ("avg_weight", "average weight", "{:.1%}"),
                 ("turnover_per_year", "turnover / year", "{:.1f}×"), ("fees_paid", "fees", "{:,.2f}"),
                 ("buy_and_hold_return", "buy & hold", "{:+.2%}"))


def asset_table(assets: Mapping[str, Mapping[str, Any]], total: Mapping[str, Any] | None = None) -> str:
    """An HTML table of a portfolio's assets (``summary.json``'s ``assets``: each asset's sleeve, its P&L on the
    starting cash) and, when given, its ``total`` row (the portfolio's figures); empty without assets.

    >>> html = asset_table({"BTC": {"total_return": 0.1, "pnl": 1000.0, "volatility": 0.5, "sharpe": 1.0,
    ...     "max_drawdown": -0.2, "avg_weight": 0.45, "turnover_per_year": 3.0, "fees_paid": 12.0,
    ...     "buy_and_hold_return": 0.3}})
    >>> "<td>BTC</td><td>+10.00%</td><td>1,000.00</td>" in html
    True
    """
    if not assets:
        return ""
    rows = [*assets.items(), *([("total", total)] if total is not None else [])]
    head = "".join(f"<th>{escape(heading)}</th>" for _, heading, _ in ASSET_COLUMNS)
    body = []
    for name, figures in rows:
        cells = "".join(f"<td>{escape(fmt.format(figures[key]))}</td>" if key in figures else "<td></td>"
                        for key, _, fmt in ASSET_COLUMNS)
        body.append(f"<tr><td>{escape(str(name))}</td>{cells}</tr>")
    note = ("Each asset's sleeve is its P&amp;L on the whole starting cash: returns and P&amp;L add up to the "
            "portfolio's; the tearsheet below is of the portfolio, against an equal-weight buy-and-hold.")
    return (f'<div class="assets" style="{_NOTE_STYLE}"><table style="border-collapse:collapse;text-align:right">'
            f"<tr><th>asset</th>{head}</tr>{''.join(body)}</table><p>{note}</p></div>")


def write_tearsheet(path: str | os.PathLike, returns: pd.Series, benchmark: pd.Series,
                    periods_per_year: int, title: str, trading: Mapping[str, Any] | None = None,
                    total: Mapping[str, Any] | None = None) -> Path:
    """Write the tearsheet of daily ``returns`` against daily ``benchmark`` returns (both Series); ``trading``
    (``summary.json``'s figures) adds a line on turnover, fees and holding time at the top (:func:`trading_note`),
    and, for a portfolio (``trading`` with ``assets``), the table of its assets with the ``total`` row
    (:func:`asset_table`).

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
        figures = trading or {}
        notes = (FLAT_NOTE if flat else "") + trading_note(figures) + asset_table(figures.get("assets") or {}, total)
        if notes:
            html = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + notes, html, count=1)
        tmp.write_text(html, encoding="utf-8")
    import matplotlib.pyplot as plt

    plt.close("all")
    return path
