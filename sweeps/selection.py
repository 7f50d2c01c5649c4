"""Selection-bias figures of a finished sweep, from the trials' stored returns (no trial is run again).

A *selection group* is the set of trials that compete for selection: the candidates run on the same data,
seed, broker terms and (walk-forward) fold, so with the same return dates. Per group, the selected trial
(best by the sweep's metric) gets its deflated Sharpe ratio and the group its probability of backtest
overfitting (see :mod:`btdensity.sweeps.overfitting`).

Frequency: daily compounded returns (:func:`btdensity.runner.metrics.daily_returns`), the series whose
Sharpe ratio the suite reports as ``sharpe`` and the sweep selects on. Sharpe ratios enter the formulas per
day; the table shows them annualised (times √periods per year) like ``sharpe``.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from btdensity.runner.metrics import daily_returns, performance, periods_per_year

from .overfitting import (deflated_sharpe_ratio, expected_max_sharpe, probability_of_backtest_overfitting,
                          return_moments, sharpe_ratios)
from .returns import daily_matrix, read_returns

__all__ = ["SelectionGroup", "group_label", "overfitting_table", "summary_lines", "walk_forward_overall"]


@dataclass(frozen=True)
class SelectionGroup:
    """One selection group: what it shares (``context``: stage, fold, source, ..., seed, broker), its
    successful trials and the ``selected`` trial's id (the best by the sweep's metric)."""

    key: str
    context: Mapping[str, Any]
    trial_ids: Sequence[str]
    selected: str
    extra: Mapping[str, Any] = field(default_factory=dict)   # columns passed through (strategy, params, ...)


def group_label(context: Mapping[str, Any]) -> str:
    """A short name of a selection group for titles and the CLI (source, timeframe, seed, broker, fold)."""
    parts = [str(context.get("source")), context.get("timeframe") or "", f"seed {context.get('seed')}"]
    broker = json.loads(context.get("broker") or "{}")
    parts += [f"{k} {v}" for k, v in broker.items()]
    if context.get("fold") is not None and not (isinstance(context["fold"], float) and math.isnan(context["fold"])):
        parts.append(f"fold {int(context['fold'])}")
    return " ".join(p for p in parts if p)


def _figures(days: pd.DataFrame, periods: int, selected: str) -> tuple[dict[str, Any], np.ndarray]:
    """DSR of ``selected`` among the columns of ``days`` and the columns' PBO; Sharpe ratios annualised."""
    r = days.to_numpy(dtype=float)
    n_days, n_trials = r.shape
    srs = sharpe_ratios(r)
    col = list(days.columns).index(selected)
    skew, kurt = return_moments(r[:, col])
    var = float(np.var(srs, ddof=1)) if n_trials > 1 else 0.0
    pbo = probability_of_backtest_overfitting(r)
    scale = math.sqrt(periods)
    return {"n_trials": n_trials, "days": n_days, "sharpe": srs[col] * scale,
            "sharpe_std": math.sqrt(var) * scale, "expected_max_sharpe": expected_max_sharpe(n_trials, var) * scale,
            "skewness": skew, "kurtosis": kurt,
            "deflated_sharpe": deflated_sharpe_ratio(float(srs[col]), var, n_trials, n_days, skew, kurt),
            "pbo": pbo.pbo, "pbo_blocks": pbo.n_blocks, "pbo_splits": pbo.n_splits,
            "logit_median": float(np.median(pbo.logits)) if pbo.n_splits else math.nan}, pbo.logits


def overfitting_table(groups: Sequence[SelectionGroup], folder: str | os.PathLike
                      ) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """One row per selection group: its context, the selected trial and its figures (``deflated_sharpe``,
    ``pbo`` and what they are made of); and each group's CSCV logits (by group key) for the report."""
    rows, logits = [], {}
    for g in groups:
        days, periods = daily_matrix(folder, g.trial_ids)
        figures, logits[g.key] = _figures(days, periods, g.selected)
        rows.append({**g.context, "trial_id": g.selected, **g.extra, **figures})
    return pd.DataFrame(rows), logits


def walk_forward_overall(chains: Mapping[str, Sequence[str]], in_sample_sharpe: Mapping[str, float],
                         context: Mapping[str, Mapping[str, Any]], folder: str | os.PathLike) -> pd.DataFrame:
    """Per walk-forward chain (data, seed, broker): the mean in-sample Sharpe of the folds' selected trials and
    the figures of the out-of-sample blocks stitched in fold order (``chains``: out-of-sample trial ids)."""
    rows = []
    for key, ids in chains.items():
        bars = pd.concat([read_returns(folder, tid) for tid in ids]).astype(float)
        values = np.cumprod(1.0 + bars)
        figures = performance(values, 1.0, periods_per_year(values.index))
        rows.append({**context[key], "folds": len(ids), "in_sample_sharpe": in_sample_sharpe[key],
                     "out_of_sample_from": bars.index[0].isoformat(), "out_of_sample_until": bars.index[-1].isoformat(),
                     "out_of_sample_days": len(daily_returns(values, 1.0)),
                     **{f"out_of_sample_{k}": figures[k] for k in ("sharpe", "total_return", "max_drawdown")}})
    return pd.DataFrame(rows)


def _num(value: Any, fmt: str) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, fmt)


def summary_lines(overfitting: pd.DataFrame | None, overall: pd.DataFrame | None = None, limit: int = 12) -> list[str]:
    """The CLI's account of the selection (``overfitting`` and ``overall`` as :class:`SweepResult` has them):
    per group the selected trial, its Sharpe ratio, DSR and the PBO; for walk-forward optimisation the
    out-of-sample Sharpe per fold and overall."""
    lines: list[str] = []
    if overfitting is None or overfitting.empty:
        return lines
    metric = overfitting["metric"].iloc[0]
    lines.append(f"selected trial per group (best {metric}); deflated Sharpe = P(true Sharpe > 0) after the "
                 "number of trials; PBO = P(the in-sample best is below the median out of sample):")
    for row in overfitting.head(limit).itertuples():
        context = row._asdict()
        text = (f"  {group_label(context)}: {row.trial_id} of {row.n_trials} trials, sharpe {_num(row.sharpe, '.2f')}"
                f" (noise best ~{_num(row.expected_max_sharpe, '.2f')}), deflated Sharpe "
                f"{_num(row.deflated_sharpe, '.2f')}, PBO {_num(row.pbo, '.2f')}"
                + (f" (S={row.pbo_blocks})" if row.pbo_splits else f" (too few days: {row.days})"))
        if "out_of_sample_sharpe" in context:
            text += f"; out-of-sample sharpe {_num(context['out_of_sample_sharpe'], '.2f')}"
        lines.append(text)
    if len(overfitting) > limit:
        lines.append(f"  ... {len(overfitting) - limit} more groups in overfitting.csv")
    if overall is not None:
        for row in overall.itertuples():
            lines.append(f"  walk-forward {group_label(row._asdict())}: in-sample sharpe "
                         f"{_num(row.in_sample_sharpe, '.2f')} (mean of {row.folds} folds), out-of-sample "
                         f"{_num(row.out_of_sample_sharpe, '.2f')} (the out-of-sample blocks stitched)")
    if (overfitting["pbo"] > 0.5).any():
        lines.append("  PBO above 0.5: the selection picked noise more often than skill; do not trust the best "
                     "trial's figures (see README, Parameter sweeps).")
    return lines
