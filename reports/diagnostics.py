"""``write_diagnostics``: the model diagnostics page beside the tearsheet — one self-contained HTML file
(PNG images inline as base64, no network) with a panel per question a quant asks of the models:
where the market left the models' distribution, whether trades in typical states did better, how much of
the time the market was in distribution, whether the BNN's intervals hold what they promise, which
regime the market was in, whether the score's direction forecast the next moves, and, on data with ground-truth
anomalies (the synthetic market's ``anomaly`` column), how well each energy and density line detected them."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from btdensity.atomic import write_text
from btdensity.labels import REGIME_NAMES

from .diagnostics_figures import (decile_figure, density_figure, distribution_figure, regime_figure,
                                  reliability_figure, score_figure)
from .html import fmt, frame_table, image, key_table, page, panel
from .diagnostics_stats import (anomaly_detection, anomaly_truth, bnn_reliability, decile_table, diagnostic_figures,
                                line, score_skill)

__all__ = ["PANELS", "write_diagnostics"]

#: the panel headings, in page order
PANELS = ("Energy and log-density over time", "PnL and hit rate by log-density decile", "Time in distribution",
          "BNN reliability", "Regime timeline", "Score direction skill", "Anomaly detection",
          "Does the model beat its baseline?")

_SCORE_HEADINGS = {"direction_from": "direction from", "direction_to": "direction to", "bars": "bars",
                   "mean_forward_return": "mean forward return (bp)", "up_share": "up moves"}
_ANOMALY_HEADINGS = {"score": "score", "bars": "bars", "anomaly_bars": "anomaly bars (K)", "auroc": "AUROC",
                     "precision_at_k": "precision@K", "windows": "anomaly windows", "detected_share": "detected",
                     "median_latency": "median latency (bars)", "mean_latency": "mean latency (bars)",
                     "false_alarm_rate": "false alarms"}
_DECILE_HEADINGS = {"logp_from": "logp from", "logp_to": "logp to", "bars": "bars", "trades": "trades",
                    "pnl": "PnL after fees", "hit_rate": "hit rate", "mean_next_return": "mean next-bar return (bp)"}


def _missing(what: str) -> str:
    return (f"<p class='missing'>No {what} values in this run: the strategy has no such indicator, or its "
            "walk-forward warm-up outlasted the data.</p>")


def _density_panel(prices: pd.DataFrame, lines: pd.DataFrame, figures: dict[str, float]) -> str:
    note = ("The close price with the energy of each bar's market state (high: unusual) and its log-density "
            "(low: unusual); red spans mark bars where the log-density gate was closed, i.e. the state was rarer "
            "than the gate's alpha of the calibration sample.")
    energy, logp = line(lines, "Energy.energy"), line(lines, "LogDensity.logp")
    if energy is None and logp is None:
        return panel(PANELS[0], note, _missing("Energy or LogDensity"))
    rows = [("bars", fmt(len(lines), "int"))]
    if energy is not None:
        rows += [("bars with an energy", fmt(int(energy.notna().sum()), "int")),
                 ("median energy", fmt(float(energy.median())))]
    if logp is not None:
        rows += [("bars with a log-density", fmt(int(logp.notna().sum()), "int")),
                 ("median log-density", fmt(float(logp.median()))),
                 ("1 % quantile of log-density", fmt(float(logp.quantile(0.01))))]
    if "gate_closed_share" in figures:
        rows.append(("gate closed", fmt(figures["gate_closed_share"], "pct")))
    return panel(PANELS[0], note, image(density_figure(prices, lines), PANELS[0]) + key_table(rows))


def _decile_panel(prices: pd.DataFrame, lines: pd.DataFrame, trades: pd.DataFrame) -> str:
    note = ("Each closed trade is placed in the log-density decile of the bar that decided its entry (the bar "
            "before the fill); decile edges come from all bars, so decile 1 holds the 10 % least typical market "
            "states. PnL is after fees; the right chart shows the mean next-bar return of all bars per decile.")
    table = decile_table(lines, trades, prices)
    if table is None:
        return panel(PANELS[1], note, _missing("LogDensity"))
    extra = ""
    if table.attrs.get("unassigned"):
        extra = (f"<p class='note'>{table.attrs['unassigned']} trade(s) entered before the log-density had a "
                 "value and are in no decile.</p>")
    kinds = {"bars": "int", "trades": "int", "hit_rate": "pct"}
    shown = table.assign(mean_next_return=1e4 * table["mean_next_return"]).rename(columns=_DECILE_HEADINGS)
    kinds = {_DECILE_HEADINGS[k]: v for k, v in kinds.items()}
    return panel(PANELS[1], note, image(decile_figure(table), PANELS[1]) + frame_table(shown, kinds) + extra)


def _distribution_panel(lines: pd.DataFrame, positions: pd.Series, figures: dict[str, float],
                        alpha: float | None) -> str:
    note = ("The share of bars whose state the density model considers in distribution (gate open), over a "
            "rolling window and overall; in a market like its training windows it would stay near 1 − alpha.")
    gate = line(lines, "LogDensity.gate")
    if gate is None:
        return panel(PANELS[2], note, _missing("LogDensity"))
    held = positions.reindex(lines.index).fillna(0.0).to_numpy() != 0
    closed = gate.to_numpy() <= 0
    in_market_closed = float((closed & held).sum() / held.sum()) if held.any() else None
    rows = [("in distribution (gate open)", fmt(figures["in_distribution_share"], "pct")),
            ("gate closed", fmt(figures["gate_closed_share"], "pct")),
            ("expected in a stationary market (1 − alpha)", fmt(None if alpha is None else 1 - alpha, "pct")),
            ("time in market", fmt(figures.get("time_in_market"), "pct")),
            ("bars in market with the gate closed", fmt(in_market_closed, "pct"))]
    return panel(PANELS[2], note, image(distribution_figure(lines, alpha), PANELS[2]) + key_table(rows))


def _reliability_panel(prices: pd.DataFrame, lines: pd.DataFrame, horizon: int, level: float | None) -> str:
    note = (f"For each nominal coverage, the share of realised log returns over the next {horizon} bar(s) inside "
            "the central interval of a Gaussian with the BNN's predictive mean and std "
            "(√(epistemic² + aleatoric²)): points below the diagonal are over-confident intervals, above it "
            "too wide (a fat-tailed forecast's std overstates its core, so its inner Gaussian intervals come "
            "out wide). "
            "The square is the indicator's own (recalibrated) [lower, upper] interval at its level.")
    table, coverage = bnn_reliability(lines, prices, horizon=horizon)
    if table is None:
        return panel(PANELS[3], note, _missing("BNNUncertainty"))
    rows = [("forecasts scored", fmt(int(table["n"].iloc[0]), "int")), ("horizon (bars)", fmt(horizon, "int"))]
    if level is not None:
        rows.append((f"[lower, upper] coverage (nominal {level:.0%})", fmt(coverage, "pct")))
    shown = table.set_index("nominal").drop(columns="n").T
    shown.columns = [f"{c:.0%}" for c in shown.columns]
    shown.index = ["observed"]
    body = (image(reliability_figure(table, coverage, level), PANELS[3]) + key_table(rows)
            + frame_table(shown.rename_axis("nominal"), {c: "pct" for c in shown.columns}))
    return panel(PANELS[3], note, body)


def _horizon_panel(prices: pd.DataFrame, lines: pd.DataFrame, n_fans: int = 3) -> str:
    """Forecast fans of a multi-horizon indicator (``BNNHorizons``: lines ``mean_h<h>``, ``lower_h<h>``,
    ``upper_h<h>``) at ``n_fans`` bars evenly spread over the bars it has values for, and the share of bars each
    horizon's interval held the realised return; no panel (``""``) when the run has no such lines."""
    import re

    import numpy as np

    from btdensity.labels import forward_log_returns

    from .diagnostics_figures import horizon_fan_figure

    heading = "Multi-horizon forecast fans"
    found: dict[str, list[int]] = {}
    for column in lines.columns:
        match = re.fullmatch(r"(.+)\.mean_h(\d+)", str(column))
        if match and all(f"{match[1]}.{s}_h{match[2]}" in lines.columns for s in ("lower", "upper")):
            found.setdefault(match[1], []).append(int(match[2]))
    if not found:
        return ""
    prefix, horizons = next(iter(found.items()))
    horizons = sorted(horizons)
    note = (f"{prefix}'s forecasts of the log return over {', '.join(map(str, horizons))} bars, at {n_fans} bars "
            "evenly spread over the bars it has values for: the band joins each horizon's central interval [lower, "
            "upper] (the mean is the line), drawn as prices from the close of the forecast bar; the red line is "
            "the close that followed. The table counts, over every bar, how often the realised return over each "
            "horizon fell inside its interval (to compare with the indicator's level).")
    values = {(h, s): line(lines, f"{prefix}.{s}_h{h}") for h in horizons for s in ("mean", "lower", "upper")}
    if any(v is None for v in values.values()):
        return panel(heading, note, _missing(prefix))
    arrays = {key: v.to_numpy() for key, v in values.items()}
    close = prices["close"].reindex(lines.index)
    valid = np.logical_and.reduce([np.isfinite(a) for a in arrays.values()])
    n, reach = len(lines), horizons[-1]
    bars = np.flatnonzero(valid & (np.arange(n) + reach < n))     # the realised path is complete
    bars = bars if bars.size else np.flatnonzero(valid)
    picks = bars[np.unique(np.linspace(0, bars.size - 1, n_fans).round().astype(int))]
    fans = {lines.index[i]: pd.DataFrame({s: [arrays[h, s][i] for h in horizons] for s in ("mean", "lower", "upper")},
                                         index=pd.Index(horizons, name="horizon")) for i in picks}
    rows = []
    for h in horizons:
        realised = forward_log_returns(close.to_numpy(dtype=np.float64), h)
        lower, upper = arrays[h, "lower"], arrays[h, "upper"]
        ok = np.isfinite(realised) & np.isfinite(lower) & np.isfinite(upper)
        inside = float(((realised[ok] >= lower[ok]) & (realised[ok] <= upper[ok])).mean()) if ok.any() else None
        rows.append({"horizon (bars)": h, "bars scored": int(ok.sum()), "inside [lower, upper]": inside,
                     "mean width (bp)": float(1e4 * np.mean(upper[ok] - lower[ok])) if ok.any() else None})
    table = pd.DataFrame(rows).set_index("horizon (bars)")
    body = (image(horizon_fan_figure(prices.reindex(lines.index), fans), heading)
            + frame_table(table, {"bars scored": "int", "inside [lower, upper]": "pct"}))
    return panel(heading, note, body)


def _regime_panel(prices: pd.DataFrame, lines: pd.DataFrame) -> str:
    note = "The close price over the Regime indicator's most probable regime at each bar."
    regime = line(lines, "Regime.regime")
    if regime is None:
        return panel(PANELS[4], note, _missing("Regime"))
    labels = regime.dropna().astype(int)
    confidence = line(lines, "Regime.confidence")
    rows = []
    for k, name in enumerate(REGIME_NAMES):
        mask = labels == k
        conf = None if confidence is None or not mask.any() else float(confidence[mask.index[mask]].mean())
        rows.append((name, f"{fmt(float(mask.mean()), 'pct')} of bars, mean confidence {fmt(conf)}"))
    return panel(PANELS[4], note, image(regime_figure(prices, lines), PANELS[4]) + key_table(rows))


def _score_panel(prices: pd.DataFrame, lines: pd.DataFrame, horizon: int) -> str:
    note = (f"Bars grouped by decile of ScoreDirection's direction (∂/∂r log p(r | x) at r = 0: positive when "
            f"larger returns are more probable), with the realised log return over the next {horizon} bar(s). "
            "A direction with skill has the bars rise from left to right and agrees in sign with the return on "
            "more than half of the bars.")
    table = score_skill(lines, prices, horizon=horizon)
    if table is None:
        return panel(PANELS[5], note, _missing("ScoreDirection"))
    rows = [("bars scored", fmt(table.attrs["n"], "int")), ("horizon (bars)", fmt(horizon, "int")),
            ("sign agreement (0.5 = no skill)", fmt(table.attrs["sign_agreement"], "pct")),
            ("rank correlation (information coefficient)", fmt(table.attrs["rank_correlation"]))]
    shown = table.assign(mean_forward_return=1e4 * table["mean_forward_return"]).rename(columns=_SCORE_HEADINGS)
    body = (image(score_figure(table, horizon), PANELS[5]) + key_table(rows)
            + frame_table(shown, {"bars": "int", "up moves": "pct"}))
    return panel(PANELS[5], note, body)


def _anomaly_panel(prices: pd.DataFrame, lines: pd.DataFrame) -> str:
    heading = PANELS[6]
    note = ("How well each energy and density line, oriented so that high means unusual, picks out the data's "
            "ground-truth anomaly bars: AUROC (0.5 = chance), precision@K (the share of true anomalies among the K "
            "highest scores, K = the anomaly bars the line has a value on; compare with their share of all bars) "
            "and the detection latency, in bars from an anomaly's start to the first alarm inside it, of the alarm "
            "'the score reaches the precision@K cut' (for a gate: the closed gate); latencies are over the "
            "anomalies detected.")
    truth = anomaly_truth(prices, lines.index)
    if truth is None:
        return panel(heading, note, "<p class='missing'>No ground-truth anomalies in this run's data (the synthetic "
                                    "market's <code>anomaly</code> column): nothing to score.</p>")
    table = anomaly_detection(lines, truth)
    if table is None:
        return panel(heading, note, _missing("energy or density"))
    base = float(np.nanmean(truth))
    kinds = {"bars": "int", "anomaly bars (K)": "int", "anomaly windows": "int", "detected": "pct",
             "false alarms": "pct"}
    rows = [("anomaly bars", fmt(int(np.nansum(truth)), "int")),
            ("share of bars (precision by chance)", fmt(base, "pct"))]
    return panel(heading, note, key_table(rows) + frame_table(table.rename(columns=_ANOMALY_HEADINGS), kinds))


def _evidence_panel(out_dir: Path, lines: pd.DataFrame) -> str:
    """The scorecard's verdicts on the indicators of this run, when ``scorecard.json`` is in the same folder;
    otherwise the command that makes it."""
    used = {str(c).split(".", 1)[0] for c in lines.columns}
    path = out_dir / "scorecard.json"
    note = ("Each deep model against the classical tool a quant would use instead, out of sample on this data "
            "(from <code>scorecard.json</code> in this folder).")
    if not path.exists():
        how = ("No scorecard in this folder. To see whether these models beat their classical baselines on this "
               "data, run <code>python run_backtest.py score --data &lt;the same data&gt; --out &lt;this folder&gt;"
               "</code> (the same --since/--until/--timeframe/--train-bars), then this report again.")
        return panel(PANELS[7], "", f"<p class='missing'>{how}</p>")
    rows = [c for c in json.loads(path.read_text(encoding="utf-8")).get("comparisons", []) if c["model"] in used]
    if not rows:
        return panel(PANELS[7], note, "<p class='missing'>The scorecard in this folder scores none of this "
                                      "strategy's indicators.</p>")
    frame = pd.DataFrame(rows)[["model", "baseline", "metric", "model_value", "baseline_value", "diff", "verdict"]]
    return panel(PANELS[7], note, frame_table(frame.set_index("model"), {}))


def write_diagnostics(out_dir: str | os.PathLike, *, prices: pd.DataFrame, lines: pd.DataFrame,
                      trades: pd.DataFrame, positions: pd.Series, title: str, horizon: int = 1,
                      level: float | None = None, alpha: float | None = None, score_horizon: int = 1) -> Path:
    """Write ``diagnostics.html`` into ``out_dir`` and return its path.

    ``prices``: the OHLCV bars (UTC index); ``lines``: ``btdensity.runner.indicator_lines`` of the strategy (same
    bars); ``trades``: closed trades (``open`` fill time, ``pnlcomm``); ``positions``: position size per bar.
    ``horizon`` and ``level`` are the BNNUncertainty indicator's, ``alpha`` the LogDensity gate's (each
    ``None`` / default when the strategy does not have it), ``score_horizon`` the ScoreDirection's. A panel
    whose indicator is missing says so. An ``anomaly`` column in ``prices`` (the synthetic market's ground truth)
    adds the anomaly detection scores; without it that panel says there is nothing to score.
    """
    figures = diagnostic_figures(lines, positions, prices, horizon=horizon, level=level, score_horizon=score_horizon)
    sections = [_density_panel(prices, lines, figures), _decile_panel(prices, lines, trades),
                _distribution_panel(lines, positions, figures, alpha),
                _reliability_panel(prices, lines, horizon, level), _horizon_panel(prices, lines),
                _regime_panel(prices, lines), _score_panel(prices, lines, score_horizon), _anomaly_panel(prices, lines),
                _evidence_panel(Path(out_dir), lines)]
    span = f"{lines.index[0]:%Y-%m-%d %H:%M} – {lines.index[-1]:%Y-%m-%d %H:%M} UTC" if len(lines) else "no bars"
    doc = page(f"{title} — model diagnostics", f"{len(lines):,} bars, {span}; {len(trades):,} closed trades.",
               "".join(sections))
    return write_text(Path(out_dir) / "diagnostics.html", doc)
