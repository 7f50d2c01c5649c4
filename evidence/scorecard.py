"""``scorecard``: every deep model indicator against the classical baseline a quant would use instead, walk-forward
and out of sample on the user's own bars, with proper scoring rules and a verdict per comparison.

>>> from btdensity import synthetic_market                                        # doctest: +SKIP
>>> card = scorecard(synthetic_market(6000), ScoreConfig(families=("density", "forecast")))   # doctest: +SKIP
>>> [(c.model, c.baseline, c.metric, c.verdict) for c in card.comparisons]          # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from btdensity.atomic import write_text
from btdensity.indicators import DEFAULT_FEATURES, WalkForwardSettings

from .compare import Comparison
from .families import Section, score_densities, score_directions, score_gates, score_regimes
from .forecasts import score_forecasts, truth_law
from .lineup import DEFAULT_FAMILIES, FAMILIES, gate_inputs, lineup, run_lineup

__all__ = ["ScoreConfig", "Scorecard", "scorecard"]


@dataclass(frozen=True)
class ScoreConfig:
    """What a scorecard runs: the ``families`` (``density``, ``gate``, ``forecast``, ``direction``, ``regime``;
    ``tail`` too when asked for),
    the indicators' walk-forward settings, the forecast and direction ``horizon``, the gate event's
    ``event_horizon`` and top ``shares``, the regime ``regime_horizon``, the gates' ``alpha``, the forecast
    intervals' ``level``, and ``anomalies``: ground-truth anomaly windows as ``(start, end)`` times (default: the
    data's ``anomaly`` column when it has one, as the synthetic market does)."""

    families: tuple[str, ...] = DEFAULT_FAMILIES
    walk_forward: WalkForwardSettings = field(default_factory=WalkForwardSettings)
    horizon: int = 1
    event_horizon: int = 24
    shares: tuple[float, ...] = (0.01, 0.05)
    regime_horizon: int = 24
    alpha: float = 0.05
    level: float = 0.9
    anomalies: tuple[tuple[str, str], ...] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "walk_forward", WalkForwardSettings.from_mapping(self.walk_forward))
        lineup(self.families)   # unknown families fail here, before any fit


@dataclass
class Scorecard:
    """A finished scorecard: ``sections`` per family, every ``comparisons`` row, and what was run."""

    config: ScoreConfig
    sections: dict[str, Section]
    bars: int
    start: str
    end: str
    runtime_s: float
    lines: pd.DataFrame = field(repr=False)
    close: np.ndarray = field(repr=False)

    @property
    def comparisons(self) -> list[Comparison]:
        return [c for s in self.sections.values() for c in s.comparisons]

    def verdicts(self) -> pd.DataFrame:
        """One row per comparison: family, metric, model, baseline, figures, difference, interval, verdict."""
        return pd.DataFrame([c.as_dict() for c in self.comparisons])

    def to_dict(self) -> dict[str, Any]:
        wf = dataclasses.asdict(self.config.walk_forward)
        config = {**{k: v for k, v in dataclasses.asdict(self.config).items() if k != "walk_forward"},
                  "walk_forward": wf}
        return _plain({"bars": self.bars, "start": self.start, "end": self.end, "runtime_s": self.runtime_s,
                       "config": config, "comparisons": [c.as_dict() for c in self.comparisons],
                       "families": {name: {"question": FAMILIES[name].question, "indicators": s.rows,
                                           "notes": s.notes} for name, s in self.sections.items()}})

    def write_json(self, path: Any) -> None:
        write_text(path, json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")


def _plain(value: Any) -> Any:
    """JSON-safe: NaN and infinities as None, numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _anomaly_mask(df: pd.DataFrame, windows: Sequence[tuple[str, str]] | None) -> np.ndarray | None:
    if windows:
        mask = np.zeros(len(df), dtype=bool)
        for start, end in windows:
            mask |= (df.index >= pd.Timestamp(start, tz="UTC")) & (df.index <= pd.Timestamp(end, tz="UTC"))
        return mask
    if "anomaly" in df.columns:
        return df["anomaly"].to_numpy(dtype=float) > 0
    return None


def scorecard(df: pd.DataFrame, config: ScoreConfig = ScoreConfig(), features: Sequence[str] = DEFAULT_FEATURES
              ) -> Scorecard:
    """Run the model indicators and their baselines walk-forward on ``df`` (an OHLCV frame, UTC index) and score
    them out of sample on the bars each serves; comparisons use the bars both sides serve."""
    start = time.perf_counter()
    cfg = config
    wanted = lineup(cfg.families, horizon=cfg.horizon, regime_horizon=cfg.regime_horizon, level=cfg.level,
                    alpha=cfg.alpha)
    lines = run_lineup(df, wanted, cfg.walk_forward)
    close = df["close"].to_numpy(dtype=np.float64)
    sections: dict[str, Section] = {}
    for name in cfg.families:
        fam = FAMILIES[name]
        if name == "density":
            sections[name] = score_densities(lines, len(features), fam.models, fam.baselines, seed=cfg.seed)
        elif name == "gate":
            scores, closed = gate_inputs(lines, cfg.alpha)
            sections[name] = score_gates(lines, close, scores, closed, fam.models, fam.baselines,
                                         horizon=cfg.event_horizon, shares=cfg.shares, alpha=cfg.alpha,
                                         anomaly=_anomaly_mask(df, cfg.anomalies), seed=cfg.seed)
        elif name == "forecast":
            sections[name] = score_forecasts(lines, close, dict.fromkeys(fam.models, cfg.level),
                                             dict.fromkeys(fam.baselines, cfg.level), horizon=cfg.horizon,
                                             seed=cfg.seed, truth=truth_law(df, cfg.horizon))
        elif name == "direction":
            sections[name] = score_directions(lines, close, fam.models, fam.baselines, horizon=cfg.horizon,
                                              seed=cfg.seed)
        elif name == "tail":
            from .tail import score_tail

            sections[name] = score_tail(lines, close, {"TailRisk": 0.95, "TailRisk_2": 0.99},
                                        garch="GarchForecast", garch_level=cfg.level, horizon=cfg.horizon,
                                        seed=cfg.seed)
        else:
            sections[name] = score_regimes(lines, close, fam.models, fam.baselines, cfg.regime_horizon,
                                           cfg.walk_forward.train_bars, seed=cfg.seed)
    return Scorecard(config=cfg, sections=sections, bars=len(df), start=df.index[0].isoformat(),
                     end=df.index[-1].isoformat(), runtime_s=time.perf_counter() - start, lines=lines, close=close)
