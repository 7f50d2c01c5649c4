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

from btdensity.feeds.synthetic import SHOCK_DF
from btdensity.labels import forward_log_returns
from btdensity.predictive import df_from_interval, unit_t_quantile

from .compare import compare_means, unavailable
from .families import Section, column
from .scoring import crps_gaussian, crps_student_t, interval_coverage, nll_gaussian, nll_student_t, pinball_loss
from .var_tests import christoffersen_independence, kupiec_pof

__all__ = ["TRUTH", "Predictive", "predictive", "score_forecasts", "truth_law"]

#: the name of the reference row scored from the data's own law, where the data carry it (the synthetic market)
TRUTH = "truth"

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


def truth_law(df: pd.DataFrame, horizon: int = 1) -> Predictive | None:
    """The law the next bar's log return was drawn from, per bar, where ``df`` carries it (the synthetic market's
    ``drift`` and ``sigma`` columns, its shocks Student-t with ``SHOCK_DF`` degrees of freedom), else None; for
    ``horizon`` 1 only (a sum of t shocks is not a t). NaN where the next bar is an anomaly (its move was not drawn
    from the law; a flash crash's recovery can even be foreseen). A reference, not a forecast: it knows the regime of
    the bar it describes, which a forecaster can only infer from past bars, so no forecast beats it but by noise."""
    if horizon != 1 or not {"drift", "sigma"} <= set(df.columns):
        return None
    anomaly = df["anomaly"].to_numpy(dtype=bool) if "anomaly" in df.columns else np.zeros(len(df), dtype=bool)
    lawless = np.r_[anomaly[1:], True]
    mean = np.where(lawless, np.nan, np.r_[df["drift"].to_numpy(dtype=np.float64)[1:], np.nan])
    std = np.where(lawless, np.nan, np.r_[df["sigma"].to_numpy(dtype=np.float64)[1:], np.nan])
    return Predictive(mean, std, np.where(lawless, np.nan, SHOCK_DF))


def _gain(loss: np.ndarray, base: np.ndarray) -> float:
    """The relative change of the mean loss against the baseline's, on the bars both have."""
    both = np.isfinite(loss) & np.isfinite(base)
    return float(loss[both].mean() / base[both].mean() - 1.0) if both.any() else float("nan")


def _truth_notes(losses: dict[str, dict[str, np.ndarray]], models: Sequence[str], baselines: Sequence[str]
                 ) -> list[str]:
    """Per baseline: how far the truth gets below it on pinball 5 % / 95 % and CRPS, and how much of that each model
    gets (every figure on the bars the truth, the baseline and the model all have)."""
    notes = []
    for base in baselines:
        if TRUTH not in losses or base not in losses:
            continue
        for model in (m for m in models if m in losses):
            figures = []
            for metric in ("pinball 5 % / 95 %", "CRPS"):
                keep = np.isfinite(losses[model][metric]) & np.isfinite(losses[TRUTH][metric])
                truth, own = (_gain(np.where(keep, losses[n][metric], np.nan), losses[base][metric])
                              for n in (TRUTH, model))
                figures.append(f"{metric} truth {truth:+.1%}, {model} {own:+.1%}")
            notes.append(f"The data's own law ({TRUTH}: it knows the regime of the bar it forecasts) against {base}, on "
                         "the bars whose return was drawn from it (an anomaly's was not): " + "; ".join(figures) +
                         ". In expectation no forecast beats the truth: its margin is the most there is to gain here.")
    return notes


def score_forecasts(lines: pd.DataFrame, close: np.ndarray, models: dict[str, float], baselines: dict[str, float],
                    horizon: int = 1, levels: Sequence[float] = (0.5, 0.8, 0.9, 0.95),
                    quantiles: Sequence[float] = (0.01, 0.05, 0.95, 0.99), var_levels: Sequence[float] = (0.95, 0.99),
                    seed: int = 0, truth: Predictive | None = None) -> Section:
    """Coverage of the central intervals at ``levels``, pinball loss at ``quantiles``, CRPS and NLL of each forecast
    (``models`` / ``baselines``: indicator name -> its interval level) for the log return over the next
    ``horizon`` bars, VaR backtests of the lower quantiles at ``var_levels`` (Kupiec, Christoffersen), and each
    model against each baseline on pinball loss at 5 % / 95 %, CRPS and NLL. ``truth`` (:func:`truth_law`), where
    the data carry their own law: scored as a row (``TRUTH``) on the bars the baselines serve, and a note per model and
    baseline with the truth's margin and the model's (no comparison: it is a ceiling, not a rival)."""
    section = Section("forecast")
    y = forward_log_returns(close, horizon)
    laws = {n: predictive(lines, n, lvl) for n, lvl in {**models, **baselines}.items()}
    laws = {n: law for n, law in laws.items() if law is not None}
    if truth is not None and laws:
        served = np.zeros(len(y), dtype=bool)
        for name in (b for b in baselines if b in laws):
            served |= np.isfinite(laws[name].mean)
        laws[TRUTH] = Predictive(*(np.where(served, v, np.nan) for v in (truth.mean, truth.std, truth.df)))
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
    section.notes.extend(_truth_notes(losses, list(models), list(baselines)))
    for model in models:
        for base in baselines:
            for metric in ("pinball 5 % / 95 %", "CRPS", "NLL"):
                if model not in losses or base not in losses:
                    section.comparisons.append(unavailable("forecast", metric, model, base, False, "no values"))
                    continue
                section.comparisons.append(compare_means("forecast", metric, model, base, losses[model][metric],
                                                         losses[base][metric], higher_is_better=False, seed=seed))
    return section
