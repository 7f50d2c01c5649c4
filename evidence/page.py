"""``write_scorecard``: ``scorecard.json`` and ``scorecard.html`` — the verdicts a person reads in a minute, then per
family the figures of each indicator, the forecasts' reliability diagram and PIT histograms, and how the model's
advantage over its baseline moved over time."""
from __future__ import annotations

import html
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd

from btdensity.atomic import write_text
from btdensity.reports.html import fmt, frame_table, image, page, panel

from .lineup import FAMILIES
from .scorecard import Scorecard

__all__ = ["figure_png", "pyplot", "write_scorecard"]

_COLORS = {"better": "#1a7f37", "worse": "#b3261e", "no different": "#555", "not scored": "#999"}
_HOW_TO_READ = (
    "Each row compares a deep model indicator with the classical tool a quant would use instead, out of sample on "
    "the bars both serve (every value at a bar comes from a model fitted on earlier bars only). <b>diff</b> is "
    "model − baseline in the metric's units; the interval is a 95 % circular block bootstrap (blocks keep the "
    "serial dependence of market data); <b>better</b> / <b>worse</b> mean the whole interval is on one side of 0, "
    "<b>no different</b> that it contains 0. A model that does not beat its baseline here has not earned its place "
    "on this data.")


def _verdict_table(card: Scorecard) -> str:
    rows = []
    for c in card.comparisons:
        color = _COLORS.get(c.verdict, "#222")
        arrow = "higher is better" if c.higher_is_better else "lower is better"
        interval = "–" if c.verdict == "not scored" else f"[{fmt(c.lower)}, {fmt(c.upper)}]"
        rows.append(f"<tr><td style='text-align:left'>{html.escape(c.family)}</td>"
                    f"<td style='text-align:left'>{html.escape(c.metric)} <small>({arrow})</small></td>"
                    f"<td style='text-align:left'>{html.escape(c.model)}</td>"
                    f"<td style='text-align:left'>{html.escape(c.baseline)}</td>"
                    f"<td>{fmt(c.model_value)}</td><td>{fmt(c.baseline_value)}</td><td>{fmt(c.diff)}</td>"
                    f"<td>{interval}</td><td>{fmt(c.n, 'int')}</td>"
                    f"<td style='color:{color};font-weight:bold;text-align:left'>{html.escape(c.verdict)}"
                    f"{(' <small>(' + html.escape(c.note) + ')</small>') if c.note else ''}</td></tr>")
    head = "".join(f"<th>{h}</th>" for h in ("family", "metric", "model", "baseline", "model", "baseline", "diff",
                                              "95 % interval", "bars", "verdict"))
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def figure_png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def pyplot():
    from btdensity.compat import use_headless_matplotlib

    use_headless_matplotlib()
    import matplotlib.pyplot as plt

    return plt


def _forecast_figures(series: dict) -> str:
    plt = pyplot()
    fig, (rel, pit) = plt.subplots(1, 2, figsize=(11, 4))
    rel.plot([0, 1], [0, 1], color="#999", linestyle="--", linewidth=1, label="perfect")
    for name, s in series.items():
        rel.plot(s["levels"], s["coverage"], marker="o", label=name)
        pit.hist(s["pit"], bins=20, range=(0, 1), density=True, histtype="step", linewidth=1.5, label=name)
    pit.axhline(1.0, color="#999", linestyle="--", linewidth=1)
    rel.set(xlabel="nominal coverage of the central interval", ylabel="observed coverage", title="Reliability")
    pit.set(xlabel="PIT (predictive CDF at the outcome)", ylabel="density", title="PIT histogram (flat = calibrated)")
    rel.legend(fontsize=8)
    pit.legend(fontsize=8)
    return image(figure_png(fig), "forecast reliability and PIT")


def _over_time(index: pd.DatetimeIndex, diffs: dict[str, np.ndarray], ylabel: str) -> str:
    """Rolling mean (about a month of bars) of per-bar differences model − baseline."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(11, 3))
    step = np.median(np.diff(index.asi8)) / 1e9 if len(index) > 1 else 3600.0
    window = max(int(30 * 86400 / step), 10)
    for label, d in diffs.items():
        ax.plot(index.tz_convert(None), pd.Series(d).rolling(window, min_periods=window // 2).mean().to_numpy(),
                label=label, linewidth=1)
    ax.axhline(0.0, color="#999", linewidth=1)
    ax.set(ylabel=ylabel, title="Model − baseline over time (rolling ~30 days; above 0: the model scores higher)")
    ax.legend(fontsize=8)
    return image(figure_png(fig), ylabel)


def _family_panel(card: Scorecard, name: str) -> str:
    section = card.sections[name]
    body = frame_table(pd.DataFrame(section.rows).set_index("indicator"), {}) if section.rows else \
        "<p class='missing'>No indicator of this family had values (warm-up longer than the data?).</p>"
    body += "".join(f"<p class='note'>{html.escape(n)}</p>" for n in section.notes)
    index = card.lines.index
    if name == "forecast" and section.series:
        body += _forecast_figures(section.series)
        fam = FAMILIES[name]
        diffs = {f"{m} − {b} (−CRPS)": section.series[b]["losses"]["CRPS"] - section.series[m]["losses"]["CRPS"]
                 for m in fam.models for b in fam.baselines if m in section.series and b in section.series}
        if diffs:
            body += _over_time(index, diffs, "CRPS advantage")
    if name == "density" and section.series:
        fam = FAMILIES[name]
        diffs = {f"{m} − {b}": section.series[m] - section.series[b]
                 for m in fam.models for b in fam.baselines if m in section.series and b in section.series}
        if diffs:
            body += _over_time(index, diffs, "log-likelihood per dim")
    return panel(f"{name}: {FAMILIES[name].question}", "", body)


def write_scorecard(card: Scorecard, out_dir: str | os.PathLike, title: str = "btdensity scorecard") -> dict[str, Path]:
    """Write ``scorecard.json`` and ``scorecard.html`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    paths = {"json": out / "scorecard.json", "html": out / "scorecard.html"}
    card.write_json(paths["json"])
    wf = card.config.walk_forward
    windows = {True: "every bar so far", False: f"{wf.train_bars} training bars"}.get(
        wf.expanding, f"{wf.train_bars} training bars (or every bar so far, where the indicator expands by default)")
    warm = {True: "warm-started", False: "fitted cold"}.get(wf.warm_start, "warm-started where the indicator is by "
                                                                           "default")
    intro = (f"{card.bars:,} bars, {card.start[:16]} – {card.end[:16]} UTC; walk-forward: {windows}, refit every "
             f"{wf.retrain_every}, {warm}, seed {wf.seed}; {card.runtime_s:.0f} s. " + _HOW_TO_READ)
    body = panel("Verdicts", "", _verdict_table(card)) + "".join(_family_panel(card, n) for n in card.sections)
    write_text(paths["html"], page(title, intro, body))
    return paths
