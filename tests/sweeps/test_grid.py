"""Sweep grids and trial ids: expansion, random search, validation, stable hashing, scoring windows."""
import datetime as dt
import itertools

import numpy as np
import pytest

from btdensity.feeds.source import load_source
from btdensity.runner import BacktestConfig, backtest
from btdensity.sweeps.grid import WalkForwardSplit, load_grid
from btdensity.sweeps.trial import make_trial, score_window, trial_id


def test_full_grid_is_the_cartesian_product():
    g = load_grid({"data": [{"source": "sample", "bars": [300, 400]}], "strategy": "sma_cross",
                   "params": {"fast": [5, 10, 15], "slow": [30, 60], "short": True}, "seed": [0, 1]})
    assert [d["bars"] for d in g.data] == [300, 400]
    assert g.seeds == (0, 1)
    got = {(c.params["fast"], c.params["slow"], c.params["short"]) for c in g.candidates}
    assert got == set(itertools.product([5, 10, 15], [30, 60], [True]))
    assert len(g.candidates) == 6
    assert g.varied == ("fast", "slow")
    assert g.heatmap == ("fast", "slow")
    assert g.brokers == ({},)    # the broker terms given (none): BacktestConfig's defaults apply
    assert load_grid({"broker": {"commission": [0.001, 0.002], "cash": 500}}).brokers == (
        {"commission": 0.001, "cash": 500}, {"commission": 0.002, "cash": 500})


def test_random_search_draws_distinct_candidates_of_the_grid_within_budget():
    grid = {"strategies": [{"strategy": "sma_cross", "params": {"fast": list(range(2, 12)), "slow": [40, 80, 120]}},
                           {"strategy": "buy_and_hold", "params": {"target": [0.5, 0.9]}}],
            "search": {"method": "random", "budget": 7, "seed": 3}}
    full = {c.key for c in load_grid({**grid, "search": "grid"}).candidates}
    assert len(full) == 32
    a = load_grid(grid).candidates
    assert len(a) == 7 and len({c.key for c in a}) == 7
    assert {c.key for c in a} <= full
    assert [c.key for c in a] == [c.key for c in load_grid(grid).candidates]          # seeded
    assert [c.key for c in a] != [c.key for c in load_grid({**grid, "search": {**grid["search"], "seed": 4}}).candidates]
    everything = load_grid({**grid, "search": {"method": "random", "budget": 100}}).candidates
    assert {c.key for c in everything} == full


@pytest.mark.parametrize("grid, words", [
    ({"strategy": "sma_cross", "params": {"fastt": [1]}}, "fastt"),
    ({"strategy": "no_such_strategy"}, "no_such_strategy"),
    ({"metric": "profit"}, "profit"),
    ({"data": {"source": "sample", "colour": 1}}, "colour"),
    ({"broker": {"cash": -5}}, "cash"),
    ({"search": {"method": "random"}}, "budget"),
    ({"heatmap": ["fast", "target"], "params": {"fast": [5, 10], "slow": [50, 60]}}, "heatmap"),
    ({"walk_forward": {"in_sample_bars": 0, "out_of_sample_bars": 5}}, "in_sample_bars"),
    ({"seeds": [1]}, "seeds"),
])
def test_bad_grids_are_rejected_naming_the_problem(grid, words):
    with pytest.raises(ValueError, match=words):
        load_grid(grid)


def test_trial_id_is_stable_across_key_order_and_date_spellings():
    a = make_trial({"source": "sample", "since": None, "until": "2023-01-05T00:00:00+00:00", "bars": 300,
                    "timeframe": None}, "sma_cross", {"fast": 5, "slow": 20}, {"cash": 1e4}, 0)
    b = make_trial({"timeframe": None, "bars": 300, "until": "2023-01-05T00:00:00+00:00", "since": None,
                    "source": "sample"}, "sma_cross", {"slow": 20, "fast": 5}, {"cash": 10000.0}, 0)
    assert trial_id(a) == trial_id(b)
    assert len(trial_id(a)) == 16
    assert trial_id(a) != trial_id({**a, "params": {"fast": 6, "slow": 20}})
    assert trial_id(a) != trial_id({**a, "seed": 1})
    # YAML reads 2023-01-05 as a date; the grid normalises it to the same instant as the ISO string
    g1 = load_grid({"data": {"source": "sample", "until": dt.date(2023, 1, 5)}})
    g2 = load_grid({"data": {"source": "sample", "until": "2023-01-05T00:00"}})
    assert g1.data == g2.data and g1.data[0]["until"] == "2023-01-05T00:00:00+00:00"


def test_walk_forward_windows_are_consecutive_and_sized():
    split = WalkForwardSplit(in_sample_bars=200, out_of_sample_bars=100, folds=3)
    assert split.windows(1000) == [((500, 699), (700, 799)), ((600, 799), (800, 899)), ((700, 899), (900, 999))]
    anchored = WalkForwardSplit(200, 100, 3, anchored=True).windows(1000)
    assert all(is_[0] == 0 and is_[1] + 1 == oos[0] for is_, oos in anchored)
    with pytest.raises(ValueError, match="500 bars"):
        split.windows(499)


def test_score_window_rebases_equity_and_benchmark_at_the_bar_before_the_window():
    df = load_source("sample", bars=300, seed=2)
    result = backtest(df, BacktestConfig(params={"fast": 5, "slow": 20}))
    start = df.index[200]
    w = score_window(result, start.isoformat())
    v, b = result.values, result.benchmark
    assert len(w.values) == 100
    assert w.values.iloc[-1] / result.config.cash == pytest.approx(v.iloc[-1] / v.iloc[199], rel=1e-12)
    assert w.benchmark.iloc[-1] / result.config.cash == pytest.approx(df["close"].iloc[-1] / df["close"].iloc[199],
                                                                      rel=1e-12)
    assert w.exposure == pytest.approx(float((result.positions.iloc[200:] != 0).mean()))
    closes = np.array([np.datetime64(t) for t in result.trades["close"]])
    assert len(w.trades) == int((closes >= np.datetime64(start.tz_convert(None))).sum())
    assert score_window(result, None) is result


def test_dotted_names_set_keys_of_mapping_parameters_and_flatten_back():
    from btdensity.sweeps.trial import flatten_params, nest_params

    nested = nest_params({"walk_forward.train_bars": 500, "walk_forward": {"seed": 2, "fit_kwargs": {"epochs": 3}},
                          "walk_forward.fit_kwargs.lr": 0.01, "target": 0.5})
    assert nested == {"walk_forward": {"train_bars": 500, "seed": 2, "fit_kwargs": {"epochs": 3, "lr": 0.01}},
                      "target": 0.5}
    assert flatten_params(nested) == {"walk_forward.train_bars": 500, "walk_forward.seed": 2,
                                      "walk_forward.fit_kwargs.epochs": 3, "walk_forward.fit_kwargs.lr": 0.01,
                                      "target": 0.5}
    with pytest.raises(ValueError, match="not a mapping"):
        nest_params({"target": 0.5, "target.x": 1})
    # the grid accepts a dotted name when its first part is a parameter of the strategy
    with pytest.raises(ValueError, match="nope.x"):
        load_grid({"strategy": "sma_cross", "params": {"nope.x": [1, 2]}})


def test_trials_pass_their_seed_and_the_shared_model_cache_to_model_strategies():
    import backtrader as bt

    from btdensity.strategies.registry import register_strategy
    from btdensity.sweeps.trial import _strategy_params

    @register_strategy("sweep_grid_test_model_strategy")
    class ModelLike(bt.Strategy):
        params = (("walk_forward", None), ("seed", 0))

    got = _strategy_params("sweep_grid_test_model_strategy", {"walk_forward": {"train_bars": 300}}, 7, "/m")
    assert got == {"walk_forward": {"train_bars": 300, "seed": 7, "cache_dir": "/m"}, "seed": 7}
    own = _strategy_params("sweep_grid_test_model_strategy", {"walk_forward": {"seed": 1}, "seed": 2}, 7, None)
    assert own == {"walk_forward": {"seed": 1}, "seed": 2}
    assert _strategy_params("sma_cross", {"fast": 3}, 7, "/m") == {"fast": 3}
