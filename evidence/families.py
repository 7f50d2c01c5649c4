"""The scorecard's families other than forecasts — densities, gates and energies, direction, regimes — each scored
from the indicator lines of one run (columns ``<Indicator>.<line>``, one row a bar, NaN before an indicator's first
fit) and the close prices, out of sample: a line's value at bar t comes from a model fitted on bars before t.

Each function returns a :class:`Section`: per-indicator figures (``rows``) and the model-against-baseline
comparisons (:class:`~btdensity.evidence.compare.Comparison`) on the bars both serve."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from btdensity.labels import REGIME_NAMES, forward_log_returns

from .compare import Comparison, compare_means, compare_statistic, unavailable
from .detection import anomaly_windows, auroc, detection_latency, precision_at_k, top_share_labels
from .direction import rank_ic, sign_agreement
from .regime import accuracy, log_loss
from .rows import InsufficientData
from .scoring import log_likelihood_per_dim

__all__ = ["Section", "column", "score_densities", "score_directions", "score_gates", "score_regimes"]


@dataclass
class Section:
    """One family's figures: ``rows`` a mapping per indicator, ``comparisons``, ``notes`` for the page, and
    ``series`` the per-bar data its figures draw."""

    family: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    series: dict[str, Any] = field(default_factory=dict)


def column(lines: pd.DataFrame, name: str) -> np.ndarray | None:
    """The line ``name`` as float64 (non-finite values as NaN), or None when the run has no such line or it has
    no value at all."""
    if name not in lines.columns:
        return None
    values = pd.to_numeric(lines[name], errors="coerce").to_numpy(dtype=np.float64, copy=True)
    values[~np.isfinite(values)] = np.nan
    return values if np.isfinite(values).any() else None


def _pairs(models: Sequence[str], baselines: Sequence[str]) -> list[tuple[str, str]]:
    return [(m, b) for m in models for b in baselines]


# ---------------------------------------------------------------------------------------------------- densities
def score_densities(lines: pd.DataFrame, n_dims: int, models: Sequence[str], baselines: Sequence[str],
                    seed: int = 0) -> Section:
    """Mean and median out-of-sample log-likelihood per dimension of each density's ``logp`` (exact log densities
    of the feature vector in its raw units), and each model against each baseline on their common bars."""
    section = Section("density")
    per_dim = {}
    for name in (*models, *baselines):
        logp = column(lines, f"{name}.logp")
        if logp is None:
            continue
        per_dim[name] = logp / n_dims
        ll = log_likelihood_per_dim(logp, n_dims)
        section.rows.append({"indicator": name, "mean_loglik_per_dim": ll.mean, "median_loglik_per_dim": ll.median,
                             "bars": ll.n})
    for model, base in _pairs(models, baselines):
        metric = "log-likelihood per dim"
        if model not in per_dim or base not in per_dim:
            section.comparisons.append(unavailable("density", metric, model, base, True, "no values"))
            continue
        section.comparisons.append(compare_means("density", metric, model, base, per_dim[model], per_dim[base],
                                                 higher_is_better=True, seed=seed))
    section.series = per_dim
    return section


# ---------------------------------------------------------------------------------------------------- gates
def score_gates(lines: pd.DataFrame, close: np.ndarray, scores: dict[str, np.ndarray], closed: dict[str, np.ndarray],
                models: Sequence[str], baselines: Sequence[str], horizon: int = 24,
                shares: Sequence[float] = (0.01, 0.05), alpha: float = 0.05, anomaly: np.ndarray | None = None,
                seed: int = 0) -> Section:
    """How well each score (high = unusual state) ranks the bars whose next ``horizon`` bars' absolute log return
    is in its top ``share``: AUROC and precision@K (K = the number of such bars), on the bars where every score
    has a value (the event's top share is taken over those bars); each model's AUROC against each baseline's.
    For the gates (``closed``: 1 where a gate is closed): the share of bars closed against ``alpha`` (outside the
    anomaly windows too, when ``anomaly`` marks them), and the detection latency of each anomaly window."""
    section = Section("gate")
    target = np.abs(forward_log_returns(close, horizon))
    names = [n for n in (*models, *baselines) if n in scores]
    common = np.isfinite(target) & np.all([np.isfinite(scores[n]) for n in names], axis=0) if names else None
    for share in shares:
        if common is None or common.sum() < 50:
            section.notes.append(f"top {share:.0%}: too few bars where every score has a value")
            continue
        events = top_share_labels(np.where(common, target, np.nan), share)[common] == 1.0
        k = int(events.sum())
        s = {n: scores[n][common] for n in names}
        for n in names:
            section.rows.append({"indicator": n, "event": f"top {share:.0%} of |{horizon}-bar return|",
                                 "auroc": auroc(s[n], events), "precision_at_k": precision_at_k(s[n], events, k),
                                 "k": k, "bars": int(common.sum())})
        for model, base in _pairs(models, baselines):
            metric = f"AUROC, top {share:.0%} of |{horizon}-bar return|"
            if model not in s or base not in s:
                section.comparisons.append(unavailable("gate", metric, model, base, True, "no values"))
                continue

            def both(idx: np.ndarray, a: np.ndarray = s[model], b: np.ndarray = s[base]) -> tuple[float, float]:
                ev = events[idx]
                if ev.all() or not ev.any():
                    return float("nan"), float("nan")
                return auroc(a[idx], ev), auroc(b[idx], ev)

            section.comparisons.append(compare_statistic("gate", metric, model, base, int(common.sum()), both,
                                                         higher_is_better=True, seed=seed))
    windows = anomaly_windows(anomaly) if anomaly is not None and np.any(anomaly) else []
    for name, gate_closed in closed.items():
        valid = np.isfinite(gate_closed)
        if not valid.any():
            continue
        row = {"indicator": name, "closed_share": float(np.nanmean(gate_closed)), "alpha": alpha,
               "bars": int(valid.sum())}
        if anomaly is not None:
            calm = valid & ~np.asarray(anomaly, dtype=bool)
            row["closed_share_outside_anomalies"] = float(gate_closed[calm].mean()) if calm.any() else None
        if windows:
            try:
                found = detection_latency(np.where(valid, gate_closed, np.nan), windows)
                row.update(detected_share=found.detected_share, median_latency=found.median_latency,
                           false_alarm_rate=found.false_alarm_rate, windows=found.n_scored)
            except (InsufficientData, ValueError) as exc:
                row["detection"] = str(exc)
        section.rows.append(row)
    return section


# ---------------------------------------------------------------------------------------------------- direction
def _rank_products(direction: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Per bar, the product of the standardised ranks of the forecast and of the outcome: their mean over the bars
    is Spearman's rank correlation (the IC), so two forecasts' ICs compare as means."""
    keep = np.isfinite(direction) & np.isfinite(forward)
    out = np.full(direction.shape, np.nan)
    if keep.sum() > 2:
        ra, rb = stats.rankdata(direction[keep]), stats.rankdata(forward[keep])
        out[keep] = ((ra - ra.mean()) / ra.std()) * ((rb - rb.mean()) / rb.std())
    return out


def score_directions(lines: pd.DataFrame, close: np.ndarray, models: Sequence[str], baselines: Sequence[str],
                     horizon: int = 1, seed: int = 0) -> Section:
    """Sign agreement and rank IC (Newey–West standard error) of each ``direction`` line with the next
    ``horizon`` bars' log return, and each model's IC against each baseline's on their common bars."""
    section = Section("direction")
    forward = forward_log_returns(close, horizon)
    values = {n: column(lines, f"{n}.direction") for n in (*models, *baselines)}
    values = {n: v for n, v in values.items() if v is not None}
    for name, direction in values.items():
        try:
            ic = rank_ic(direction, forward)
            section.rows.append({"indicator": name, "sign_agreement": sign_agreement(direction, forward),
                                 "rank_ic": ic.ic, "ic_se": ic.se, "ic_t": ic.t, "bars": ic.n})
        except (InsufficientData, ValueError) as exc:
            section.notes.append(f"{name}: {exc}")
    for model, base in _pairs(models, baselines):
        if model not in values or base not in values:
            section.comparisons.append(unavailable("direction", "rank IC", model, base, True, "no values"))
            continue
        both = np.isfinite(values[model]) & np.isfinite(values[base])
        a = _rank_products(np.where(both, values[model], np.nan), forward)
        b = _rank_products(np.where(both, values[base], np.nan), forward)
        section.comparisons.append(compare_means("direction", "rank IC", model, base, a, b, True, seed=seed))
    return section


# ---------------------------------------------------------------------------------------------------- regimes
def true_regimes(close: np.ndarray, horizon: int, train_bars: int, step: int = 24) -> np.ndarray:
    """The regime each bar turned out to be in (DESIGN's rule on its next ``horizon`` bars), with the thresholds
    of the ``train_bars`` bars whose labels were known before it (as the indicators' training windows have them;
    recomputed every ``step`` bars); NaN where the future or the history is not there."""
    from btdensity.indicators.regime import forward_rows, label_regimes, regime_thresholds

    rows = forward_rows(close, horizon)
    out = np.full(close.shape[0], np.nan)
    for start in range(train_bars + horizon + 1, close.shape[0], step):
        known = rows[start - horizon - 1 - train_bars:start - horizon - 1]
        part = rows[start:start + step]
        ok = np.isfinite(part).all(axis=1)
        if ok.any():
            out[start:start + step][ok] = label_regimes(part[ok], *regime_thresholds(known))
    return out


def score_regimes(lines: pd.DataFrame, close: np.ndarray, models: Sequence[str], baselines: Sequence[str],
                  horizon: int, train_bars: int, seed: int = 0) -> Section:
    """Accuracy and log loss of each regime indicator's class probabilities (lines ``p_<regime>``) against the
    regime each bar turned out to be in (:func:`true_regimes`), and each model against each baseline."""
    section = Section("regime")
    truth = true_regimes(close, horizon, train_bars)
    probs: dict[str, np.ndarray] = {}
    for name in (*models, *baselines):
        cols = [column(lines, f"{name}.p_{r}") for r in REGIME_NAMES]
        if any(c is None for c in cols):
            continue
        probs[name] = np.column_stack(cols)
        ok = np.isfinite(probs[name]).all(axis=1) & np.isfinite(truth)
        if ok.sum() < 2:
            continue
        labels = truth[ok].astype(int)
        section.rows.append({"indicator": name, "accuracy": accuracy(probs[name][ok].argmax(axis=1), labels),
                             "log_loss": log_loss(probs[name][ok], labels), "bars": int(ok.sum())})
    for model, base in _pairs(models, baselines):
        if model not in probs or base not in probs:
            for metric, hib in (("log loss", False), ("accuracy", True)):
                section.comparisons.append(unavailable("regime", metric, model, base, hib, "no values"))
            continue
        ok = (np.isfinite(probs[model]).all(axis=1) & np.isfinite(probs[base]).all(axis=1) & np.isfinite(truth))
        labels = np.where(ok, truth, 0).astype(int)
        for metric, hib in (("log loss", False), ("accuracy", True)):
            per_bar = {}
            for n in (model, base):
                if metric == "log loss":
                    p = np.clip(probs[n][np.arange(len(labels)), labels], 1e-12, 1.0)
                    per_bar[n] = np.where(ok, -np.log(p), np.nan)
                else:
                    per_bar[n] = np.where(ok, (probs[n].argmax(axis=1) == labels).astype(float), np.nan)
            section.comparisons.append(compare_means("regime", metric, model, base, per_bar[model], per_bar[base],
                                                     hib, seed=seed))
    return section
