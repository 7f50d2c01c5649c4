"""Scenario fans: paths from the model serving a bar, the realised path, bands and coverage, and the fan chart panel
(reports/scenario_figures.py) with its PNG and table."""
import doctest
import importlib

import numpy as np
import pandas as pd
import pytest

from btdensity.feeds import synthetic_market
from btdensity.indicators.scenarios import ScenarioFan, fan_bars, simulate_scenarios
from btdensity.reports.scenario_figures import SCENARIO_HEADING, fan_table, scenario_panel


@pytest.fixture(scope="module")
def fans_and_prices():
    df = synthetic_market(700, seed=4)
    fans = simulate_scenarios(df, horizon=6, n_paths=200, count=3, train_bars=240, retrain_every=200,
                              cache_dir=None, n_samples=64, model_kwargs={"n_layers": 2, "hidden": 16},
                              fit_kwargs={"epochs": 5})
    return df, fans


def test_fans_hold_paths_and_what_happened(fans_and_prices):
    df, fans = fans_and_prices
    assert len(fans) == 3 and [f.bar for f in fans] == fan_bars(48 + 240 + 6, len(df), 6, 3)
    close = df["close"].to_numpy()
    for fan in fans:
        assert fan.paths.shape == (200, 6) and np.isfinite(fan.paths).all()
        assert fan.time == df.index[fan.bar] and fan.close == close[fan.bar]
        np.testing.assert_allclose(fan.realized, np.log(close[fan.bar + 1:fan.bar + 7] / close[fan.bar]))
        lo, mid, hi = fan.bands((0.05, 0.5, 0.95))
        assert (lo <= mid).all() and (mid <= hi).all() and 0.0 <= fan.coverage() <= 1.0
    again = simulate_scenarios(df, times=[fans[1].time], horizon=6, n_paths=200, train_bars=240, retrain_every=200,
                               cache_dir=None, n_samples=64, model_kwargs={"n_layers": 2, "hidden": 16},
                               fit_kwargs={"epochs": 5})
    np.testing.assert_array_equal(again[0].paths, fans[1].paths)


def test_fan_bars_leave_room_for_the_realised_path():
    assert fan_bars(100, 200, 10, 3) == [100, 144, 189]      # round half to even
    assert fan_bars(195, 200, 10) == []


def test_scenario_panel_html(fans_and_prices):
    df, fans = fans_and_prices
    scenarios = {f.time: f.paths for f in fans}
    html = scenario_panel(df, scenarios)
    assert SCENARIO_HEADING in html and html.count("data:image/png;base64,") == 1 and "inside 90%" in html
    table = fan_table(df, scenarios)
    assert list(table["horizon"]) == [6, 6, 6] and table["inside 90%"].between(0, 1).all()
    assert fan_table(df, {fans[0].time: fans[0].paths})["realised (bp)"].iloc[0] == pytest.approx(
        1e4 * fans[0].realized[-1])
    assert "No scenarios" in scenario_panel(df, {})


def test_doctests():
    assert doctest.testmod(importlib.import_module("btdensity.indicators.scenarios")).failed == 0
    fan = ScenarioFan(pd.Timestamp("2024-01-01", tz="UTC"), 0, 1.0, np.zeros((3, 2)), np.array([np.nan, np.nan]))
    assert np.isnan(fan.coverage())
