"""The figures of the model diagnostics page, each rendered to PNG bytes (headless matplotlib)."""
from __future__ import annotations

import functools
import io
import math
from typing import Any, Callable

import numpy as np
import pandas as pd

from btdensity.labels import REGIME_NAMES

from .diagnostics_stats import line

__all__ = ["decile_figure", "density_figure", "distribution_figure", "regime_figure", "reliability_figure",
           "score_figure"]

_WIDTH, _DPI = 11.0, 100
_CLOSED = "#f4b6b6"     # gate-closed shading
REGIME_COLORS = ("#b7e4b0", "#f5b7b1", "#d9d9d9", "#fbd38d")   # bull, bear, ranging, volatile


def _pyplot():
    from btdensity.compat import use_headless_matplotlib

    use_headless_matplotlib()
    import matplotlib.pyplot as plt

    return plt


def _default_style(draw: Callable[..., bytes]) -> Callable[..., bytes]:
    """Draw in matplotlib's default style: QuantStats (the tearsheet is written first) changes the global one."""
    @functools.wraps(draw)
    def wrapped(*args: Any, **kwargs: Any) -> bytes:
        with _pyplot().style.context("default"):
            return draw(*args, **kwargs)

    return wrapped


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def _x_edges(index: pd.DatetimeIndex) -> np.ndarray:
    """Matplotlib date numbers of each bar's start and, last, of the end of the last bar."""
    import matplotlib.dates as mdates

    x = mdates.date2num(index.tz_convert("UTC").tz_localize(None).to_numpy())
    step = float(np.median(np.diff(x))) if len(x) > 1 else 1.0 / 24
    return np.append(x, x[-1] + step)


def _runs(labels: np.ndarray) -> list[tuple[int, int, float]]:
    """``(first, last + 1, label)`` of each run of equal, non-NaN values."""
    runs, start = [], 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            if np.isfinite(labels[start]):
                runs.append((start, i, float(labels[start])))
            start = i
    return runs


def _shade(ax, edges: np.ndarray, labels: np.ndarray, colors: dict[float, str], alpha: float = 0.6) -> None:
    """Background spans over the bars whose label has a colour (one collection per colour)."""
    spans: dict[float, list[tuple[float, float]]] = {}
    for a, b, label in _runs(labels):
        if label in colors:
            spans.setdefault(label, []).append((edges[a], edges[b] - edges[a]))
    for label, xr in spans.items():
        ax.broken_barh(xr, (0, 1), transform=ax.get_xaxis_transform(), facecolor=colors[label],
                       alpha=alpha, linewidth=0, zorder=0)


def _date_axis(ax) -> None:
    import matplotlib.dates as mdates

    # minticks=3: with the default 5, spans of about 4.5 years (and a few others) fall between the yearly and
    # monthly choices and matplotlib warns that it could not pick an interval
    locator = mdates.AutoDateLocator(minticks=3, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _symlog(ax, values: np.ndarray) -> None:
    """A y axis linear over the usual values and logarithmic beyond them: model scores of a few unusual bars
    run to hundreds of times the usual ones and would flatten the rest on a linear axis."""
    v = np.abs(values[np.isfinite(values)])
    if v.size:
        usual = max(float(np.quantile(v, 0.75)), 1e-9)
        ax.set_yscale("symlog", linthresh=10.0 ** math.ceil(math.log10(usual)))   # a power of ten: clean ticks


@_default_style
def density_figure(prices: pd.DataFrame, lines: pd.DataFrame) -> bytes:
    """Close price, Energy's energy and LogDensity's logp over time, gate-closed bars shaded on all three."""
    plt = _pyplot()
    index = lines.index
    edges = _x_edges(index)
    x = edges[:-1]
    panels = [("close", prices["close"].reindex(index).to_numpy(dtype=np.float64), "#333333")]
    for name, color in (("Energy.energy", "#d62728"), ("LogDensity.logp", "#1f77b4")):
        series = line(lines, name)
        if series is not None:
            panels.append((name, series.to_numpy(), color))
    gate = line(lines, "LogDensity.gate")
    fig, axes = plt.subplots(len(panels), 1, sharex=True, figsize=(_WIDTH, 2.2 + 1.8 * len(panels)),
                             gridspec_kw={"height_ratios": [2] + [1] * (len(panels) - 1)}, squeeze=False)
    for ax, (name, values, color) in zip(axes[:, 0], panels):
        ax.plot(x, values, color=color, linewidth=0.8)
        ax.set_ylabel(name)
        if name != "close":
            _symlog(ax, values)
        if gate is not None:
            _shade(ax, edges, gate.to_numpy(), {0.0: _CLOSED})
        ax.grid(alpha=0.3)
    if gate is not None:
        from matplotlib.patches import Patch

        axes[0, 0].legend(handles=[Patch(color=_CLOSED, label="gate closed (out of distribution)")],
                          loc="upper left", fontsize=8)
    _date_axis(axes[-1, 0])
    return _png(fig)


@_default_style
def decile_figure(table: pd.DataFrame) -> bytes:
    """Trades' total PnL and hit rate, and the bars' mean next-bar return, by log-density decile."""
    plt = _pyplot()
    with_bars = "mean_next_return" in table.columns
    fig, axes = plt.subplots(1, 2 if with_bars else 1, figsize=(_WIDTH, 3.6), squeeze=False)
    ax = axes[0, 0]
    d = table.index.to_numpy()
    pnl = table["pnl"].to_numpy(dtype=np.float64)
    ax.bar(d, pnl, color=np.where(pnl >= 0, "#2ca02c", "#d62728"))
    ax.axhline(0, color="#555555", linewidth=0.8)
    lo, hi = min(pnl.min(), 0.0), max(pnl.max(), 0.0)
    span = hi - lo if hi > lo else 1.0
    ax.set_ylim(lo - 0.05 * span, hi + 0.2 * span)     # room for the trade counts on top
    ax.set_xlabel("log-density decile (1 = least typical)")
    ax.set_ylabel("total PnL after fees")
    ax.set_xticks(d)
    ax.set_title("trades by the decile of their entry bar", fontsize=10)
    hit = ax.twinx()
    hit.plot(d, table["hit_rate"].to_numpy(dtype=np.float64), "o-", color="#1f77b4")
    hit.set_ylim(-0.02, 1.15)
    hit.set_ylabel("hit rate", color="#1f77b4")
    for i, n in zip(d, table["trades"]):
        ax.text(i, 0.97, f"n={n}", transform=ax.get_xaxis_transform(), ha="center", va="top", fontsize=7)
    if with_bars:
        ax = axes[0, 1]
        bps = 1e4 * table["mean_next_return"].to_numpy(dtype=np.float64)
        ax.bar(d, bps, color=np.where(bps >= 0, "#2ca02c", "#d62728"))
        ax.axhline(0, color="#555555", linewidth=0.8)
        ax.set_xticks(d)
        ax.set_xlabel("log-density decile (1 = least typical)")
        ax.set_ylabel("mean next-bar log return (bp)")
        ax.set_title("all bars", fontsize=10)
    fig.tight_layout()
    return _png(fig)


@_default_style
def distribution_figure(lines: pd.DataFrame, alpha: float | None = None) -> bytes:
    """Rolling share of bars in distribution (gate open), its overall mean and the 1 − alpha a stationary
    market would give."""
    plt = _pyplot()
    gate = line(lines, "LogDensity.gate")
    edges = _x_edges(lines.index)
    window = max(10, len(gate) // 40)
    rolling = (gate > 0).astype(np.float64).where(gate.notna()).rolling(window, min_periods=window // 2).mean()
    fig, ax = plt.subplots(figsize=(_WIDTH, 3.0))
    ax.plot(edges[:-1], rolling.to_numpy(), color="#2ca02c", linewidth=1.0, label=f"rolling share ({window} bars)")
    overall = float((gate.dropna() > 0).mean())
    ax.axhline(overall, color="#2ca02c", linestyle=":", label=f"overall {overall:.1%}")
    if alpha is not None:
        ax.axhline(1 - alpha, color="#555555", linestyle="--",
                   label=f"1 − alpha = {1 - alpha:.0%} (stationary market)")
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(-0.02, 1.05)
    ax.set_ylabel("share in distribution")
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    _date_axis(ax)
    return _png(fig)


@_default_style
def reliability_figure(table: pd.DataFrame, coverage: float | None, level: float | None) -> bytes:
    """Observed against nominal coverage of the Gaussian predictive intervals, the diagonal, and the
    indicator's own ``[lower, upper]`` at its level."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    ax.plot([0, 1], [0, 1], color="#888888", linestyle="--", label="perfect calibration")
    ax.plot(table["nominal"], table["observed"], "o-", color="#1f77b4", label="Gaussian(mean, std) intervals")
    if coverage is not None and level is not None:
        ax.plot([level], [coverage], "s", color="#d62728", markersize=9,
                label=f"indicator's [lower, upper] at {level:.0%}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("nominal coverage")
    ax.set_ylabel("observed coverage")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


@_default_style
def horizon_fan_figure(prices: pd.DataFrame, fans: dict[pd.Timestamp, pd.DataFrame]) -> bytes:
    """Small multiples, one per forecast bar: the close over the bars before it, the fan of the multi-horizon
    forecast made there (its central interval and mean at each horizon, joined from the close of that bar, as
    prices) and the closes that followed. ``fans`` maps a bar's time to a frame indexed by the horizons in bars with
    columns ``mean``, ``lower``, ``upper`` (log returns from that bar's close)."""
    plt = _pyplot()
    close = prices["close"]
    fig, axes = plt.subplots(1, len(fans), figsize=(_WIDTH, 3.0), squeeze=False)
    for ax, (time, fan) in zip(axes[0], fans.items()):
        bar = int(close.index.get_loc(time))
        reach = int(fan.index.max())
        steps = np.r_[0, fan.index.to_numpy(dtype=np.float64)]
        start = float(close.iloc[bar])
        past = np.arange(max(0, bar - reach), bar + 1)
        ax.plot(past - bar, close.iloc[past].to_numpy(dtype=np.float64), color="#333333", linewidth=1.0,
                label="close")
        lower, upper, mean = (start * np.exp(np.r_[0.0, fan[c].to_numpy(dtype=np.float64)])
                              for c in ("lower", "upper", "mean"))
        ax.fill_between(steps, lower, upper, color="#1f77b4", alpha=0.25, linewidth=0,
                        label="central interval [lower, upper]")
        ax.plot(steps, mean, color="#1f77b4", linewidth=1.2, marker="o", markersize=3, label="mean")
        after = np.arange(bar, min(len(close), bar + reach + 1))
        ax.plot(after - bar, close.iloc[after].to_numpy(dtype=np.float64), color="#d62728", linewidth=1.3,
                label="what happened")
        ax.axvline(0, color="#999999", linewidth=0.8, linestyle=":")
        ax.set_title(f"{pd.Timestamp(time):%Y-%m-%d %H:%M} UTC", fontsize=9)
        ax.set_xlabel("bars from the forecast", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return _png(fig)


@_default_style
def regime_figure(prices: pd.DataFrame, lines: pd.DataFrame) -> bytes:
    """The close price over background spans coloured by ``Regime.regime``."""
    plt = _pyplot()
    from matplotlib.patches import Patch


    regime = line(lines, "Regime.regime")
    edges = _x_edges(lines.index)
    fig, ax = plt.subplots(figsize=(_WIDTH, 3.6))
    ax.plot(edges[:-1], prices["close"].reindex(lines.index).to_numpy(dtype=np.float64), color="#333333",
            linewidth=0.8)
    colors = {float(k): c for k, c in enumerate(REGIME_COLORS)}
    _shade(ax, edges, regime.to_numpy(), colors, alpha=0.8)
    ax.legend(handles=[Patch(color=c, label=n) for n, c in zip(REGIME_NAMES, REGIME_COLORS)], loc="upper left",
              fontsize=8, ncol=len(REGIME_NAMES))
    ax.set_ylabel("close")
    ax.grid(alpha=0.3)
    _date_axis(ax)
    return _png(fig)


@_default_style
def score_figure(table: pd.DataFrame, horizon: int) -> bytes:
    """Mean forward log return and the share of up moves by decile of ScoreDirection's ``direction``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(_WIDTH / 2, 3.6))
    d = table.index.to_numpy()
    bps = 1e4 * table["mean_forward_return"].to_numpy(dtype=np.float64)
    ax.bar(d, bps, color=np.where(bps >= 0, "#2ca02c", "#d62728"))
    ax.axhline(0, color="#555555", linewidth=0.8)
    ax.set_xticks(d)
    ax.set_xlabel("direction decile (1 = most bearish)")
    ax.set_ylabel(f"mean {horizon}-bar forward log return (bp)")
    up = ax.twinx()
    up.plot(d, table["up_share"].to_numpy(dtype=np.float64), "o-", color="#1f77b4")
    up.axhline(0.5, color="#1f77b4", linewidth=0.6, linestyle=":")
    up.set_ylim(0.0, 1.0)
    up.set_ylabel("share of up moves", color="#1f77b4")
    fig.tight_layout()
    return _png(fig)

