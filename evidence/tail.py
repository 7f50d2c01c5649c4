"""The scorecard's tail family: backtests of value-at-risk and expected-shortfall lines out of sample, a deep model's
(``TailRisk``) against the classical ones, GARCH(1,1)-t (``GarchForecast``'s predictive, read off its lines) and
historical simulation (the empirical quantile and shortfall of the last ``history`` known ``h``-bar returns).

For each VaR line at level ``L`` (tail probability ``p = 1 - L``) and the outcome ``y_t``, the log return over the
next ``horizon`` bars:

* exceedance rate (``y < var``; nominal ``p``), Kupiec's POF test, Christoffersen's independence and conditional
  coverage tests (:mod:`.var_tests`);
* quantile loss of the VaR, the pinball loss at ``p`` (:func:`.scoring.pinball_loss`), strictly consistent for the
  quantile;
* the FZ0 loss of the pair (VaR, ES) (Fissler & Ziegel 2016; Patton, Ziegel & Chen 2019), strictly consistent for
  the pair (the shortfall alone has no consistent loss): ``-1{y <= v}(v - y)/(p e) + v/e + log(-e) - 1``, for
  ``e < 0`` (a shortfall that is a loss; bars with ``e >= 0`` are left out);
* the shortfall ratio, the mean outcome on exceedance bars over the mean ES there (1 for a calibrated ES).

Each model is compared with each baseline on the quantile loss and the FZ0 loss over the bars both serve (block
bootstrap, :mod:`.compare`). For a short the same holds of ``-y`` with the lines ``var_short`` / ``cvar_short``.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from btdensity.indicators.trailing import trailing_windows
from btdensity.labels import forward_log_returns
from btdensity.models.tail import sample_tail

from .compare import compare_means, unavailable
from .families import Section, column
from .forecasts import predictive
from .scoring import pinball_loss
from .var_tests import christoffersen_conditional_coverage, christoffersen_independence, kupiec_pof

__all__ = ["HISTORICAL", "fz0_loss", "garch_tail", "historical_tail", "score_tail", "tail_lineup"]

#: the name historical simulation goes by in the rows and comparisons
HISTORICAL = "HistoricalSimulation"


def tail_lineup(horizon: int = 1, levels: Sequence[float] = (0.95, 0.99), model: str = "flow",
                garch_level: float = 0.9) -> list[tuple[str, dict[str, Any]]]:
    """The indicators the tail family needs, for :func:`btdensity.evidence.lineup.run_lineup`: one ``TailRisk`` a
    level (columns ``TailRisk``, ``TailRisk_2``, …, in this order; they share their fits) and ``GarchForecast``."""
    return ([("TailRisk", {"horizon": horizon, "level": float(lvl), "model": model}) for lvl in levels]
            + [("GarchForecast", {"horizon": horizon, "level": garch_level})])


def fz0_loss(y: Any, var: Any, es: Any, prob: float) -> np.ndarray:
    """Per bar, the FZ0 loss of the forecast pair (VaR ``var``, ES ``es``) at tail probability ``prob`` for the
    outcome ``y`` (lower is better; NaN where an input is NaN or ``es >= 0``).

    >>> fz0_loss([-0.03, 0.01], [-0.02, -0.02], [-0.025, -0.025], 0.05).round(4).tolist()
    [4.1111, -3.8889]
    """
    y, v, e = (np.asarray(a, dtype=np.float64) for a in (y, var, es))
    ok = np.isfinite(y) & np.isfinite(v) & np.isfinite(e) & (e < 0)
    e_safe = np.where(ok, e, -1.0)
    hit = (y <= v).astype(np.float64)
    loss = -hit * (v - y) / (prob * e_safe) + v / e_safe + np.log(-e_safe) - 1.0
    return np.where(ok, loss, np.nan)


def historical_tail(close: Any, horizon: int, prob: float, history: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Historical simulation, causal: at bar ``t``, the VaR and ES (:func:`~btdensity.models.tail.sample_tail`) of
    the last ``history`` ``horizon``-bar log returns known at ``t`` (those ending at bar ``t`` or before); NaN until
    ``history`` of them are known."""
    known = np.concatenate([np.full(horizon, np.nan), forward_log_returns(close, horizon)[:-horizon]])
    rows = trailing_windows(known, history)
    ok = np.isfinite(rows).all(axis=1)
    var, cvar = np.full(len(known), np.nan), np.full(len(known), np.nan)
    if ok.any():
        var[ok], cvar[ok] = sample_tail(rows[ok], prob)
    return var, cvar


def garch_tail(lines: pd.DataFrame, name: str, level: float, prob: float, sign: float = 1.0
               ) -> tuple[np.ndarray, np.ndarray] | None:
    """VaR and ES at tail probability ``prob`` of ``sign`` times the forecast return, under the location-scale
    Student-t predictive the lines of ``name`` describe (its interval at ``level``; :func:`.forecasts.predictive`),
    or None without such lines. ``sign = -1`` is a short's view (the law of ``-R`` has mean ``-mean``, the same
    scale). The shortfall in closed form: ``mean + scale · (-(df + a²) / (df - 1)) f(a) / prob`` at the t quantile
    ``a``."""
    law = predictive(lines, name, level)
    if law is None:
        return None
    df = law.df
    finite = np.isfinite(df)
    safe = np.where(finite, df, 3.0)
    a = np.where(finite, stats.t.ppf(prob, safe), stats.norm.ppf(prob))
    partial = np.where(finite, -(safe + a * a) / (safe - 1.0) * stats.t.pdf(a, safe), -stats.norm.pdf(a))
    mean = sign * law.mean
    return mean + law.scale * a, mean + law.scale * partial / prob


def _backtest(y: np.ndarray, var: np.ndarray, es: np.ndarray, prob: float) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The figures of one VaR / ES pair and its per-bar losses."""
    ok = np.isfinite(y) & np.isfinite(var)
    hits = (y[ok] < var[ok]).astype(np.float64)
    row: dict[str, Any] = {"bars": int(ok.sum()), "exceedance": float(hits.mean()), "nominal": prob,
                           "kupiec_p": kupiec_pof(hits, 1.0 - prob).pvalue,
                           "christoffersen_p": christoffersen_independence(hits).pvalue,
                           "conditional_coverage_p": christoffersen_conditional_coverage(hits, 1.0 - prob).pvalue}
    losses = {"quantile loss": pinball_loss(y, var, prob, per_bar=True), "FZ0 loss": fz0_loss(y, var, es, prob)}
    row["quantile_loss"] = float(np.nanmean(losses["quantile loss"]))
    row["fz0_loss"] = float(np.nanmean(losses["FZ0 loss"])) if np.isfinite(losses["FZ0 loss"]).any() else None
    hit_all = ok & (y < var) & np.isfinite(es)
    row["shortfall_ratio"] = float(y[hit_all].mean() / es[hit_all].mean()) if hit_all.any() else None
    return row, losses


def score_tail(lines: pd.DataFrame, close: np.ndarray, models: Mapping[str, float], garch: str | None = "GarchForecast",
               garch_level: float = 0.9, horizon: int = 1, history: int = 2000, short: bool = False,
               seed: int = 0) -> Section:
    """Backtest the VaR / ES lines of each model (``models``: column prefix, e.g. ``TailRisk`` or ``TailRisk_2`` ->
    its level) and, at each model's level, of the baselines (``garch``'s lines with interval level ``garch_level``,
    and historical simulation over ``history`` returns), on the log return over the next ``horizon`` bars; with
    ``short``, the short side. Only bars where the model has a value are scored, for the model and its baselines."""
    section = Section("tail")
    sign = -1.0 if short else 1.0
    y = sign * forward_log_returns(close, horizon)
    suffix = "_short" if short else ""
    for name, level in models.items():
        prob = 1.0 - float(level)
        var, es = column(lines, f"{name}.var{suffix}"), column(lines, f"{name}.cvar{suffix}")
        if var is None or es is None:
            section.notes.append(f"{name}: no VaR / CVaR values")
            continue
        served = np.isfinite(var)
        candidates = {name: (sign * var, sign * es),
                      HISTORICAL: historical_tail(1.0 / close if short else close, horizon, prob, history)}
        laws = None if garch is None else garch_tail(lines, garch, garch_level, prob, sign)
        if laws is not None:
            candidates[garch] = laws
        losses: dict[str, dict[str, np.ndarray]] = {}
        for who, (v, e) in candidates.items():
            v, e = np.where(served, v, np.nan), np.where(served, e, np.nan)
            if (np.isfinite(v) & np.isfinite(y)).sum() < 10:
                section.notes.append(f"{who} at {level:.0%}: fewer than 10 scored bars")
                continue
            row, losses[who] = _backtest(y, v, e, prob)
            section.rows.append({"indicator": who, "level": float(level), "side": "short" if short else "long", **row})
        side = "short " if short else ""
        section.comparisons += [_compare(losses, name, base, metric, f"{metric}, {level:.0%} {side}VaR", seed)
                                for base in candidates if base != name for metric in ("quantile loss", "FZ0 loss")]
    return section


def _compare(losses: Mapping[str, Mapping[str, np.ndarray]], model: str, base: str, metric: str, label: str,
             seed: int) -> Any:
    """``model`` against ``base`` on one loss (lower is better), or why not."""
    if model not in losses or base not in losses:
        return unavailable("tail", label, model, base, False, "no values")
    return compare_means("tail", label, model, base, losses[model][metric], losses[base][metric],
                         higher_is_better=False, seed=seed)
