"""backtrader's plot of a finished run, saved as a PNG with readable date labels, titles and indicator panels."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from btdensity.atomic import atomic_path

__all__ = ["robust_limits", "write_plot"]

#: titles of backtrader's observers in the plot (backtrader writes "Value (None)", "BuySell (True, 0.015)")
OBSERVER_TITLES = {"Value": "Portfolio value", "BuySell": "Orders"}
#: an indicator panel whose full range is this many times its 0.5-99.5 % range is zoomed to the latter
SPIKE_RATIO = 2.0


def write_plot(cerebro, path: str | os.PathLike, *, width: float = 16.0, height: float = 10.0,
               dpi: int = 110) -> Path:
    """Save ``cerebro``'s plot (after ``run``) to ``path``.

    backtrader's plot forces TkAgg (so Agg is selected first), draws candles that a long run turns
    into a smear (lines are used past 500 bars), and plots against the bar number with its date
    labels hidden; the bottom axis gets date labels of the bars again. Observers get plain titles, and an indicator
    panel whose spikes would flatten the rest (a score direction of 1,200 on a crash bar) is zoomed to the bulk of
    its values (:func:`robust_limits`), with a note saying so.
    """
    from btdensity.compat import use_headless_matplotlib

    use_headless_matplotlib()
    import matplotlib.pyplot as plt

    data = cerebro.datas[0]
    style = "candle" if len(data) <= 500 else "line"
    _plain_titles(cerebro)
    with plt.style.context("default"):  # QuantStats changes matplotlib's global style when it runs first
        return _draw(cerebro, data, style, path, width, height, dpi)


def _plain_titles(cerebro: Any) -> None:
    """Observer titles without backtrader's parameter lists."""
    for strategies in getattr(cerebro, "runstrats", None) or []:
        for strategy in strategies:
            for observer in strategy.getobservers():
                title = OBSERVER_TITLES.get(type(observer).__name__)
                if title is not None:
                    observer.plotinfo.plotname = title
                    observer._plotlabel = list   # no "(params)" after the title


def robust_limits(values: np.ndarray, marks: tuple[float, ...] = ()) -> tuple[float, float] | None:
    """The y-limits of a panel whose spikes would flatten it: the 0.5-99.5 % range of ``values`` with a 10 % margin,
    widened to include ``marks`` (its horizontal reference lines) when they lie within the full range; ``None`` when
    the full range is less than ``SPIKE_RATIO`` times that range (nothing to zoom).

    >>> [round(x, 1) for x in robust_limits(np.r_[np.linspace(-1.0, 1.0, 1000), 50.0], marks=(0.0,))]
    [-1.2, 1.2]
    >>> robust_limits(np.linspace(0.0, 1.0, 100)) is None   # nothing sticks out
    True
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < 10:
        return None
    lo, hi = (float(x) for x in np.percentile(v, [0.5, 99.5]))
    full = float(v.max() - v.min())
    if hi <= lo or full < SPIKE_RATIO * (hi - lo):
        return None
    pad = 0.1 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    for mark in marks:
        if v.min() <= mark <= v.max():
            lo, hi = min(lo, mark - pad), max(hi, mark + pad)
    return round(lo, 12), round(hi, 12)


def _zoom_spiky_panels(fig: Any, price_axes: set) -> None:
    for ax in fig.get_axes():
        if ax in price_axes:
            continue
        series, marks = [], []
        for line in ax.get_lines():
            if not line.get_visible():       # the cursor's lines
                continue
            y = np.asarray(line.get_ydata(), dtype=np.float64)
            if str(line.get_label()).startswith("_"):
                if y.size == 2 and y[0] == y[1]:
                    marks.append(float(y[0]))    # a horizontal reference line (plothlines)
            elif y.size:
                series.append(y)
        if not series:
            continue
        limits = robust_limits(np.concatenate(series), tuple(marks))
        if limits is not None:
            ax.set_ylim(*limits)
            ax.text(0.5, 0.96, "spikes beyond the 0.5-99.5 % range cut off", transform=ax.transAxes,
                    ha="center", va="top", fontsize=7, color="#666666")


def _draw(cerebro, data, style: str, path, width: float, height: float, dpi: int) -> Path:
    import backtrader as bt
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    figures = cerebro.plot(style=style, iplot=False, volume=True, barup="#2ca02c", bardown="#d62728",
                           numfigs=1)
    fig = figures[0][0]
    fig.set_size_inches(width, height)
    tallest = max(ax.get_position().height for ax in fig.get_axes())
    price_axes = {ax for ax in fig.get_axes() if ax.get_position().height > 0.99 * tallest}  # price, volume
    _zoom_spiky_panels(fig, price_axes)
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
