"""The indicators a scorecard runs: each deep model indicator beside the classical baselines a quant would use
instead, all on one data feed with one set of walk-forward settings, in one backtrader run (no trades)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import backtrader as bt
import numpy as np
import pandas as pd

from btdensity.feeds import DataFrameFeed
from btdensity.indicators import WalkForwardSettings
from btdensity.runner import indicator_lines

__all__ = ["DEFAULT_FAMILIES", "FAMILIES", "Family", "lineup", "run_lineup"]


@dataclass(frozen=True)
class Family:
    """A question the scorecard asks: the model indicators and the baselines that answer it."""

    name: str
    models: tuple[str, ...]
    baselines: tuple[str, ...]
    question: str


FAMILIES = {
    "density": Family("density", ("LogDensity",), ("GaussianDensity", "MixtureDensity"),
                      "How likely is today's market state? (out-of-sample log-likelihood of the features)"),
    "gate": Family("gate", ("LogDensity", "Energy"), ("RealizedVolGate", "GaussianDensity", "MixtureDensity"),
                   "Does the unusual-state score see large moves coming? (AUROC for the next bars' largest moves)"),
    "forecast": Family("forecast", ("BNNUncertainty",), ("GarchForecast", "HarForecast"),
                       "How good is the forecast distribution of the next return? (pinball, CRPS, NLL, coverage)"),
    "direction": Family("direction", ("ScoreDirection",), ("MomentumDirection",),
                        "Does the direction signal rank the next returns? (rank IC, sign agreement)"),
    "regime": Family("regime", ("Regime",), ("PersistenceRegime", "VolatilityRegime"),
                     "Does the regime model beat 'the regime stays what it was' and a volatility forecast's regime? "
                     "(log loss, accuracy)"),
    "tail": Family("tail", ("TailRisk", "TailRisk_2"), ("GarchForecast", "historical simulation"),
                   "Do the 95 % / 99 % VaR and CVaR lines hold? (exceedance, Kupiec, Christoffersen, FZ0 loss)"),
}
#: what a scorecard runs unless told otherwise (the tail family fits a conditional flow per window: ask for it)
DEFAULT_FAMILIES = ("density", "gate", "forecast", "direction", "regime")


def lineup(families: Sequence[str], *, horizon: int = 1, regime_horizon: int = 24, level: float = 0.9,
           alpha: float = 0.05) -> list[tuple[str, dict[str, Any]]]:
    """``(indicator class name, parameters)`` of every indicator the ``families`` need, each once."""
    params = {"LogDensity": {"model": "realnvp", "alpha": alpha}, "GaussianDensity": {"alpha": alpha},
              "MixtureDensity": {"alpha": alpha}, "Energy": {}, "RealizedVolGate": {"alpha": alpha},
              "BNNUncertainty": {"horizon": horizon, "level": level},
              "GarchForecast": {"horizon": horizon, "level": level},
              "HarForecast": {"horizon": horizon, "level": level},
              "ScoreDirection": {"horizon": horizon}, "MomentumDirection": {},
              "Regime": {"horizon": regime_horizon}, "PersistenceRegime": {"horizon": regime_horizon},
              "VolatilityRegime": {"horizon": regime_horizon}}
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown scorecard famil{'ies' if len(unknown) > 1 else 'y'} {unknown}; "
                         f"choose from {list(FAMILIES)}")
    names: list[str] = []
    for f in families:
        if f == "tail":
            continue
        for name in (*FAMILIES[f].models, *FAMILIES[f].baselines):
            if name not in names:
                names.append(name)
    out = [(name, params[name]) for name in names]
    if "tail" in families:
        from .tail import tail_lineup

        out += [entry for entry in tail_lineup(horizon, garch_level=level) if entry[0] not in names]
    return out


#: model indicators that also get an adaptive-conformal companion (columns ``Adaptive<name>.*``): the forecasts'
#: intervals and the density gate, re-calibrated from realised outcomes (``btdensity.indicators.adaptive``)
ADAPTIVE = {"BNNUncertainty": "AdaptiveInterval", "GarchForecast": "AdaptiveInterval",
            "HarForecast": "AdaptiveInterval", "LogDensity": "AdaptiveGate"}


class _Lineup(bt.Strategy):
    """Attaches the indicators (and their adaptive companions) and trades nothing."""

    params = (("indicators", ()), ("walk_forward", None))

    def __init__(self) -> None:
        import btdensity.indicators as indicators

        settings = self.p.walk_forward.indicator_params()
        for name, kwargs in self.p.indicators:
            ind = getattr(indicators, name)(self.data, **{**settings, **kwargs})
            if name in ADAPTIVE:
                base = getattr(indicators, ADAPTIVE[name])
                companion = type(f"Adaptive{name}", (base,), {"__module__": __name__})
                if base is indicators.AdaptiveInterval:
                    companion(self.data, forecast=ind, level=kwargs.get("level", 0.9))
                else:
                    companion(self.data, density=ind, alpha=kwargs.get("alpha", 0.05))


def run_lineup(df: pd.DataFrame, indicators: Sequence[tuple[str, dict[str, Any]]],
               walk_forward: WalkForwardSettings) -> pd.DataFrame:
    """Every line of ``indicators`` on the bars of ``df`` (batched, walk-forward), one column ``<Indicator>.<line>``
    a line, indexed by the bars' UTC times."""
    cerebro = bt.Cerebro(stdstats=False, runonce=True)
    cerebro.adddata(DataFrameFeed(dataname=df), name="data")
    cerebro.addstrategy(_Lineup, indicators=tuple(indicators), walk_forward=walk_forward)
    strategy = cerebro.run()[0]
    lines = indicator_lines(strategy)
    return lines.reindex(df.index) if len(lines) != len(df) else lines.set_axis(df.index)


def _closed(lines: pd.DataFrame, name: str, alpha: float) -> np.ndarray | None:
    from .families import column

    if name == "Energy":
        pvalue = column(lines, "Energy.pvalue")
        return None if pvalue is None else np.where(np.isfinite(pvalue), (pvalue < alpha).astype(float), np.nan)
    gate = column(lines, f"{name}.gate")
    return None if gate is None else np.where(np.isfinite(gate), (gate <= 0).astype(float), np.nan)


def gate_inputs(lines: pd.DataFrame, alpha: float) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(scores, closed)`` of the gate family: each indicator's unusual-state score (high = unusual: the negated
    log-density, the energy's z-score, the volatility gate's trailing realised volatility) and where its gate is
    closed.

    Energy is scored by its z-score against the window's held-out energies, not by the raw energy: an energy-based
    model is unnormalised, so each window's energies carry their own arbitrary constant and raw energies of bars that
    different windows serve do not compare (the densities' log-likelihoods are normalised and do).

    The volatility gate is scored by the volatility itself (its ``energy`` line), not by its p-value: the p-value
    ranks a bar against its window's held-out tail only, so a calm window's busiest hour and a crash window's
    quietest can share a value, while a volatility compares across windows as it is. The events are the largest
    moves of the whole stretch scored, and a baseline is scored at its strongest (on BTC/USDT 2017-19, top 5 %:
    AUROC 0.730 for the volatility, 0.665 for its p-value)."""
    from .families import column

    scores: dict[str, np.ndarray] = {}
    for name, line, sign in (("LogDensity", "logp", -1.0), ("GaussianDensity", "logp", -1.0),
                             ("MixtureDensity", "logp", -1.0), ("Energy", "zscore", 1.0),
                             ("RealizedVolGate", "energy", 1.0)):
        values = column(lines, f"{name}.{line}")
        if values is not None:
            scores[name] = sign * values
    closed = {n: c for n in ("LogDensity", "AdaptiveLogDensity", "GaussianDensity", "MixtureDensity",
                             "RealizedVolGate", "Energy") if (c := _closed(lines, n, alpha)) is not None}
    return scores, closed
