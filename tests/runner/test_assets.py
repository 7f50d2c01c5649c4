"""Several data sets in one backtest: alignment on common timestamps (inner join, one-line errors), and a portfolio
result whose per-asset P&L, fees and funding add up to the broker's totals at every bar (spot and perpetuals), with
positions that are the orders of the scripted forecasts; one frame runs exactly as before."""
import numpy as np
import pandas as pd
import pytest

from btdensity.evidence.replay import replay_indicator
from btdensity.feeds import synthetic_market
from btdensity.runner import BacktestConfig, backtest
from btdensity.runner.assets import align_frames, as_frames
from btdensity.runner.metrics import asset_figures, summarize

_Replay = replay_indicator("BNNUncertainty", ("mean", "std"))


class ScriptedForecast(_Replay):
    """BNNUncertainty's ``mean`` and ``std`` replayed from ``values[feed name]``."""

    def __init__(self):
        self.p.values = self.p.values[self.data._name]
        super().__init__()


def test_frames_are_inner_joined_on_their_timestamps():
    a = synthetic_market(100, seed=1)
    b = synthetic_market(100, seed=2).iloc[10:]                  # starts 10 bars later
    c = synthetic_market(120, seed=3).drop(synthetic_market(120, seed=3).index[[50, 51, 52]])   # a hole
    out = align_frames({"a": a, "b": b, "c": c})
    expected = a.index[10:].drop(a.index[[50, 51, 52]])
    assert all(frame.index.equals(expected) for frame in out.values()) and len(expected) == 87
    pd.testing.assert_frame_equal(out["b"], b.drop(a.index[[50, 51, 52]]))
    assert out["a"]["close"].iloc[0] == a["close"].iloc[10]      # rows keep their own values
    assert list(as_frames([a, b])) == ["asset0", "asset1"] and list(as_frames(a)) == ["data"]


def test_no_overlap_is_a_one_line_error_naming_the_data_set():
    a = synthetic_market(50, seed=1)
    late = synthetic_market(50, seed=2).set_axis(a.index + pd.Timedelta(days=30))
    with pytest.raises(ValueError, match=r"^data set 'late' \(.*\) shares no timestamp with 'a', 'b'") as err:
        align_frames({"a": a, "b": a.copy(), "late": late})
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"share 50 bars .*at least 60 are needed \(the warm-up\)$"):
        align_frames({"a": a, "b": a.copy()}, min_bars=60, need="the warm-up")
    with pytest.raises(ValueError, match="shares no timestamp"):       # backtest() aligns too
        backtest({"a": a, "late": late}, BacktestConfig("buy_and_hold"))


N = 400


def scripted_run(market="spot", **config):
    """A two-asset portfolio on scripted forecasts: stds 0.02 / 0.01 from bar 20, equal from bar 200."""
    frames = {"x": synthetic_market(N, seed=5), "y": synthetic_market(N, seed=6)}
    values = {name: np.full((N, 2), np.nan) for name in frames}
    values["x"][20:] = (0.004, 0.02)
    values["x"][200:] = (0.004, 0.01)
    values["y"][20:] = (0.004, 0.01)
    params = {"method": "risk_parity", "band": 0.05, "min_hold": 0, "forecast_halflife": 0,
              "replace": {"BNNUncertainty": (ScriptedForecast, values)}}
    return frames, backtest(frames, BacktestConfig("uncertainty_portfolio", params=params, market=market,
                                                   commission=0.001, **config))


@pytest.mark.parametrize("market, config", [("spot", {}), ("linear", {"leverage": 2.0, "funding": 0.0003})])
def test_asset_pnl_fees_and_funding_add_up_to_the_totals(market, config):
    frames, res = scripted_run(market, **config)
    assert res.assets == ("x", "y") and res.several
    total = res.asset_pnl.sum(axis=1)
    np.testing.assert_allclose(total.to_numpy(), res.values.to_numpy() - 10_000.0, rtol=0, atol=1e-6)
    assert res.asset_fees.sum() == pytest.approx(res.fees_paid, rel=1e-12) and res.fees_paid > 0
    assert res.asset_funding.sum() == pytest.approx(res.funding_paid, rel=1e-9)
    if market == "linear":   # a long pays a positive rate: both assets paid, in proportion to what they held
        assert (res.asset_funding > 0).all()
    if market == "spot":   # an asset's P&L between two bars without a fill: its position times the close's change
        pos, close = res.asset_positions["x"], frames["x"]["close"]
        quiet = (pos.diff() == 0) & (pos.shift() != 0)
        assert quiet.sum() > 300
        np.testing.assert_allclose(res.asset_pnl["x"].diff()[quiet], (pos.shift() * close.diff())[quiet],
                                   rtol=1e-9, atol=1e-9)


def test_positions_are_the_scripted_weights_filled_at_the_next_open():
    frames, res = scripted_run()
    pos = res.asset_positions
    changed = sorted(set(np.flatnonzero(pos.diff().fillna(pos).to_numpy().any(axis=1))))
    assert changed == [21, 201]                                 # decided at 20 and 200, filled at the next open
    value = res.values.to_numpy()
    for decided, weights in ((20, {"x": 0.95 / 3, "y": 0.95 * 2 / 3}), (200, {"x": 0.475, "y": 0.475})):
        for name, weight in weights.items():
            close = frames[name]["close"].iloc[decided]
            assert pos[name].iloc[decided + 1] == pytest.approx(weight * value[decided] / close, rel=1e-9)
    np.testing.assert_allclose(res.asset_weights.iloc[-1].sum(), 0.95, atol=0.03)
    assert res.positions.equals(pos["x"].rename(None)) and res.prices.equals(res.asset_prices["x"])
    # equal-weight buy-and-hold benchmark
    bench = 5_000.0 * sum(frames[n]["close"] / frames[n]["close"].iloc[0] for n in frames)
    np.testing.assert_allclose(res.benchmark.to_numpy(), bench.to_numpy(), rtol=1e-12)


def test_asset_figures_add_up_to_the_portfolio():
    _, res = scripted_run()
    summary = summarize(res, 10_000.0)
    assets = summary["assets"]
    assert assets == asset_figures(res, 10_000.0) and list(assets) == ["x", "y"]
    for key, total in (("pnl", summary["final_value"] - 10_000.0), ("total_return", summary["total_return"]),
                       ("fees_paid", summary["fees_paid"]), ("turnover_per_year", summary["turnover_per_year"]),
                       ("fees_per_year", summary["fees_per_year"]), ("funding_paid", summary["funding_paid"]),
                       ("n_trades", summary["n_trades"])):
        assert sum(a[key] for a in assets.values()) == pytest.approx(total, rel=1e-9, abs=1e-9), key
    # a sleeve's return is its P&L on the starting cash; its weight the mean share of the portfolio it held
    assert assets["y"]["total_return"] == pytest.approx(assets["y"]["pnl"] / 10_000.0, rel=1e-12)
    assert assets["y"]["avg_weight"] == pytest.approx(res.asset_weights["y"].mean(), rel=1e-12)
    assert 0.9 * (1 - 21 / N) < sum(a["avg_weight"] for a in assets.values()) < 0.96 * (1 - 21 / N)
    assert summary["volatility"] > 0 and summary["exposure"] == pytest.approx(1 - 21 / N)


def test_one_frame_in_a_list_or_a_mapping_is_the_single_asset_backtest():
    df = synthetic_market(600, seed=4)
    config = BacktestConfig("sma_cross", params={"fast": 10, "slow": 40})
    plain, listed, named = backtest(df, config), backtest([df], config), backtest({"btc": df}, config)
    for other in (listed, named):
        pd.testing.assert_series_equal(other.values, plain.values)
        pd.testing.assert_series_equal(other.positions, plain.positions)
        pd.testing.assert_frame_equal(other.trades, plain.trades)
        assert other.asset_positions is None and not other.several
    assert plain.assets == ("data",) and named.assets == ("btc",) and "assets" not in summarize(plain, 10_000.0)


@pytest.mark.parametrize("module", ["runner.assets", "runner.metrics", "strategies.portfolio", "cli_options",
                                    "reports.tearsheet"])
def test_doctests(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"btdensity.{module}"))
    assert result.failed == 0 and result.attempted > 0
