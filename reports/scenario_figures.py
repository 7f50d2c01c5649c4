"""The scenario fan chart of the diagnostics page: at a few bars, the quantile bands of the price paths a model drew
for the next bars, set against the price that followed.

``scenario_panel(prices, scenarios)`` returns the panel's HTML (a heading, a note, the figure inline and a table of
how often the realised path stayed inside the bands); ``fan_figure`` the PNG alone. ``scenarios`` maps each bar's
time to its paths: an array ``(n_paths, horizon)`` of cumulative log returns from that bar's close (what
:meth:`btdensity.indicators.TailRisk.scenarios` returns, or the ``paths`` of a
:class:`btdensity.indicators.scenarios.ScenarioFan`).
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import pandas as pd

from .diagnostics_figures import _default_style, _png, _pyplot
from .html import fmt, frame_table, image, panel

__all__ = ["SCENARIO_HEADING", "fan_figure", "fan_table", "scenario_panel"]

SCENARIO_HEADING = "Scenario fans"
#: central bands drawn, widest first, with their shading
_BANDS = ((0.9, 0.18), (0.5, 0.35))


def _realized(prices: pd.DataFrame, time: pd.Timestamp, horizon: int) -> tuple[float, np.ndarray]:
    """The close at ``time`` and the cumulative log returns of the ``horizon`` closes after it (NaN past the end)."""
    close = prices["close"].to_numpy(dtype=np.float64)
    bar = int(prices.index.get_loc(time))
    after = close[bar + 1:bar + 1 + horizon]
    out = np.full(horizon, np.nan)
    out[:after.size] = np.log(after / close[bar])
    return float(close[bar]), out


def fan_table(prices: pd.DataFrame, scenarios: Mapping[pd.Timestamp, np.ndarray]) -> pd.DataFrame:
    """One row a fan: its time, horizon, paths, the realised steps inside the central 50 % and 90 % bands, and the
    realised return over the horizon against the median and the 5 % / 95 % quantiles of the paths' returns."""
    rows = []
    for time, paths in scenarios.items():
        paths = np.asarray(paths, dtype=np.float64)
        _, realized = _realized(prices, time, paths.shape[1])
        known = np.isfinite(realized)
        row = {"time": f"{pd.Timestamp(time):%Y-%m-%d %H:%M}", "horizon": paths.shape[1], "paths": paths.shape[0]}
        for level, _ in _BANDS:
            lo, hi = np.quantile(paths, [(1 - level) / 2, (1 + level) / 2], axis=0)
            inside = (realized >= lo) & (realized <= hi)
            row[f"inside {level:.0%}"] = float(inside[known].mean()) if known.any() else math.nan
        q05, q50, q95 = np.quantile(paths[:, -1], [0.05, 0.5, 0.95])
        row.update({"realised (bp)": 1e4 * realized[-1], "median (bp)": 1e4 * q50, "5 % (bp)": 1e4 * q05,
                    "95 % (bp)": 1e4 * q95})
        rows.append(row)
    return pd.DataFrame(rows).set_index("time") if rows else pd.DataFrame()


@_default_style
def fan_figure(prices: pd.DataFrame, scenarios: Mapping[pd.Timestamp, np.ndarray], context: int | None = None) -> bytes:
    """Small multiples, one a fan: the close over the ``context`` bars before (default three horizons), the median
    and the central 50 % / 90 % bands of the price paths, and the closes that followed."""
    plt = _pyplot()
    n = len(scenarios)
    cols = min(n, 2)
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(11.0, 3.2 * rows), squeeze=False)
    close = prices["close"].to_numpy(dtype=np.float64)
    for ax, (time, paths) in zip(axes.ravel(), scenarios.items()):
        paths = np.asarray(paths, dtype=np.float64)
        h = paths.shape[1]
        start, realized = _realized(prices, time, h)
        bar = int(prices.index.get_loc(time))
        before = context or 3 * h
        past = np.arange(max(0, bar - before), bar + 1)
        ax.plot(past - bar, close[past], color="#333333", linewidth=1.0, label="close")
        steps = np.arange(1, h + 1)
        for level, alpha in _BANDS:
            lo, hi = np.quantile(paths, [(1 - level) / 2, (1 + level) / 2], axis=0)
            ax.fill_between(np.r_[0, steps], start * np.exp(np.r_[0, lo]), start * np.exp(np.r_[0, hi]),
                            color="#1f77b4", alpha=alpha, linewidth=0, label=f"central {level:.0%} of paths")
        ax.plot(np.r_[0, steps], start * np.exp(np.r_[0, np.median(paths, axis=0)]), color="#1f77b4",
                linewidth=1.2, label="median path")
        ax.plot(np.r_[0, steps], start * np.exp(np.r_[0, realized]), color="#d62728", linewidth=1.4,
                label="what happened")
        ax.axvline(0, color="#999999", linewidth=0.8, linestyle=":")
        ax.set_title(f"{pd.Timestamp(time):%Y-%m-%d %H:%M} UTC", fontsize=9)
        ax.set_xlabel("bars from the forecast", fontsize=8)
        ax.tick_params(labelsize=8)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    if n:
        axes.ravel()[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return _png(fig)


def scenario_panel(prices: pd.DataFrame, scenarios: Mapping[pd.Timestamp, np.ndarray]) -> str:
    """The diagnostics panel of the scenario fans: ``prices`` the OHLCV bars (UTC index), ``scenarios`` each fan's
    bar time -> its paths, ``(n_paths, horizon)`` cumulative log returns from that bar's close."""
    note = ("At a few bars, the model serving that bar drew joint return paths for the next bars given that bar's "
            "market state; the bands hold the central 50 % and 90 % of the price paths, the red line is what "
            "happened. Over many fans a calibrated model keeps the realised steps inside the 90 % band about 90 % "
            "of the time (a handful of fans, each a few correlated steps, says little on its own).")
    if not scenarios:
        return panel(SCENARIO_HEADING, note, "<p class='missing'>No scenarios in this run: the strategy has no "
                                             "TailRisk indicator, or its warm-up outlasted the data.</p>")
    table = fan_table(prices, scenarios)
    kinds = {"horizon": "int", "paths": "int", "inside 90%": "pct", "inside 50%": "pct"}
    return panel(SCENARIO_HEADING, note, image(fan_figure(prices, scenarios), SCENARIO_HEADING)
                 + frame_table(table, kinds) + f"<p class='note'>{fmt(len(table), 'int')} fan(s).</p>")
