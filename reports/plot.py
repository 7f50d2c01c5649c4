"""backtrader's plot of a finished run, saved as a PNG with readable date labels."""
from __future__ import annotations

import os
from pathlib import Path

from btdensity.atomic import atomic_path

__all__ = ["write_plot"]


def write_plot(cerebro, path: str | os.PathLike, *, width: float = 16.0, height: float = 10.0,
               dpi: int = 110) -> Path:
    """Save ``cerebro``'s plot (after ``run``) to ``path``.

    backtrader's plot forces TkAgg (so Agg is selected first), draws candles that a long run turns
    into a smear (lines are used past 500 bars), and plots against the bar number with its date
    labels hidden; the bottom axis gets date labels of the bars again.
    """
    from btdensity.compat import use_headless_matplotlib

    use_headless_matplotlib()
    import matplotlib.pyplot as plt

    data = cerebro.datas[0]
    style = "candle" if len(data) <= 500 else "line"
    with plt.style.context("default"):  # QuantStats changes matplotlib's global style when it runs first
        return _draw(cerebro, data, style, path, width, height, dpi)


def _draw(cerebro, data, style: str, path, width: float, height: float, dpi: int) -> Path:
    import backtrader as bt
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    figures = cerebro.plot(style=style, iplot=False, volume=True, barup="#2ca02c", bardown="#d62728",
                           numfigs=1)
    fig = figures[0][0]
    fig.set_size_inches(width, height)
    dates = list(data.datetime.array)
    span_days = dates[-1] - dates[0] if dates else 0.0
    fmt = "%Y-%m-%d" if span_days > 3 else "%m-%d %H:%M"

    def label(x: float, _pos: int) -> str:
        i = min(max(int(round(x)), 0), len(dates) - 1)
        return bt.num2date(dates[i]).strftime(fmt)

    bottom = min(fig.get_axes(), key=lambda ax: ax.get_position().y0)
    bottom.xaxis.set_major_locator(MaxNLocator(nbins=10, integer=True))
    bottom.xaxis.set_major_formatter(FuncFormatter(label))
    bottom.tick_params(axis="x", labelbottom=True, labelrotation=30)
    for tick in bottom.get_xticklabels():
        tick.set_visible(True)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    plt.close("all")
    return path
