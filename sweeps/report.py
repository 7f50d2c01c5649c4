"""``write_sweep_html``: the report of a parameter sweep, one self-contained HTML file (no network).

It holds the selection-bias figures (per selection group: the selected trial's deflated Sharpe ratio, the
probability of backtest overfitting and the distribution of CSCV logits), the trials sorted by the chosen
metric, a heatmap of that metric over two parameters (the mean over everything else: data sets, seeds,
other parameters), for walk-forward optimisation the in-sample and out-of-sample figures of each fold side
by side and over all folds, and the failed trials with their errors.
"""
from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd

from btdensity.atomic import write_text

from .selection import group_label

__all__ = ["heatmap_frame", "write_sweep_html"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1200px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;font-variant-numeric:tabular-nums}
th,td{padding:.25em .6em;text-align:right;border-bottom:1px solid #eee}th{background:#f4f4f4;position:sticky;top:0}
td.l,th.l{text-align:left}.note{color:#666;font-size:.9em}.bad{color:#b00}
"""
_PERCENT = ("total_return", "cagr", "max_drawdown", "win_rate", "exposure")
_SHOWN_METRICS = ("total_return", "cagr", "sharpe", "sortino", "max_drawdown", "calmar", "n_trades",
                  "win_rate", "exposure")
_MAX_ROWS = 500
_MAX_LOGIT_PLOTS = 12
_OVERFITTING_COLUMNS = ("group", "n_trials", "trial_id", "strategy", "params", "metric", "sharpe",
                        "expected_max_sharpe", "deflated_sharpe", "pbo", "pbo_blocks", "pbo_splits", "days",
                        "skewness", "kurtosis", "out_of_sample_sharpe")


def _fmt(column: str, value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        base = column.removeprefix("benchmark_").removeprefix("in_sample_").removeprefix("out_of_sample_")
        return f"{value:+.2%}" if base in _PERCENT else f"{value:.3f}"
    return html.escape(str(value))


def _html_table(df: pd.DataFrame, left: tuple[str, ...] = ()) -> str:
    head = "".join(f'<th class="{"l" if c in left else ""}">{html.escape(str(c))}</th>' for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = "".join(f'<td class="{"l" if c in left else ""}">{_fmt(c, v)}</td>' for c, v in zip(df.columns, row))
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _png(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return f'<img alt="chart" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def heatmap_frame(table: pd.DataFrame, metric: str, x: str, y: str) -> pd.DataFrame:
    """The mean of ``metric`` over successful trials, rows ``y`` by columns ``x`` (parameter names)."""
    cols = [f"param.{x}", f"param.{y}"]
    if not set(cols) <= set(table.columns):
        return pd.DataFrame()
    ok = table[table["status"] == "ok"].dropna(subset=cols)
    return ok.pivot_table(index=cols[1], columns=cols[0], values=metric, aggfunc="mean").sort_index().sort_index(axis=1)


def _heatmap(table: pd.DataFrame, metric: str, x: str, y: str) -> str:
    from matplotlib.figure import Figure

    grid = heatmap_frame(table, metric, x, y)
    if grid.empty:
        return '<p class="note">No successful trial has both parameters as plain values.</p>'
    fig = Figure(figsize=(1.2 + 0.9 * grid.shape[1], 1.0 + 0.6 * grid.shape[0]))
    ax = fig.add_subplot()
    values = grid.to_numpy(dtype=float)
    lim = np.nanmax(np.abs(values)) or 1.0
    im = ax.imshow(values, cmap="RdYlGn", vmin=-lim, vmax=lim, aspect="auto", origin="lower")
    ax.set_xticks(range(grid.shape[1]), [str(c) for c in grid.columns])
    ax.set_yticks(range(grid.shape[0]), [str(i) for i in grid.index])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(im, ax=ax, label=metric)
    ax.set_title(f"mean {metric} by {x} and {y}")
    return _png(fig)


def _walk_forward(wf: pd.DataFrame, metric: str) -> str:
    from matplotlib.figure import Figure

    ok = wf[wf["status"] == "ok"]
    m_in, m_out = ok[f"in_sample_{metric}"].astype(float), ok[f"out_of_sample_{metric}"].astype(float)
    parts = []
    if len(ok):
        kept = f"{m_out.mean() / m_in.mean():.0%}" if m_in.mean() > 0 else "n/a (in-sample mean is not positive)"
        parts.append(f"<p>Mean {metric}: in-sample <b>{m_in.mean():.3f}</b>, out-of-sample <b>{m_out.mean():.3f}</b> "
                     f"(out-of-sample buy &amp; hold {ok[f'out_of_sample_benchmark_{metric}'].astype(float).mean():.3f}). "
                     f"Share of the in-sample edge kept out of sample: <b>{kept}</b>.</p>")
        fig = Figure(figsize=(max(4.0, 0.9 * len(ok) + 2), 3.0))
        ax = fig.add_subplot()
        pos = np.arange(len(ok))
        ax.bar(pos - 0.2, m_in, 0.4, label="in-sample", color="#1f77b4")
        ax.bar(pos + 0.2, m_out, 0.4, label="out-of-sample", color="#ff7f0e")
        ax.axhline(0, color="#444", lw=0.8)
        ax.set_xticks(pos, [f"{s} s{seed} f{f}" for s, seed, f in zip(ok["source"], ok["seed"], ok["fold"])],
                      fontsize=8)
        ax.set_ylabel(metric)
        ax.legend(fontsize=8)
        parts.append(_png(fig))
    cols = ["fold", "source", "seed", "in_sample_from", "in_sample_until", "out_of_sample_from", "out_of_sample_until",
            "strategy", "params", f"in_sample_{metric}", f"out_of_sample_{metric}"]
    cols += [c for c in wf.columns if c not in cols]
    parts.append(_html_table(wf[cols], left=("source", "strategy", "params", "status")))
    return "".join(parts)


def _logit_plots(figures: pd.DataFrame, logits: dict[str, np.ndarray]) -> str:
    from matplotlib.figure import Figure

    shown = [(row, logits[key]) for key, row in zip(logits, figures.to_dict("records")) if len(logits[key])]
    shown = shown[:_MAX_LOGIT_PLOTS]
    if not shown:
        return ""
    cols = min(3, len(shown))
    rows = -(-len(shown) // cols)
    fig = Figure(figsize=(4.0 * cols, 2.6 * rows))
    for k, (row, lam) in enumerate(shown):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.hist(lam, bins=40, color="#1f77b4", alpha=0.8)
        ax.axvline(0.0, color="#b00", lw=1.0)
        ax.set_title(f"{group_label(row)}\nPBO {row['pbo']:.2f} ({row['pbo_splits']} splits)", fontsize=8)
        ax.set_xlabel("logit of the out-of-sample rank of the in-sample best", fontsize=7)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return _png(fig)


def _overfitting(figures: pd.DataFrame, logits: dict[str, np.ndarray], metric: str) -> str:
    shown = figures.drop(columns="metric").assign(group=[group_label(r) for r in figures.to_dict("records")])
    shown = shown.rename(columns={"metric_value": metric}) if metric != "sharpe" else shown
    columns = [metric if c == "metric" else c for c in _OVERFITTING_COLUMNS]
    parts = [f'<p class="note">Per selection group (the candidates run on the same data, seed, broker terms and '
             f"fold), the trial with the best {html.escape(metric)}. <b>Deflated Sharpe</b>: the probability that its "
             "true Sharpe ratio is above 0 once the number of trials, the spread of their Sharpe ratios and the "
             "skewness and kurtosis of its daily returns are accounted for; below 0.95 its edge is not established. "
             "<b>expected_max_sharpe</b>: the Sharpe ratio the best of as many trials without any edge would show. "
             "<b>PBO</b> (probability of backtest overfitting): the share of the CSCV splits of the trials' daily "
             "returns into S blocks in which the in-sample best trial (by Sharpe) ranks at or below the median out "
             "of sample; above 0.5, picking the in-sample best does worse than picking at random.</p>",
             _html_table(shown[[c for c in dict.fromkeys(columns) if c in shown.columns]],
                         left=("group", "trial_id", "strategy", "params"))]
    high = int((shown["pbo"] > 0.5).sum())
    if high:
        parts.append(f'<p class="bad">PBO above 0.5 in {high} of {len(shown)} groups: there the in-sample winner is '
                     "more likely a product of the search than of an edge, and its figures are not expected to hold "
                     "out of sample.</p>")
    if len(logits) > _MAX_LOGIT_PLOTS:
        parts.append(f'<p class="note">Logit distributions of the first {_MAX_LOGIT_PLOTS} of {len(logits)} '
                     "groups; overfitting.csv has every group's figures.</p>")
    parts.append(_logit_plots(figures, logits))
    return "".join(parts)


def write_sweep_html(path: str | os.PathLike, table: pd.DataFrame, *, metric: str,
                     heatmap: tuple[str, str] | None = None, walk_forward: pd.DataFrame | None = None,
                     overfitting: pd.DataFrame | None = None, logits: dict[str, np.ndarray] | None = None,
                     walk_forward_overall: pd.DataFrame | None = None, title: str = "btdensity sweep") -> Path:
    """Write the sweep report for ``table`` (the rows of sweep.csv) to ``path``, sorted by ``metric``
    (higher first); ``heatmap`` names two parameters; ``walk_forward`` is the in- vs out-of-sample table and
    ``walk_forward_overall`` its figures over all folds; ``overfitting`` the selection-bias table (one row
    per selection group) with the groups' CSCV ``logits`` in the same order."""
    path = Path(path)
    if table.empty:
        raise ValueError("the sweep has no finished trial to report")
    ok = table[table["status"] == "ok"]
    if len(ok) and metric not in table.columns:
        raise ValueError(f"metric {metric!r} is not a column of the sweep table")
    ok = ok.sort_values(metric, ascending=False, kind="stable") if len(ok) else ok
    failed = table[table["status"] != "ok"]
    params = [c for c in table.columns if c.startswith("param.")]
    context = [c for c in ("stage", "fold", "source", "timeframe", "seed", "commission") if c in table.columns
               and table[c].nunique(dropna=False) > 1]
    figures = [metric] + [m for m in _SHOWN_METRICS if m != metric and m in table.columns]
    shown = ok[[c for c in ("trial_id", "strategy", *params, *context, *figures, f"benchmark_{metric}", "runtime_s")
                if c in ok.columns]]
    parts = [f"<h1>{html.escape(title)}</h1>",
             f'<p>{len(table)} trials: {len(ok)} ok, <span class="{"bad" if len(failed) else ""}">'
             f"{len(failed)} failed</span>. Sorted by <b>{html.escape(metric)}</b> (higher is better).</p>"]
    if overfitting is not None and not overfitting.empty:
        parts += ["<h2>Selection bias: deflated Sharpe ratio and probability of backtest overfitting</h2>",
                  _overfitting(overfitting, logits or {}, metric)]
    if walk_forward is not None and not walk_forward.empty:
        parts += ["<h2>Walk-forward: in-sample vs out-of-sample</h2>",
                  '<p class="note">Per fold, the parameters with the best in-sample figure, scored on the '
                  "out-of-sample block that follows.</p>", _walk_forward(walk_forward, metric)]
        if walk_forward_overall is not None and not walk_forward_overall.empty:
            parts += ['<p class="note">Over all folds: the mean in-sample Sharpe ratio of the selected parameters '
                      "and the figures of the out-of-sample blocks stitched in fold order (the walk-forward's own "
                      "track record).</p>", _html_table(walk_forward_overall, left=("source", "broker"))]
    if heatmap is not None and len(ok):
        source = ok[ok["stage"] != "out_of_sample"] if "stage" in ok else ok
        parts += [f"<h2>{html.escape(metric)} over {html.escape(heatmap[0])} and {html.escape(heatmap[1])}</h2>",
                  _heatmap(source, metric, *heatmap)]
    parts.append("<h2>Trials</h2>")
    if len(shown) > _MAX_ROWS:
        parts.append(f'<p class="note">The best {_MAX_ROWS} of {len(shown)}; sweep.csv has them all.</p>')
    parts.append(_html_table(shown.head(_MAX_ROWS), left=("trial_id", "strategy", "stage", "source")))
    if len(failed):
        parts += ["<h2>Failed trials</h2>",
                  _html_table(failed[["trial_id", "strategy", *params, "attempts", "error"]],
                              left=("trial_id", "strategy", "error"))]
    doc = (f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
           f"<style>{_CSS}</style></head><body>{''.join(parts)}</body></html>\n")
    return write_text(path, doc)
