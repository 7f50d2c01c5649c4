"""``write_diagnostics``: the model diagnostics page beside the tearsheet — one self-contained HTML file
(PNG images inline as base64, no network) with a panel per question a quant asks of the models:
where the market left the models' distribution, whether trades in typical states did better, how much of
the time the market was in distribution, whether the BNN's intervals hold what they promise, which
regime the market was in, and whether the score's direction forecast the next moves."""
from __future__ import annotations

import base64
import html
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from btdensity.atomic import write_text
from btdensity.labels import REGIME_NAMES

from .diagnostics_figures import (decile_figure, density_figure, distribution_figure, regime_figure,
                                  reliability_figure, score_figure)
from .diagnostics_stats import bnn_reliability, decile_table, diagnostic_figures, line, score_skill

__all__ = ["PANELS", "write_diagnostics"]

#: the panel headings, in page order
PANELS = ("Energy and log-density over time", "PnL and hit rate by log-density decile", "Time in distribution",
          "BNN reliability", "Regime timeline", "Score direction skill")

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1150px; margin: 2em auto;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
p.note { color: #444; margin: 0.3em 0 0.8em; } p.missing { color: #888; font-style: italic; }
img { max-width: 100%; display: block; margin: 0.5em 0; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; } th { background: #f4f4f4; }
"""


_SCORE_HEADINGS = {"direction_from": "direction from", "direction_to": "direction to", "bars": "bars",
                   "mean_forward_return": "mean forward return (bp)", "up_share": "up moves"}
_DECILE_HEADINGS = {"logp_from": "logp from", "logp_to": "logp to", "bars": "bars", "trades": "trades",
                    "pnl": "PnL after fees", "hit_rate": "hit rate", "mean_next_return": "mean next-bar return (bp)"}


def _fmt(value: object, kind: str = "num") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if kind == "pct":
        return f"{float(value):.1%}"
    if kind == "int":
        return f"{int(value):,}"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):,.4g}" if abs(float(value)) < 1e4 else f"{float(value):,.0f}"
    return html.escape(str(value))


def _key_table(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _frame_table(frame: pd.DataFrame, kinds: dict[str, str]) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in [frame.index.name or ""] + list(frame.columns))
    rows = "".join("<tr><th>" + _fmt(i) + "</th>" + "".join(f"<td>{_fmt(r[c], kinds.get(c, 'num'))}</td>"
                                                          for c in frame.columns) + "</tr>"
                   for i, r in frame.iterrows())
    return f"<table><tr>{head}</tr>{rows}</table>"


def _image(png: bytes, alt: str) -> str:
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{base64.b64encode(png).decode('ascii')}'>"


def _panel(heading: str, note: str, body: str) -> str:
    return f"<section><h2>{html.escape(heading)}</h2><p class='note'>{note}</p>{body}</section>"


def _missing(what: str) -> str:
    return (f"<p class='missing'>No {what} values in this run: the strategy has no such indicator, or its "
            "walk-forward warm-up outlasted the data.</p>")


def _density_panel(prices: pd.DataFrame, lines: pd.DataFrame, figures: dict[str, float]) -> str:
    note = ("The close price with the energy of each bar's market state (high: unusual) and its log-density "
            "(low: unusual); red spans mark bars where the log-density gate was closed, i.e. the state was rarer "
            "than the gate's alpha of the calibration sample.")
    energy, logp = line(lines, "Energy.energy"), line(lines, "LogDensity.logp")
    if energy is None and logp is None:
        return _panel(PANELS[0], note, _missing("Energy or LogDensity"))
    rows = [("bars", _fmt(len(lines), "int"))]
    if energy is not None:
        rows += [("bars with an energy", _fmt(int(energy.notna().sum()), "int")),
                 ("median energy", _fmt(float(energy.median())))]
    if logp is not None:
        rows += [("bars with a log-density", _fmt(int(logp.notna().sum()), "int")),
                 ("median log-density", _fmt(float(logp.median()))),
                 ("1 % quantile of log-density", _fmt(float(logp.quantile(0.01))))]
    if "gate_closed_share" in figures:
        rows.append(("gate closed", _fmt(figures["gate_closed_share"], "pct")))
    return _panel(PANELS[0], note, _image(density_figure(prices, lines), PANELS[0]) + _key_table(rows))


def _decile_panel(prices: pd.DataFrame, lines: pd.DataFrame, trades: pd.DataFrame) -> str:
    note = ("Each closed trade is placed in the log-density decile of the bar that decided its entry (the bar "
            "before the fill); decile edges come from all bars, so decile 1 holds the 10 % least typical market "
            "states. PnL is after fees; the right chart shows the mean next-bar return of all bars per decile.")
    table = decile_table(lines, trades, prices)
    if table is None:
        return _panel(PANELS[1], note, _missing("LogDensity"))
    extra = ""
    if table.attrs.get("unassigned"):
        extra = (f"<p class='note'>{table.attrs['unassigned']} trade(s) entered before the log-density had a "
                 "value and are in no decile.</p>")
    kinds = {"bars": "int", "trades": "int", "hit_rate": "pct"}
    shown = table.assign(mean_next_return=1e4 * table["mean_next_return"]).rename(columns=_DECILE_HEADINGS)
    kinds = {_DECILE_HEADINGS[k]: v for k, v in kinds.items()}
    return _panel(PANELS[1], note, _image(decile_figure(table), PANELS[1]) + _frame_table(shown, kinds) + extra)


def _distribution_panel(lines: pd.DataFrame, positions: pd.Series, figures: dict[str, float],
                        alpha: float | None) -> str:
    note = ("The share of bars whose state the density model considers in distribution (gate open), over a "
            "rolling window and overall; in a market like its training windows it would stay near 1 − alpha.")
    gate = line(lines, "LogDensity.gate")
    if gate is None:
        return _panel(PANELS[2], note, _missing("LogDensity"))
    held = positions.reindex(lines.index).fillna(0.0).to_numpy() != 0
    closed = gate.to_numpy() <= 0
    in_market_closed = float((closed & held).sum() / held.sum()) if held.any() else None
    rows = [("in distribution (gate open)", _fmt(figures["in_distribution_share"], "pct")),
            ("gate closed", _fmt(figures["gate_closed_share"], "pct")),
            ("expected in a stationary market (1 − alpha)", _fmt(None if alpha is None else 1 - alpha, "pct")),
            ("time in market", _fmt(figures.get("time_in_market"), "pct")),
            ("bars in market with the gate closed", _fmt(in_market_closed, "pct"))]
    return _panel(PANELS[2], note, _image(distribution_figure(lines, alpha), PANELS[2]) + _key_table(rows))


def _reliability_panel(prices: pd.DataFrame, lines: pd.DataFrame, horizon: int, level: float | None) -> str:
    note = (f"For each nominal coverage, the share of realised log returns over the next {horizon} bar(s) inside "
            "the central interval of a Gaussian with the BNN's predictive mean and std "
            "(√(epistemic² + aleatoric²)): points below the diagonal are over-confident intervals, above it "
            "too wide (a fat-tailed forecast's std overstates its core, so its inner Gaussian intervals come "
            "out wide). "
            "The square is the indicator's own (recalibrated) [lower, upper] interval at its level.")
    table, coverage = bnn_reliability(lines, prices, horizon=horizon)
    if table is None:
        return _panel(PANELS[3], note, _missing("BNNUncertainty"))
    rows = [("forecasts scored", _fmt(int(table["n"].iloc[0]), "int")), ("horizon (bars)", _fmt(horizon, "int"))]
    if level is not None:
        rows.append((f"[lower, upper] coverage (nominal {level:.0%})", _fmt(coverage, "pct")))
    shown = table.set_index("nominal").drop(columns="n").T
    shown.columns = [f"{c:.0%}" for c in shown.columns]
    shown.index = ["observed"]
    body = (_image(reliability_figure(table, coverage, level), PANELS[3]) + _key_table(rows)
            + _frame_table(shown.rename_axis("nominal"), {c: "pct" for c in shown.columns}))
    return _panel(PANELS[3], note, body)


def _regime_panel(prices: pd.DataFrame, lines: pd.DataFrame) -> str:
    note = "The close price over the Regime indicator's most probable regime at each bar."
    regime = line(lines, "Regime.regime")
    if regime is None:
        return _panel(PANELS[4], note, _missing("Regime"))
    labels = regime.dropna().astype(int)
    confidence = line(lines, "Regime.confidence")
    rows = []
    for k, name in enumerate(REGIME_NAMES):
        mask = labels == k
        conf = None if confidence is None or not mask.any() else float(confidence[mask.index[mask]].mean())
        rows.append((name, f"{_fmt(float(mask.mean()), 'pct')} of bars, mean confidence {_fmt(conf)}"))
    return _panel(PANELS[4], note, _image(regime_figure(prices, lines), PANELS[4]) + _key_table(rows))


def _score_panel(prices: pd.DataFrame, lines: pd.DataFrame, horizon: int) -> str:
    note = (f"Bars grouped by decile of ScoreDirection's direction (∂/∂r log p(r | x) at r = 0: positive when "
            f"larger returns are more probable), with the realised log return over the next {horizon} bar(s). "
            "A direction with skill has the bars rise from left to right and agrees in sign with the return on "
            "more than half of the bars.")
    table = score_skill(lines, prices, horizon=horizon)
    if table is None:
        return _panel(PANELS[5], note, _missing("ScoreDirection"))
    rows = [("bars scored", _fmt(table.attrs["n"], "int")), ("horizon (bars)", _fmt(horizon, "int")),
            ("sign agreement (0.5 = no skill)", _fmt(table.attrs["sign_agreement"], "pct")),
            ("rank correlation (information coefficient)", _fmt(table.attrs["rank_correlation"]))]
    shown = table.assign(mean_forward_return=1e4 * table["mean_forward_return"]).rename(columns=_SCORE_HEADINGS)
    body = (_image(score_figure(table, horizon), PANELS[5]) + _key_table(rows)
            + _frame_table(shown, {"bars": "int", "up moves": "pct"}))
    return _panel(PANELS[5], note, body)


def write_diagnostics(out_dir: str | os.PathLike, *, prices: pd.DataFrame, lines: pd.DataFrame,
                      trades: pd.DataFrame, positions: pd.Series, title: str, horizon: int = 1,
                      level: float | None = None, alpha: float | None = None, score_horizon: int = 1) -> Path:
    """Write ``diagnostics.html`` into ``out_dir`` and return its path.

    ``prices``: the OHLCV bars (UTC index); ``lines``: ``btdensity.runner.indicator_lines`` of the strategy (same
    bars); ``trades``: closed trades (``open`` fill time, ``pnlcomm``); ``positions``: position size per bar.
    ``horizon`` and ``level`` are the BNNUncertainty indicator's, ``alpha`` the LogDensity gate's (each
    ``None`` / default when the strategy does not have it), ``score_horizon`` the ScoreDirection's. A panel
    whose indicator is missing says so.
    """
    figures = diagnostic_figures(lines, positions, prices, horizon=horizon, level=level, score_horizon=score_horizon)
    sections = [_density_panel(prices, lines, figures), _decile_panel(prices, lines, trades),
                _distribution_panel(lines, positions, figures, alpha),
                _reliability_panel(prices, lines, horizon, level), _regime_panel(prices, lines),
                _score_panel(prices, lines, score_horizon)]
    span = f"{lines.index[0]:%Y-%m-%d %H:%M} – {lines.index[-1]:%Y-%m-%d %H:%M} UTC" if len(lines) else "no bars"
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)} — model diagnostics</title><style>{_STYLE}</style></head><body>"
            f"<h1>{html.escape(title)} — model diagnostics</h1>"
            f"<p class='note'>{len(lines):,} bars, {span}; {len(trades):,} closed trades.</p>"
            + "".join(sections) + "</body></html>\n")
    return write_text(Path(out_dir) / "diagnostics.html", page)
