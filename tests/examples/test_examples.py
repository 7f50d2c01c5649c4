"""The examples in ``examples/`` run at small sizes and give the numbers they promise.

The examples are scripts, not part of the package: each is loaded from its file under a module name of its own
(registered in ``sys.modules``, where backtrader looks classes up). Every model cache goes to ``tmp_path``.
"""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from btdensity.indicators.walkforward import FitCache
from btdensity.sweeps import load_grid, sweep

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(autouse=True)
def model_cache(tmp_path, monkeypatch):
    """A model cache of the test's own, also for anything that reads ``$BTDENSITY_CACHE``."""
    folder = tmp_path / "models"
    monkeypatch.setenv("BTDENSITY_CACHE", str(folder))
    return folder


@pytest.fixture
def load_example(monkeypatch):
    def load(name):
        spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, spec.name, module)
        spec.loader.exec_module(module)
        return module

    return load


def test_quickstart(load_example, model_cache, capsys):
    result = load_example("quickstart").main(bars=1500, train_bars=500, retrain_every=500, epochs=10,
                                             cache_dir=str(model_cache))
    assert np.isfinite(result["final_value"]) and result["final_value"] > 0
    assert 0 < result["gate_closed_share"] < 0.5
    assert f"gate closed on {result['gate_closed_share']:.1%}" in capsys.readouterr().out
    assert len(list(model_cache.glob("LogDensity-*.pt"))) == 2   # two fits (bars 548, 1048), cached
    assert len(list(model_cache.glob("Energy-*.pt"))) == 2


def test_models_alone(load_example):
    result = load_example("models_alone").main(n_train=1500, n_test=1000, flow_epochs=60, bnn_train=400,
                                               bnn_epochs=80)
    assert abs(result["flow_loglik"] - result["true_loglik"]) / 2 < 0.1     # nats per dimension
    assert 0.75 <= result["bnn_coverage"] <= 0.98                           # of the 90 % interval
    assert result["roundtrip_diff"] == 0.0


def test_custom_indicator(load_example, model_cache):
    example = load_example("custom_indicator")
    size = dict(bars=6000, train_bars=2000, retrain_every=500, cache_dir=str(model_cache), stationary=True)
    result = example.main(**size)
    first, pvalue = result["first_fit"], result["pvalue"]
    assert pvalue.shape == (6000,) and first == 2000 + 48           # the features' lookback, then a window
    assert np.isnan(pvalue[:first]).all() and np.isnan(result["distance"][:first]).all()
    assert np.isfinite(pvalue[first:]).all() and (pvalue[first:] > 0).all() and (pvalue[first:] <= 1).all()
    assert (result["distance"][first:] >= 0).all()
    window = slice(first, first + 500)      # one model: the farther the bar, the smaller its p-value
    order = np.argsort(result["distance"][window])
    assert (np.diff(pvalue[window][order]) <= 0).all() and np.ptp(pvalue[window]) > 0.5
    assert result["fits"] == -(-(6000 - first) // 500)
    # in distribution the p-values are about uniform
    assert 0.01 <= result["share_below_005"] <= 0.15
    assert 0.35 <= np.mean(pvalue[first:] < 0.5) <= 0.65
    assert np.isfinite(result["final_value"]) and result["final_value"] != 10_000   # it traded

    FitCache.forget()                       # a new process: the models come from the disk cache, unchanged
    again = example.main(**size)
    assert again["fits"] == 0
    np.testing.assert_array_equal(again["pvalue"], pvalue)


def test_grid_loads_and_runs(tmp_path):
    grid = load_grid(EXAMPLES / "grid.yaml")
    assert len(grid.candidates) == 6 and len(grid.brokers) == 2 and grid.seeds == (0, 1)
    assert grid.metric == "sharpe" and grid.heatmap == ("fast", "slow")
    assert grid.data[0]["source"] == "sample"

    raw = yaml.safe_load((EXAMPLES / "grid.yaml").read_text())
    raw.update(data={"source": "sample", "bars": 600}, params={"fast": [5, 10], "slow": 50}, seed=0,
               broker={"commission": 0.001})
    del raw["heatmap"]                      # only fast varies now
    result = sweep(raw, "local", out=tmp_path / "sweep", max_parallel=2, retries=0, report=False)
    table = pd.read_csv(result.paths["csv"])
    assert len(table) == 2 and (table["status"] == "ok").all()
    assert sorted(table["param.fast"]) == [5, 10] and (table["bars"] == 600).all()
    assert np.isfinite(table["sharpe"]).all() and (table["n_trades"] > 0).all()
