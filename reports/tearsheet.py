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

__all__ = ["write_tearsheet"]

# QuantStats' template links a favicon on its author's site; an offline report must not fetch anything.
_EXTERNAL_ICON = re.compile(r'<link rel="shortcut icon" href="https?://[^"]*"[^>]*>\s*')


def write_tearsheet(path: str | os.PathLike, returns: pd.Series, benchmark: pd.Series,
                    periods_per_year: int, title: str) -> Path:
    """Write the tearsheet of daily ``returns`` against daily ``benchmark`` returns (both Series).

    The benchmark is passed as a Series: QuantStats downloads a benchmark given as a ticker string.
    """
    from feeds.btcompat import use_headless_matplotlib

    use_headless_matplotlib()
    import quantstats as qs

    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # QuantStats asks for Arial

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        qs.reports.html(returns.rename("Strategy"), benchmark=benchmark.rename("Buy & hold"),
                        periods_per_year=periods_per_year, output=str(tmp), title=title,
                        benchmark_title="Buy & hold", strategy_title="Strategy")
    html = _EXTERNAL_ICON.sub("", tmp.read_text(encoding="utf-8"))
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, path)
    import matplotlib.pyplot as plt

    plt.close("all")
    return path
