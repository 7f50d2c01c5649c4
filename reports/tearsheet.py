"""The QuantStats HTML tearsheet: strategy against buy-and-hold of the same data, no network."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import warnings
from pathlib import Path

import pandas as pd

from btdensity.atomic import atomic_path

__all__ = ["write_tearsheet"]

# QuantStats' template links a favicon on its author's site; an offline report must not fetch anything.
FLAT_NOTE = ('<p style="background:#fff3cd;padding:8px 12px;font-family:sans-serif">The strategy never held a '
             'position: its returns are flat, so the comparison with buy-and-hold is left out here '
             '(buy-and-hold\'s figures are in summary.json).</p>')
_EXTERNAL_ICON = re.compile(r'<link rel="shortcut icon" href="https?://[^"]*"[^>]*>\s*')


def write_tearsheet(path: str | os.PathLike, returns: pd.Series, benchmark: pd.Series,
                    periods_per_year: int, title: str) -> Path:
    """Write the tearsheet of daily ``returns`` against daily ``benchmark`` returns (both Series).

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
        if flat:
            html = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + FLAT_NOTE, html, count=1)
        tmp.write_text(html, encoding="utf-8")
    import matplotlib.pyplot as plt

    plt.close("all")
    return path
