"""How fits run: n_jobs / $BTDENSITY_JOBS, warm start and device settings, on indicators and on the command line."""
import multiprocessing

import backtrader as bt
import pytest
import torch

from btdensity.cli_options import Parser, UserError, add_data_options, add_model_options, walk_forward
from btdensity.feeds import DataFrameFeed, synthetic_market
from btdensity.indicators import (BNNUncertainty, Energy, GarchForecast, LogDensity, MixtureDensity, Regime,
                                  WalkForwardSettings)
from btdensity.indicators.settings import resolve_device, resolve_jobs


def test_jobs_come_from_the_argument_the_environment_or_the_machine(monkeypatch):
    monkeypatch.delenv("BTDENSITY_JOBS", raising=False)
    assert resolve_jobs(3) == 3
    assert resolve_jobs() == len(__import__("os").sched_getaffinity(0))
    monkeypatch.setenv("BTDENSITY_JOBS", "5")
    assert resolve_jobs() == 5 and resolve_jobs(1) == 1
    monkeypatch.setenv("BTDENSITY_JOBS", "many")
    with pytest.raises(ValueError, match=r"\$BTDENSITY_JOBS must be a whole number"):
        resolve_jobs()
    monkeypatch.delenv("BTDENSITY_JOBS")
    monkeypatch.setattr(multiprocessing, "parent_process", lambda: object())   # a sweep's worker process
    assert resolve_jobs() == 1
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="n_jobs must be a positive whole number"):
            resolve_jobs(bad)


def test_settings_check_the_speed_options():
    s = WalkForwardSettings(n_jobs=2, warm_start=False, warm_epochs=0.5, device="cpu")
    params = s.indicator_params()
    assert (params["n_jobs"], params["warm_start"], params["warm_epochs"], params["device"]) == (2, False, 0.5, "cpu")
    with pytest.raises(ValueError, match="n_jobs must be a positive"):
        WalkForwardSettings(n_jobs=0)
    with pytest.raises(ValueError, match=r"warm_epochs is the share .* in \(0, 1\]"):
        WalkForwardSettings(warm_epochs=1.5)
    with pytest.raises(ValueError, match="device must be one of auto, cpu, cuda; got 'gpu'"):
        WalkForwardSettings(device="gpu")
    with pytest.raises(ValueError, match="did you mean 'n_jobs'"):
        WalkForwardSettings.from_mapping({"n_job": 2})


def indicators(df, **params):
    """Indicators built in a strategy, run on ``df`` (too short for a fit: no model is built)."""
    made = {}

    class Holder(bt.Strategy):
        def __init__(self):
            made["energy"] = Energy(self.data, cache_dir=None, **params)
            made["bnn"] = BNNUncertainty(self.data, cache_dir=None, **params)
            made["mixture"] = MixtureDensity(self.data, cache_dir=None, **params)
            made["garch"] = GarchForecast(self.data, cache_dir=None, **params)
            made["flow"] = LogDensity(self.data, cache_dir=None, **params)
            made["score"] = LogDensity(self.data, model="score", cache_dir=None, **params)
            made["regime"] = Regime(self.data, cache_dir=None, **params)

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(DataFrameFeed(dataname=df))
    cerebro.addstrategy(Holder)
    cerebro.run()
    return made


def test_windows_expand_where_the_indicator_says_so_unless_the_settings_decide():
    df = synthetic_market(n_bars=60, seed=0)
    default = WalkForwardSettings().indicator_params()
    assert default["expanding"] is None
    made = indicators(df, expanding=default["expanding"])
    # the forecasts read tail quantiles: every row so far; the density models the last train_bars rows
    assert {name: ind.spec.expanding for name, ind in made.items()} == {
        "energy": False, "bnn": True, "mixture": False, "garch": True, "flow": False, "score": False, "regime": False}
    for setting in (True, False):
        made = indicators(df, expanding=WalkForwardSettings(expanding=setting).indicator_params()["expanding"])
        assert {ind.spec.expanding for ind in made.values()} == {setting}
    with pytest.raises(ValueError, match="walk-forward setting expanding must be True, False or None"):
        WalkForwardSettings(expanding="yes")
    with pytest.raises(ValueError, match=r"Energy\(expanding='yes'\): True, False or None \(the indicator's "
                                         r"default, False\)"):
        indicators(df, expanding="yes")


def test_device_auto_is_cuda_when_present_and_cpu_keys_are_unchanged(monkeypatch):
    df = synthetic_market(60, seed=1)
    assert resolve_device("auto") == resolve_device("cpu") == "cpu"          # no GPU on this machine
    cpu = indicators(df, device="cpu")
    auto = indicators(df)                                                     # device="auto", the default
    for name in cpu:
        assert auto[name].device == "cpu" and auto[name]._config() == cpu[name]._config()
        assert "device" not in auto[name].model_kwargs                        # CPU cache keys as before
    with pytest.raises(ValueError, match="torch sees no CUDA GPU"):
        indicators(df, device="cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == resolve_device("cuda") == "cuda"
    gpu = indicators(df)
    for name in ("energy", "bnn"):                                           # the torch models move to CUDA ...
        assert gpu[name].device == "cuda" and gpu[name].model_kwargs["device"] == "cuda"
        assert gpu[name]._config() != cpu[name]._config()                    # ... and fit under their own keys
    assert gpu["mixture"].device == "cpu" and gpu["mixture"]._config() == cpu["mixture"]._config()


def test_warm_start_applies_to_torch_models_with_a_training_loop():
    df = synthetic_market(60, seed=1)
    made = indicators(df, warm_start=True)
    assert {name for name, ind in made.items() if ind._warm} == {"energy", "bnn", "flow", "score", "regime"}
    assert not any(ind._warm for ind in indicators(df, warm_start=False).values())
    # by default only where it was measured to help: the flow's density and the regime classifier
    default = indicators(df, warm_start=WalkForwardSettings().indicator_params()["warm_start"])
    assert {name for name, ind in default.items() if ind._warm} == {"flow", "regime"}
    with pytest.raises(ValueError, match=r"walk-forward setting warm_start must be True, False or None"):
        WalkForwardSettings(warm_start="yes")
    with pytest.raises(ValueError, match=r"warm_epochs=0\): the share of the epochs"):
        indicators(synthetic_market(60, seed=1), warm_epochs=0)


@pytest.mark.parametrize("argv, expected", [
    ([], dict(n_jobs=None, device="auto", expanding=None, warm_start=None)),
    (["--jobs", "3", "--no-warm-start", "--device", "cpu"], dict(n_jobs=3, warm_start=False, device="cpu")),
    (["--warm-start", "--expanding"], dict(warm_start=True, expanding=True)),
    (["--no-expanding"], dict(expanding=False)),
])
def test_command_line_speed_options(argv, expected):
    p = Parser()
    add_data_options(p)
    add_model_options(p)
    settings = walk_forward(p.parse_args(argv))
    for name, value in expected.items():
        assert getattr(settings, name) == value
    if "warm_start" not in expected:
        assert settings.warm_start == WalkForwardSettings().warm_start


@pytest.mark.parametrize("argv, message", [(["--jobs", "0"], "--jobs must be at least 1"),
                                           (["--jobs", "two"], "--jobs takes a whole number"),
                                           (["--device", "gpu"], "invalid choice: 'gpu'")])
def test_command_line_rejects_bad_speed_options(argv, message):
    p = Parser()
    add_data_options(p)
    add_model_options(p)
    with pytest.raises(UserError, match=message):
        p.parse_args(argv)
