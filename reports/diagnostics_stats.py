"""The numbers behind the model diagnostics page: time in market and in distribution, trades and bars by
log-density decile, the BNN forecast's reliability (observed against nominal interval coverage), the skill
of ScoreDirection's forecast (forward returns by direction decile, sign agreement, rank correlation) and, on data
with ground-truth anomalies, how well each energy and density line detects them.

All functions read ``lines`` frames as :func:`btdensity.runner.indicator_lines` gives them (columns
``<IndicatorClass>.<line>``, a UTC DatetimeIndex of the bars); a model line the strategy does not have is
simply absent from the frame.
"""
from __future__ import annotations

import math
import re
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from btdensity.labels import forward_log_returns

__all__ = ["ANOMALY_INDICATORS", "ANOMALY_ORIENTATION", "DIAGNOSTIC_KEYS", "MODEL_INDICATORS", "RELIABILITY_LEVELS",
           "anomaly_detection", "anomaly_scores", "anomaly_truth", "bnn_reliability", "decile_table",
           "diagnostic_figures", "entry_bars", "has_model_lines", "line", "reliability", "score_skill"]

#: the indicator classes whose lines the diagnostics page reads
MODEL_INDICATORS = ("Energy", "LogDensity", "ScoreDirection", "BNNUncertainty", "Regime", "LatentRegime", "BNNHorizons",
                    "SequenceUncertainty")
#: the figures :func:`diagnostic_figures` may return (each only when its inputs exist)
DIAGNOSTIC_KEYS = ("time_in_market", "gate_closed_share", "in_distribution_share", "bnn_coverage", "bnn_level",
                   "score_sign_agreement", "score_rank_correlation")
#: nominal coverages of the central intervals of the reliability diagram
RELIABILITY_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
#: the indicator classes whose energy and density lines are scored against ground-truth anomalies
ANOMALY_INDICATORS = ("Energy", "LogDensity", "GaussianDensity", "MixtureDensity", "RealizedVolGate", "AdaptiveGate",
                      "Regime", "LatentRegime")
#: line name -> (how the score is written, sign, offset): the score ``offset + sign * value`` is high when unusual
ANOMALY_ORIENTATION = {"energy": ("energy", 1.0, 0.0), "zscore": ("zscore", 1.0, 0.0),
                       "distance": ("distance", 1.0, 0.0), "logp": ("−logp", -1.0, 0.0),
                       "pvalue": ("1 − pvalue", -1.0, 1.0), "gate": ("1 − gate", -1.0, 1.0),
                       "smooth_gate": ("1 − smooth_gate", -1.0, 1.0)}


def has_model_lines(lines: pd.DataFrame) -> bool:
    """Whether ``lines`` holds a line of any model indicator (``MODEL_INDICATORS``)."""
    return any(str(c).split(".", 1)[0] in MODEL_INDICATORS for c in lines.columns)


def line(lines: pd.DataFrame, name: str) -> pd.Series | None:
    """The column ``name`` (e.g. ``"LogDensity.gate"``) as floats, or ``None`` when it is absent or all NaN."""
    if name not in lines.columns:
        return None
    values = pd.to_numeric(lines[name], errors="coerce").astype(np.float64)
    values = values.where(np.isfinite(values))
    return values if values.notna().any() else None


def _check_lines(lines: pd.DataFrame) -> None:
    if not isinstance(lines, pd.DataFrame) or not isinstance(lines.index, pd.DatetimeIndex):
        raise ValueError("lines must be a DataFrame indexed by the bars' datetimes (btdensity.runner.indicator_lines)")
    if lines.index.tz is None:
        raise ValueError("lines must have a UTC (tz-aware) DatetimeIndex")
    if not lines.index.is_monotonic_increasing:
        raise ValueError("lines' index must be sorted by time")


def _close(prices: pd.DataFrame, index: pd.DatetimeIndex) -> np.ndarray:
    if not isinstance(prices, pd.DataFrame) or "close" not in prices.columns:
        raise ValueError("prices must be an OHLCV DataFrame with a 'close' column")
    close = prices["close"].reindex(index)
    if close.isna().all():
        raise ValueError("prices share no bar with lines (both need the same UTC bar datetimes)")
    return close.to_numpy(dtype=np.float64)


def diagnostic_figures(lines: pd.DataFrame, positions: pd.Series, prices: pd.DataFrame | None = None, *,
                       horizon: int = 1, level: float | None = None, score_horizon: int = 1) -> dict[str, float]:
    """The page's headline figures, all finite (a figure whose inputs are missing is left out).

    - ``time_in_market``: share of bars that closed with an open position (``positions != 0``);
    - ``gate_closed_share``: share of bars with a defined ``LogDensity.gate`` where it is 0 (closed),
      and ``in_distribution_share`` = 1 − that (only with a LogDensity indicator);
    - ``bnn_coverage``: observed share of forward log returns over ``horizon`` bars inside the BNN's
      ``[lower, upper]``, and ``bnn_level`` its nominal ``level`` (only with a BNNUncertainty indicator,
      ``prices`` and ``level``);
    - ``score_sign_agreement`` and ``score_rank_correlation``: :func:`score_skill` of the ScoreDirection
      forecast over ``score_horizon`` bars (only with a ScoreDirection indicator and ``prices``).
    """
    _check_lines(lines)
    if not isinstance(positions, pd.Series):
        raise ValueError("positions must be a Series of position sizes per bar")
    out: dict[str, float] = {}
    if len(positions):
        out["time_in_market"] = float((positions.to_numpy(dtype=np.float64) != 0).mean())
    gate = line(lines, "LogDensity.gate")
    if gate is not None:
        defined = gate.dropna()
        out["gate_closed_share"] = float((defined <= 0).mean())
        out["in_distribution_share"] = 1.0 - out["gate_closed_share"]
    if prices is not None and level is not None:
        _, coverage = bnn_reliability(lines, prices, horizon=horizon)
        if coverage is not None:
            out["bnn_coverage"] = coverage
            out["bnn_level"] = float(level)
    if prices is not None:
        skill = score_skill(lines, prices, horizon=score_horizon)
        if skill is not None:
            out["score_sign_agreement"] = skill.attrs["sign_agreement"]
            out["score_rank_correlation"] = skill.attrs["rank_correlation"]
    return {k: v for k, v in out.items() if math.isfinite(v)}


def _deciles(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decile edges (quantiles of the finite ``values``) and each value's decile 1..10 (0 when not finite);
    decile k holds ``edge[k-1] <= value < edge[k]``, the top one includes its upper edge."""
    edges = np.quantile(values[np.isfinite(values)], np.linspace(0.0, 1.0, 11))
    return edges, np.where(np.isfinite(values), np.searchsorted(edges[1:-1], values, side="right") + 1, 0)


def entry_bars(index: pd.DatetimeIndex, opens: pd.Series) -> np.ndarray:
    """Position in ``index`` of each trade's entry decision bar: the last bar strictly before its fill time
    ``opens`` (naive datetimes are read as UTC); −1 when the fill precedes every bar."""
    times = pd.DatetimeIndex(pd.to_datetime(opens))
    times = times.tz_localize("UTC") if times.tz is None else times.tz_convert("UTC")
    return index.searchsorted(times, side="left") - 1


def decile_table(lines: pd.DataFrame, trades: pd.DataFrame, prices: pd.DataFrame | None = None) -> pd.DataFrame | None:
    """Trades and bars by decile of ``LogDensity.logp`` (``None`` without a LogDensity indicator).

    Decile edges are quantiles of logp over all bars with a value (a property of the market, not of the
    trades); decile k holds ``edge[k-1] <= logp < edge[k]`` (the top one includes its upper edge). A closed
    trade counts in the decile of its entry decision bar (:func:`entry_bars`). Columns: ``logp_from``,
    ``logp_to``, ``bars``, ``mean_next_return`` (mean log return from the bar's close to the next one; only
    with ``prices``), ``trades``, ``pnl`` (sum of ``pnlcomm``), ``hit_rate`` (share of trades with
    ``pnlcomm > 0``, NaN without trades). ``unassigned`` in ``attrs`` counts trades without a decile.
    """
    _check_lines(lines)
    logp = line(lines, "LogDensity.logp")
    if logp is None:
        return None
    missing = {"open", "pnlcomm"} - set(trades.columns)
    if missing:
        raise ValueError(f"trades need the columns {sorted(missing)}")
    edges, decile = _deciles(logp.to_numpy())
    table = pd.DataFrame({"logp_from": edges[:-1], "logp_to": edges[1:]}, index=pd.RangeIndex(1, 11, name="decile"))
    table["bars"] = np.bincount(decile, minlength=11)[1:]
    if prices is not None:
        nxt = pd.Series(forward_log_returns(_close(prices, lines.index), 1))
        table["mean_next_return"] = nxt[decile > 0].groupby(decile[decile > 0]).mean().reindex(table.index)
    bar = entry_bars(lines.index, trades["open"]) if len(trades) else np.zeros(0, dtype=np.int64)
    trade_decile = np.where(bar >= 0, decile[np.clip(bar, 0, None)], 0) if len(bar) else bar
    pnl = trades["pnlcomm"].to_numpy(dtype=np.float64)
    assigned = trade_decile > 0
    groups = pd.DataFrame({"decile": trade_decile[assigned], "pnl": pnl[assigned],
                           "win": (pnl[assigned] > 0).astype(np.float64)}).groupby("decile")
    table["trades"] = groups.size().reindex(table.index, fill_value=0).astype(np.int64)
    table["pnl"] = groups["pnl"].sum().reindex(table.index, fill_value=0.0)
    table["hit_rate"] = groups["win"].mean().reindex(table.index)
    table.attrs["unassigned"] = int((~assigned).sum())
    return table


def reliability(mean: Any, std: Any, realised: Any,
                levels: tuple[float, ...] = RELIABILITY_LEVELS) -> pd.DataFrame:
    """Observed coverage of Gaussian central intervals: for each nominal ``level`` the share of ``realised``
    values with ``|realised − mean| <= z_{(1+level)/2} · std``, over the rows where all three are finite and
    ``std > 0``. Returns columns ``nominal``, ``observed`` and ``n`` (rows used)."""
    m, s, r = (np.asarray(a, dtype=np.float64).ravel() for a in (mean, std, realised))
    if not m.shape == s.shape == r.shape:
        raise ValueError(f"mean, std and realised must have one length; got {m.shape[0]}, {s.shape[0]}, {r.shape[0]}")
    if not all(0.0 < p < 1.0 for p in levels):
        raise ValueError(f"levels must lie in (0, 1); got {levels}")
    ok = np.isfinite(m) & np.isfinite(s) & np.isfinite(r) & (s > 0)
    z = np.abs(r[ok] - m[ok]) / s[ok]
    n = int(ok.sum())
    observed = [float((z <= NormalDist().inv_cdf(0.5 + p / 2)).mean()) if n else math.nan for p in levels]
    return pd.DataFrame({"nominal": list(levels), "observed": observed, "n": n})


def bnn_reliability(lines: pd.DataFrame, prices: pd.DataFrame, *, horizon: int = 1,
                    levels: tuple[float, ...] = RELIABILITY_LEVELS) -> tuple[pd.DataFrame | None, float | None]:
    """The BNN's reliability table (:func:`reliability` of its predictive mean and std
    ``sqrt(epistemic² + aleatoric²)`` against the realised forward log return over ``horizon`` bars) and the
    observed coverage of its own ``[lower, upper]``; ``(None, None)`` without a BNNUncertainty indicator."""
    _check_lines(lines)
    if int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be a whole number of bars >= 1; got {horizon}")
    cols = [line(lines, f"BNNUncertainty.{n}") for n in ("mean", "epistemic", "aleatoric", "lower", "upper")]
    if any(c is None for c in cols):
        return None, None
    mean, epistemic, aleatoric, lower, upper = (c.to_numpy() for c in cols)
    realised = forward_log_returns(_close(prices, lines.index), int(horizon))
    table = reliability(mean, np.hypot(epistemic, aleatoric), realised, levels)
    ok = np.isfinite(lower) & np.isfinite(upper) & np.isfinite(realised)
    coverage = float(((realised[ok] >= lower[ok]) & (realised[ok] <= upper[ok])).mean()) if ok.any() else None
    return table, coverage


def score_skill(lines: pd.DataFrame, prices: pd.DataFrame, *, horizon: int = 1) -> pd.DataFrame | None:
    """How well ScoreDirection's ``direction`` forecast the realised forward log return over ``horizon`` bars
    (``None`` without a ScoreDirection indicator or without a bar where both are known).

    One row per decile of ``direction`` (edges from all bars with both values): ``direction_from``,
    ``direction_to``, ``bars``, ``mean_forward_return`` and ``up_share`` (share of bars whose forward return
    was positive). ``attrs``: ``n`` (bars scored), ``sign_agreement`` (share of bars with a non-zero direction
    and return whose signs agree; 0.5 is no skill) and ``rank_correlation`` (Spearman's rho of direction and
    return, the information coefficient).
    """
    _check_lines(lines)
    if int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be a whole number of bars >= 1; got {horizon}")
    direction = line(lines, "ScoreDirection.direction")
    if direction is None:
        return None
    d = direction.to_numpy()
    realised = forward_log_returns(_close(prices, lines.index), int(horizon))
    ok = np.isfinite(d) & np.isfinite(realised)
    if not ok.any():
        return None
    d, r = d[ok], realised[ok]
    edges, decile = _deciles(d)
    groups = pd.DataFrame({"decile": decile, "r": r, "up": (r > 0).astype(np.float64)}).groupby("decile")
    table = pd.DataFrame({"direction_from": edges[:-1], "direction_to": edges[1:]},
                         index=pd.RangeIndex(1, 11, name="decile"))
    table["bars"] = groups.size().reindex(table.index, fill_value=0).astype(np.int64)
    table["mean_forward_return"] = groups["r"].mean().reindex(table.index)
    table["up_share"] = groups["up"].mean().reindex(table.index)
    signed = (d != 0) & (r != 0)
    agree = np.sign(d[signed]) == np.sign(r[signed])
    table.attrs["n"] = int(ok.sum())
    table.attrs["sign_agreement"] = float(agree.mean()) if signed.any() else math.nan
    table.attrs["rank_correlation"] = float(pd.Series(d).rank().corr(pd.Series(r).rank())) if d.size > 1 else math.nan
    return table



def anomaly_truth(prices: pd.DataFrame | None, index: pd.DatetimeIndex) -> np.ndarray | None:
    """The data's ground-truth anomaly flag per bar of ``index`` (1.0 / 0.0, NaN where unknown), from the ``anomaly``
    column the synthetic market carries; ``None`` when ``prices`` has no such column or no bar of ``index`` is
    flagged or unflagged."""
    if prices is None or "anomaly" not in prices.columns:
        return None
    flag = pd.to_numeric(prices["anomaly"].reindex(index), errors="coerce").to_numpy(dtype=np.float64)
    flag = np.where(np.isnan(flag), np.nan, (flag > 0).astype(np.float64))
    return flag if np.isfinite(flag).any() else None


def anomaly_scores(lines: pd.DataFrame) -> dict[str, tuple[str, np.ndarray]]:
    """Each energy and density line of ``lines`` (the lines of ``ANOMALY_INDICATORS`` named in
    ``ANOMALY_ORIENTATION``, a second indicator of a class too) as a score that is high on unusual bars: column ->
    ``(the score as written, e.g. "1 − pvalue", its values with NaN where the line has none)``."""
    out: dict[str, tuple[str, np.ndarray]] = {}
    for column in lines.columns:
        owner, _, name = str(column).partition(".")
        if re.sub(r"_\d+$", "", owner) not in ANOMALY_INDICATORS or name not in ANOMALY_ORIENTATION:
            continue
        values = line(lines, str(column))
        if values is not None:
            written, sign, offset = ANOMALY_ORIENTATION[name]
            out[str(column)] = (written, offset + sign * values.to_numpy())
    return out


def anomaly_detection(lines: pd.DataFrame, anomaly: Any) -> pd.DataFrame | None:
    """How well each line of :func:`anomaly_scores` picks out the ground-truth anomaly bars ``anomaly`` (1 / 0 per
    bar of ``lines``, NaN where unknown), computed with :mod:`btdensity.evidence.detection`; ``None`` when no line
    can be scored. One row per line (index: the column), over the bars where the line and the truth are known:

    - ``score`` (how the line is oriented), ``bars``, ``anomaly_bars`` (K, the true anomaly bars among them);
    - ``auroc`` (:func:`~btdensity.evidence.detection.auroc`) and ``precision_at_k``
      (:func:`~btdensity.evidence.detection.precision_at_k` with that K);
    - detection latency (:func:`~btdensity.evidence.detection.detection_latency` over the runs of anomaly bars,
      :func:`~btdensity.evidence.detection.anomaly_windows`) of the alarm "the score reaches the precision@K cut",
      its K-th highest value (for a 0 / 1 gate line with fewer than K closed bars: the closed bars):
      ``windows`` scored, ``detected_share``, ``median_latency`` and ``mean_latency`` in bars over the windows
      detected (NaN when none was), ``false_alarm_rate`` (share of alarms on the bars outside every window).

    A line whose bars hold no anomaly bar or nothing else gets no row.
    """
    from btdensity.evidence.detection import anomaly_windows, auroc, detection_latency, precision_at_k
    from btdensity.evidence.rows import InsufficientData

    _check_lines(lines)
    truth = np.asarray(anomaly, dtype=np.float64).reshape(-1)
    if truth.shape[0] != len(lines):
        raise ValueError(f"anomaly must have one value per bar of lines ({len(lines)}); got {truth.shape[0]}")
    windows = anomaly_windows(np.nan_to_num(truth) > 0)
    rows = {}
    for column, (written, score) in anomaly_scores(lines).items():
        known = np.isfinite(score) & np.isfinite(truth)
        k = int(truth[known].sum())
        if k == 0 or k == int(known.sum()):
            continue
        row = {"score": written, "bars": int(known.sum()), "anomaly_bars": k,
               "auroc": auroc(score, truth), "precision_at_k": precision_at_k(score, truth, k)}
        ranked = np.sort(score[known])
        cut = ranked[-k]
        fired = score > cut if cut == ranked[0] else score >= cut     # a gate with < K closed bars: the closed bars
        alarm = np.where(np.isfinite(score), fired.astype(np.float64), np.nan)
        try:
            found = detection_latency(alarm, windows)
        except InsufficientData:
            found = None
        if found is not None:
            detected = found.latency[found.scored & np.isfinite(found.latency)]
            row.update(windows=found.n_scored, detected_share=found.detected_share,
                       median_latency=found.median_latency,
                       mean_latency=float(detected.mean()) if detected.size else math.nan,
                       false_alarm_rate=found.false_alarm_rate)
        rows[column] = row
    if not rows:
        return None
    columns = ["score", "bars", "anomaly_bars", "auroc", "precision_at_k", "windows", "detected_share",
               "median_latency", "mean_latency", "false_alarm_rate"]
    return pd.DataFrame.from_dict(rows, orient="index").reindex(columns=columns).rename_axis("line")
