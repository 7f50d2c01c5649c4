"""One sweep trial: a plain, JSON-able backtest description, its stable id, and the function that runs it.

A trial is ``{"data": {source, timeframe, since, until, bars}, "score_from", "strategy", "params",
"broker": {cash, commission, slippage}, "seed"}``. Its id is a hash of its canonical JSON: the key under
which a finished trial is stored, so a resumed sweep does not run it again. Trials carry no Python
objects: a worker rebuilds everything from the description, and fitted models travel through the
models' on-disk cache (``model_cache_dir``), never as pickled modules.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import importlib
import json
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import pandas as pd

from btdensity.cachedir import cache_root
from btdensity.feeds.source import load_source, to_utc

from btdensity.runner import BacktestConfig, BacktestResult, backtest, summarize
from btdensity.strategies.registry import get_strategy

from .returns import bar_returns

__all__ = ["canonical_json", "flatten_params", "flatten_summary", "make_trial", "nest_params", "run_trial",
           "score_window", "trial_id"]


def make_trial(data: Mapping[str, Any], strategy: str, params: Mapping[str, Any], broker: Mapping[str, Any],
               seed: int, score_from: str | None = None) -> dict[str, Any]:
    """A trial description (plain JSON types), normalised so that equal trials have equal ids."""
    trial = {"data": dict(data), "score_from": score_from, "strategy": strategy, "params": nest_params(params),
             "broker": dict(broker), "seed": int(seed)}
    return json.loads(canonical_json(trial))


def nest_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted names set keys of mapping parameters: ``{"a.b": 1, "a": {"c": 2}}`` is ``{"a": {"b": 1, "c": 2}}``."""
    out: dict[str, Any] = {}
    for name in sorted(params, key=lambda k: k.count(".")):   # whole values first, dotted keys into them
        *path, leaf = name.split(".")
        target = out
        for key in path:
            target = target.setdefault(key, {})
            if not isinstance(target, dict):
                raise ValueError(f"parameter {name!r} sets a key inside {key!r}, which is not a mapping")
        target[leaf] = copy.deepcopy(params[name])
    return out


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The inverse of :func:`nest_params`: nested mappings as dotted names."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Mapping) and value:
            out.update(flatten_params(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def canonical_json(trial: Mapping[str, Any]) -> str:
    """Sorted keys, no whitespace: the same text for the same trial, whatever the order it was built in."""
    try:
        return json.dumps(trial, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"a trial must hold plain JSON values (numbers, strings, lists, mappings): {exc}") from None


def trial_id(trial: Mapping[str, Any]) -> str:
    """16 hex digits of the SHA-256 of the trial's canonical JSON."""
    return hashlib.sha256(canonical_json(trial).encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=8)
def _bars(source: str, timeframe: str | None, since: str | None, until: str | None, bars: int | None,
          seed: int, cache_dir: str | None) -> pd.DataFrame:
    return load_source(source, timeframe=timeframe, since=since, until=until, seed=seed, bars=bars,
                       cache_dir=cache_dir, progress=False)


def load_trial_data(data: Mapping[str, Any], seed: int, cache_dir: str | None = None) -> pd.DataFrame:
    """The bars of a trial's data spec (kept for reuse in this process; callers must not modify them); downloads
    are cached in ``cache_dir``, by default :func:`btdensity.cachedir.cache_root`."""
    return _bars(data["source"], data.get("timeframe"), data.get("since"), data.get("until"), data.get("bars"),
                 int(seed), str(cache_root(cache_dir)))


@dataclass
class _Window:
    """The part of a backtest from one bar on, rebased to the starting cash (what ``summarize`` reads)."""

    values: pd.Series
    benchmark: pd.Series
    trades: pd.DataFrame
    runtime_s: float
    exposure: float
    cerebro: Any = None


def score_window(result: BacktestResult, start: str | pd.Timestamp | None) -> _Window | BacktestResult:
    """The bars of ``result`` at or after ``start``, equity and benchmark rebased so that the close before
    ``start`` is worth the starting cash; trades closed in the window; exposure over the window."""
    if start is None:
        return result
    ts = to_utc(start, "score_from")
    values, cash = result.values, result.config.cash
    pos = int(values.index.searchsorted(ts))
    if pos >= len(values):
        raise ValueError(f"score_from {ts} is after the last bar {values.index[-1]}")
    if pos == 0:
        return result
    v_prev, b_prev = float(values.iloc[pos - 1]), float(result.benchmark.iloc[pos - 1])
    if v_prev <= 0:
        raise ValueError(f"the account is worth {v_prev} before {ts}: nothing left to score")
    closes = pd.to_datetime(result.trades["close"])
    closes = closes.dt.tz_localize("UTC") if closes.dt.tz is None else closes
    return _Window(values=values.iloc[pos:] * (cash / v_prev), benchmark=result.benchmark.iloc[pos:] * (cash / b_prev),
                   trades=result.trades[(closes >= ts).to_numpy()], runtime_s=result.runtime_s,
                   exposure=float((result.positions.iloc[pos:] != 0).mean()))


def flatten_summary(summary: Mapping[str, Any]) -> dict[str, Any]:
    """``summarize``'s figures as one flat mapping (``benchmark_sharpe``, ...), without the wall-clock runtime."""
    flat = {k: v for k, v in summary.items() if k not in ("benchmark", "runtime_s")}
    flat.update({f"benchmark_{k}": v for k, v in summary["benchmark"].items()})
    return flat


def _strategy_params(strategy: str, params: Mapping[str, Any], seed: int,
                     model_cache_dir: str | None) -> dict[str, Any]:
    """The trial's parameters, plus its seed and the sweep's model cache folder for strategies that take them
    (as parameters of their own, or inside their ``walk_forward`` settings); values the trial sets win."""
    names = get_strategy(strategy).params._getkeys()
    shared = {"seed": seed, **({} if model_cache_dir is None else {"cache_dir": model_cache_dir})}
    out = dict(params)
    if "walk_forward" in names:
        out["walk_forward"] = {**shared, **(out.get("walk_forward") or {})}
    for key, value in shared.items():
        if key in names:
            out.setdefault(key, value)
    return out


def run_trial(trial: Mapping[str, Any], model_cache_dir: str | None = None, data_cache_dir: str | None = None,
              imports: Sequence[str] = ()) -> dict[str, Any]:
    """Run one trial: load its bars, backtest, score; returns ``{"metrics": {...}, "runtime_s": ...,
    "returns": ...}``, the last the per-bar returns (float32) of the scored span.

    ``imports`` are modules that register strategies outside this package. Errors propagate to the caller.
    """
    start = time.perf_counter()
    for module in imports:
        importlib.import_module(module)
    df = load_trial_data(trial["data"], trial["seed"], data_cache_dir)
    config = BacktestConfig(strategy=trial["strategy"],
                            params=_strategy_params(trial["strategy"], trial["params"], trial["seed"],
                                                    model_cache_dir),
                            **trial["broker"])
    result = backtest(df, config)
    scored = score_window(result, trial["score_from"])
    summary = summarize(scored, config.cash)
    return {"metrics": flatten_summary(summary), "runtime_s": time.perf_counter() - start,
            "returns": bar_returns(scored.values, config.cash)}
