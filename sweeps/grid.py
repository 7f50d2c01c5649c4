"""Sweep grids: what a parameter sweep varies, read from YAML or a mapping, expanded into candidates.

A grid names data sets, strategies with their parameter choices, broker settings and seeds::

    data:                         # one spec or a list; any value may be a list of choices
      - {source: sample, bars: 2000}
      - {source: [a.csv, b.csv], timeframe: 1h}
      - {source: "bybit:BTC/USDT:USDT", since: 2024-01-01, until: 2024-06-30}
    strategy: sma_cross           # or `strategies: [{strategy: NAME, params: {...}}, ...]`
    params: {fast: [5, 10, 20], slow: [50, 100]}   # a list is a set of choices; anything else is fixed
    # a dotted name sets one key of a mapping parameter, e.g. walk_forward.train_bars: [1000, 2000]
    broker: {commission: [0.00055, 0.001]}
    seed: [0, 1]                  # seed of the sample market and of the models
    search: {method: random, budget: 20, seed: 0}  # default: the full grid
    metric: sharpe                # what the report sorts by and walk-forward optimises
    heatmap: [fast, slow]
    walk_forward: {in_sample_bars: 4000, out_of_sample_bars: 1000, folds: 3, anchored: false}
    imports: [my_strategies]      # modules that register further strategies, imported in every worker
    model_cache_dir: cache/models # fitted models shared by all trials (strategies with a cache_dir param)
    data_cache_dir: cache/bars    # downloaded Bybit bars

A parameter whose single value is itself a list is written as a list of one list: ``features: [[a, b]]``.
"""
from __future__ import annotations

import dataclasses
import importlib
import itertools
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from btdensity.feeds.source import to_utc

from btdensity.indicators import WalkForwardSettings
from btdensity.runner import BacktestConfig
from btdensity.strategies.registry import get_strategy

__all__ = ["METRICS", "Candidate", "SweepGrid", "WalkForwardSplit", "load_grid", "strategy_param_names"]

#: metrics a sweep can sort and optimise by; higher is better for each (max_drawdown is negative)
METRICS = ("total_return", "cagr", "sharpe", "sortino", "max_drawdown", "calmar", "final_value", "win_rate",
           "n_trades", "exposure")

_GRID_KEYS = {"data", "strategy", "params", "strategies", "broker", "seed", "search", "metric", "heatmap",
              "walk_forward", "imports", "model_cache_dir", "data_cache_dir"}
_DATA_KEYS = ("source", "timeframe", "since", "until", "bars")


@dataclass(frozen=True)
class Candidate:
    """One strategy with one choice of its parameters."""

    strategy: str
    params: Mapping[str, Any]

    @property
    def key(self) -> str:
        """The candidate as canonical JSON (a dictionary key)."""
        return json.dumps([self.strategy, self.params], sort_keys=True, default=str)


@dataclass(frozen=True)
class WalkForwardSplit:
    """Consecutive out-of-sample blocks of ``out_of_sample_bars`` at the end of each data set, ``folds`` of
    them; each is preceded by its in-sample block of ``in_sample_bars`` (or every earlier bar when
    ``anchored``). Every backtest runs from the first bar of the data, so indicators are warm when a
    block starts; only the block's bars are scored."""

    in_sample_bars: int
    out_of_sample_bars: int
    folds: int = 1
    anchored: bool = False

    def __post_init__(self) -> None:
        for name in ("in_sample_bars", "out_of_sample_bars", "folds"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"walk_forward.{name} must be a positive integer; got {value!r}")

    def windows(self, n_bars: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        """Per fold, the (first, last) bar positions of the in-sample and the out-of-sample block."""
        first_oos = n_bars - self.folds * self.out_of_sample_bars
        if first_oos - self.in_sample_bars < 0:
            raise ValueError(f"walk_forward needs in_sample_bars + folds * out_of_sample_bars = "
                             f"{self.in_sample_bars + self.folds * self.out_of_sample_bars} bars; "
                             f"the data has {n_bars}")
        out = []
        for k in range(self.folds):
            oos = first_oos + k * self.out_of_sample_bars
            start = 0 if self.anchored else oos - self.in_sample_bars
            out.append(((start, oos - 1), (oos, oos + self.out_of_sample_bars - 1)))
        return out


@dataclass(frozen=True)
class SweepGrid:
    """An expanded grid: data specs, candidates (after the search), broker settings and seeds."""

    data: tuple[Mapping[str, Any], ...]
    candidates: tuple[Candidate, ...]
    brokers: tuple[Mapping[str, Any], ...]
    seeds: tuple[int, ...]
    metric: str = "sharpe"
    heatmap: tuple[str, str] | None = None
    walk_forward: WalkForwardSplit | None = None
    imports: tuple[str, ...] = ()
    model_cache_dir: str | None = None
    data_cache_dir: str | None = None
    varied: tuple[str, ...] = field(default=())   # parameters with more than one value among the candidates


def _choices(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _product(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    keys = list(spec)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(_choices(spec[k]) for k in keys))]


def strategy_param_names(strategy: str) -> tuple[str, ...]:
    """The parameter names the registered strategy ``strategy`` declares."""
    return tuple(get_strategy(strategy).params._getkeys())


def _instant(value: Any, name: str) -> str | None:
    ts = to_utc(None if value is None else str(value), name)
    return None if ts is None else ts.isoformat()


def _data_specs(raw: Any) -> tuple[dict[str, Any], ...]:
    entries = raw if isinstance(raw, list) else [raw]
    out = []
    for entry in entries:
        if isinstance(entry, str):
            entry = {"source": entry}
        if not isinstance(entry, Mapping) or "source" not in entry:
            raise ValueError(f"grid: each data entry needs a 'source' ('sample', a .csv path or "
                             f"bybit:SYMBOL); got {entry!r}")
        unknown = set(entry) - set(_DATA_KEYS)
        if unknown:
            raise ValueError(f"grid: unknown data key(s) {sorted(unknown)}; allowed: {list(_DATA_KEYS)}")
        for spec in _product(entry):
            spec = {k: spec.get(k) for k in _DATA_KEYS}
            spec["source"] = str(spec["source"])
            spec["since"] = _instant(spec["since"], "since")
            spec["until"] = _instant(spec["until"], "until")
            if spec["bars"] is not None and (not isinstance(spec["bars"], int) or spec["bars"] < 2):
                raise ValueError(f"grid: data bars must be an integer >= 2; got {spec['bars']!r}")
            out.append(spec)
    return tuple(out)


def _strategy_spaces(grid: Mapping[str, Any]) -> list[tuple[str, dict[str, list[Any]]]]:
    if "strategies" in grid and ("strategy" in grid or "params" in grid):
        raise ValueError("grid: give either 'strategies' (a list) or 'strategy' with 'params', not both")
    entries = grid.get("strategies") or [{"strategy": grid.get("strategy", "sma_cross"),
                                          "params": grid.get("params") or {}}]
    spaces = []
    for entry in entries:
        if not isinstance(entry, Mapping) or "strategy" not in entry:
            raise ValueError(f"grid: each 'strategies' entry needs a 'strategy' name; got {entry!r}")
        name, params = str(entry["strategy"]), entry.get("params") or {}
        if not isinstance(params, Mapping):
            raise ValueError(f"grid: params of {name} must be a mapping NAME: value-or-choices; got {params!r}")
        known = strategy_param_names(name)
        unknown = [p for p in params if str(p).split(".")[0] not in known]
        if unknown:
            raise ValueError(f"grid: strategy {name!r} has no parameter(s) {unknown}; it has {list(known)}")
        for key, value in params.items():   # walk-forward settings are checked now, not inside a trial
            if str(key) == "walk_forward" and not isinstance(value, list):
                WalkForwardSettings.from_mapping(value)
            elif str(key).startswith("walk_forward."):
                for choice in _choices(value):
                    WalkForwardSettings.from_mapping({str(key).split(".", 2)[1]: choice})
        spaces.append((name, {k: _choices(v) for k, v in params.items()}))
    return spaces


def _space_size(space: Mapping[str, list[Any]]) -> int:
    size = 1
    for values in space.values():
        size *= len(values)
    return size


def _candidate_at(name: str, space: Mapping[str, list[Any]], index: int) -> Candidate:
    params = {}
    for key in reversed(list(space)):   # mixed-radix decoding, the last parameter varying fastest
        values = space[key]
        index, digit = divmod(index, len(values))
        params[key] = values[digit]
    return Candidate(name, {k: params[k] for k in space})


def _candidates(spaces: list[tuple[str, dict[str, list[Any]]]], search: Any) -> tuple[Candidate, ...]:
    search = {"method": search} if isinstance(search, str) else dict(search or {"method": "grid"})
    method = search.pop("method", "grid")
    sizes = [_space_size(space) for _, space in spaces]
    total = sum(sizes)
    if method == "grid":
        if search:
            raise ValueError(f"grid: search 'grid' takes no options; got {sorted(search)}")
        indices = range(total)
    elif method == "random":
        budget, seed = search.pop("budget", None), search.pop("seed", 0)
        if search:
            raise ValueError(f"grid: unknown random-search option(s) {sorted(search)}; use budget and seed")
        if not isinstance(budget, int) or budget < 1:
            raise ValueError(f"grid: random search needs a positive integer budget; got {budget!r}")
        indices = sorted(random.Random(seed).sample(range(total), min(budget, total)))
    else:
        raise ValueError(f"grid: search method {method!r} is not known; use 'grid' or 'random'")
    out = []
    for index in indices:
        for (name, space), size in zip(spaces, sizes):
            if index < size:
                out.append(_candidate_at(name, space, index))
                break
            index -= size
    return tuple(out)


def _broker_keys() -> tuple[str, ...]:
    """The broker terms of a backtest: every ``BacktestConfig`` field but the strategy and its parameters."""
    return tuple(f.name for f in dataclasses.fields(BacktestConfig) if f.name not in ("strategy", "params"))


def _brokers(raw: Any) -> tuple[dict[str, Any], ...]:
    raw = raw or {}
    keys = _broker_keys()
    unknown = set(raw) - set(keys)
    if unknown:
        raise ValueError(f"grid: unknown broker key(s) {sorted(unknown)}; allowed: {list(keys)}")
    out = []
    for combo in _product(raw):
        BacktestConfig(**combo)   # validates
        out.append(combo)         # the terms given, so that fields added to BacktestConfig keep trial ids
    return tuple(out)


def load_grid(grid: str | Path | Mapping[str, Any]) -> SweepGrid:
    """Read a grid from a YAML file (path) or a mapping, validate it and expand it into a :class:`SweepGrid`."""
    if isinstance(grid, (str, Path)):
        import yaml

        path = Path(grid)
        if not path.is_file():
            raise ValueError(f"grid file {str(path)!r} does not exist")
        with path.open(encoding="utf-8") as fh:
            grid = yaml.safe_load(fh)
    if not isinstance(grid, Mapping):
        raise ValueError(f"a grid is a mapping of {sorted(_GRID_KEYS)}; got {type(grid).__name__}")
    unknown = set(grid) - _GRID_KEYS
    if unknown:
        raise ValueError(f"grid: unknown key(s) {sorted(unknown)}; allowed: {sorted(_GRID_KEYS)}")
    imports = tuple(str(m) for m in _choices(grid.get("imports") or []))
    for module in imports:
        importlib.import_module(module)
    seeds = tuple(_choices(grid.get("seed", 0)))
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ValueError(f"grid: seed must be an integer or a list of integers; got {grid.get('seed')!r}")
    metric = str(grid.get("metric", "sharpe"))
    if metric not in METRICS:
        raise ValueError(f"grid: metric {metric!r} is not one of {list(METRICS)}")
    candidates = _candidates(_strategy_spaces(grid), grid.get("search"))
    varied = tuple(dict.fromkeys(
        k for c in candidates for k in c.params
        if len({repr(o.params.get(k)) for o in candidates if k in o.params}) > 1))
    heatmap = grid.get("heatmap")
    if heatmap is not None:
        if not (isinstance(heatmap, Sequence) and len(heatmap) == 2 and all(h in varied for h in heatmap)):
            raise ValueError(f"grid: heatmap names two parameters that vary; got {heatmap!r}, varied: {list(varied)}")
        heatmap = (str(heatmap[0]), str(heatmap[1]))
    elif len(varied) >= 2:
        heatmap = (varied[0], varied[1])
    wf = grid.get("walk_forward")
    if wf is not None and not isinstance(wf, Mapping):
        raise ValueError("grid: walk_forward is a mapping of in_sample_bars, out_of_sample_bars, folds, anchored")
    try:
        split = WalkForwardSplit(**wf) if wf is not None else None
    except TypeError as exc:
        raise ValueError(f"grid: walk_forward: {exc}") from None
    return SweepGrid(data=_data_specs(grid.get("data", "sample")), candidates=candidates,
                     brokers=_brokers(grid.get("broker")), seeds=seeds, metric=metric, heatmap=heatmap,
                     walk_forward=split, imports=imports,
                     model_cache_dir=None if grid.get("model_cache_dir") is None else str(grid["model_cache_dir"]),
                     data_cache_dir=None if grid.get("data_cache_dir") is None else str(grid["data_cache_dir"]),
                     varied=varied)
