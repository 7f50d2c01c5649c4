"""The scorecard's forecast family: the predictive distribution of the forward log return that a forecast
indicator's lines describe, and its proper scores, interval coverage and VaR backtests.

A forecast indicator has lines ``mean``, ``lower`` and ``upper`` (the central interval at its ``level``) and a
standard deviation: a ``std`` line, or ``epistemic`` and ``aleatoric`` (their root sum of squares), as
``BNNUncertainty`` has them. Both the BNN and GARCH-t predictives are location-scale Student-t laws (a Gaussian in
the limit): ``mean + std · T``, T a unit-variance t. Its degrees of freedom are read off the lines themselves —
the half-width of the interval over the std is the unit-variance t's central quantile at ``level``, which fixes
``df`` (per bar: a GARCH refit changes it) — so every quantile, CDF and density follows from the lines alone.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from btdensity.labels import forward_log_returns
from btdensity.predictive import df_from_interval, unit_t_quantile

from .compare import compare_means, unavailable
from .families import Section, column
from .scoring import crps_gaussian, crps_student_t, interval_coverage, nll_gaussian, nll_student_t, pinball_loss
from .var_tests import christoffersen_independence, kupiec_pof

__all__ = ["Predictive", "predictive", "score_forecasts"]

class Predictive:
    """Per bar: ``mean``, ``std`` and ``df`` (``inf``: Gaussian) of a location-scale Student-t forecast."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, df: np.ndarray):
        self.mean, self.std, self.df = mean, std, df

    @property
    def scale(self) -> np.ndarray:
        """The t's scale parameter (std · sqrt((df − 2) / df); the std for a Gaussian)."""
        safe = np.where(np.isfinite(self.df), self.df, 3.0)
        return self.std * np.where(np.isfinite(self.df), np.sqrt((safe - 2.0) / safe), 1.0)

    def quantile(self, p: float) -> np.ndarray:
        return self.mean + self.std * unit_t_quantile(p, self.df)

    def cdf(self, y: np.ndarray) -> np.ndarray:
        z = (y - self.mean) / self.scale
        finite = np.isfinite(self.df)
        return np.where(finite, stats.t.cdf(z, np.where(finite, self.df, 3.0)), stats.norm.cdf(z))

    def crps(self, y: np.ndarray) -> np.ndarray:
        """CRPS per bar (NaN where there is no forecast or outcome)."""
        return self._per_bar(y, crps_gaussian, crps_student_t)

    def nll(self, y: np.ndarray) -> np.ndarray:
        """Negative log-likelihood per bar (NaN where there is no forecast or outcome)."""
        return self._per_bar(y, nll_gaussian, nll_student_t)

    def _per_bar(self, y: np.ndarray, gaussian: Any, student_t: Any) -> np.ndarray:
        out = np.full(np.shape(y), np.nan)
        ok = np.isfinite(y) & np.isfinite(self.mean) & ~np.isnan(self.df)
        gauss, t_law = ok & np.isinf(self.df), ok & np.isfinite(self.df)
        if gauss.any():
            out[gauss] = gaussian(y[gauss], self.mean[gauss], self.std[gauss], per_bar=True)
        if t_law.any():
            out[t_law] = student_t(y[t_law], self.mean[t_law], self.scale[t_law], self.df[t_law], per_bar=True)
        return out


def predictive(lines: pd.DataFrame, name: str, level: float) -> Predictive | None:
    """The predictive law the lines of indicator ``name`` (with interval level ``level``) describe, or None."""
    mean, lower, upper = (column(lines, f"{name}.{k}") for k in ("mean", "lower", "upper"))
    std = column(lines, f"{name}.std")
    if std is None:
        epi, ale = column(lines, f"{name}.epistemic"), column(lines, f"{name}.aleatoric")
        std = None if epi is None or ale is None else np.sqrt(epi ** 2 + ale ** 2)
    if mean is None or std is None or lower is None or upper is None:
        return None
    df = df_from_interval(std, lower, upper, level)
    bad = ~(np.isfinite(mean) & (std > 0) & ~np.isnan(df))
    mean, std = np.where(bad, np.nan, mean), np.where(bad, np.nan, std)
    return Predictive(mean, std, np.where(bad, np.nan, df))


def score_forecasts(lines: pd.DataFrame, close: np.ndarray, models: dict[str, float], baselines: dict[str, float],
                    horizon: int = 1, levels: Sequence[float] = (0.5, 0.8, 0.9, 0.95),
                    quantiles: Sequence[float] = (0.01, 0.05, 0.95, 0.99), var_levels: Sequence[float] = (0.95, 0.99),
                    seed: int = 0) -> Section:
    """Coverage of the central intervals at ``levels``, pinball loss at ``quantiles``, CRPS and NLL of each forecast
    (``models`` / ``baselines``: indicator name -> its interval level) for the log return over the next
    ``horizon`` bars, VaR backtests of the lower quantiles at ``var_levels`` (Kupiec, Christoffersen), and each
    model against each baseline on pinball loss at 5 % / 95 %, CRPS and NLL."""
    section = Section("forecast")
    y = forward_log_returns(close, horizon)
    laws = {n: predictive(lines, n, lvl) for n, lvl in {**models, **baselines}.items()}
    laws = {n: law for n, law in laws.items() if law is not None}
    losses: dict[str, dict[str, np.ndarray]] = {}
    for name, law in laws.items():
        ok = np.isfinite(law.mean) & np.isfinite(y)
        if ok.sum() < 10:
            section.notes.append(f"{name}: fewer than 10 scored bars")
            continue
        row = {"indicator": name, "bars": int(ok.sum()), "median_df": float(np.nanmedian(law.df))}
        for lvl in levels:
            half = (1.0 - lvl) / 2.0
            row[f"coverage_{lvl:g}"] = interval_coverage(y[ok], law.quantile(half)[ok], law.quantile(1 - half)[ok])
        adaptive = [column(lines, f"Adaptive{name}.{k}") for k in ("lower", "upper")]
        if all(a is not None for a in adaptive):   # the interval re-levelled from realised outcomes
            lo, hi = adaptive
            both = ok & np.isfinite(lo) & np.isfinite(hi)
            own = {**models, **baselines}[name]
            row[f"coverage_{own:g}_adaptive"] = interval_coverage(y[both], lo[both], hi[both]) if both.any() else None
            if both.any():     # the re-levelled interval's ends as the quantiles they stand for
                tail = (1.0 - own) / 2.0
                row[f"pinball_{tail:g}_adaptive"] = pinball_loss(y[both], lo[both], tail)
                row[f"pinball_{1 - tail:g}_adaptive"] = pinball_loss(y[both], hi[both], 1 - tail)
        for tau in quantiles:
            row[f"pinball_{tau:g}"] = pinball_loss(y[ok], law.quantile(tau)[ok], tau)
        pin = np.mean([pinball_loss(y, law.quantile(t), t, per_bar=True) for t in (0.05, 0.95)], axis=0)
        losses[name] = {"pinball 5 % / 95 %": pin, "CRPS": law.crps(y), "NLL": law.nll(y)}
        row.update(crps=float(np.nanmean(losses[name]["CRPS"][ok])), nll=float(np.nanmean(losses[name]["NLL"][ok])))
        for vl in var_levels:
            hits = (y[ok] < law.quantile(1.0 - vl)[ok]).astype(float)
            kupiec, indep = kupiec_pof(hits, vl), christoffersen_independence(hits)
            row.update({f"var{vl:g}_exceed": float(hits.mean()), f"var{vl:g}_kupiec_p": kupiec.pvalue,
                        f"var{vl:g}_christoffersen_p": indep.pvalue})
        section.rows.append(row)
        section.series[name] = {"pit": law.cdf(y)[ok], "levels": list(levels),
                                "coverage": [row[f"coverage_{lvl:g}"] for lvl in levels], "losses": losses[name]}
    for model in models:
        for base in baselines:
            for metric in ("pinball 5 % / 95 %", "CRPS", "NLL"):
                if model not in losses or base not in losses:
                    section.comparisons.append(unavailable("forecast", metric, model, base, False, "no values"))
                    continue
                section.comparisons.append(compare_means("forecast", metric, model, base, losses[model][metric],
                                                         losses[base][metric], higher_is_better=False, seed=seed))
    return section
