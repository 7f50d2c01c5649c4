"""Model strategies on the synthetic market: the default follows its core under the risk overlay and pays little in
fees; the smooth gate scales it down on scripted lines; every strategy runs end to end."""
import json

import numpy as np
import pytest

from btdensity import run_backtest
from btdensity.feeds import synthetic_market
from btdensity.evidence.replay import replay_indicator
from btdensity.strategies import STRATEGIES
from btdensity.runner import BacktestConfig, backtest
from btdensity.runner.metrics import summarize

SMALL = {"train_bars": 600, "retrain_every": 800, "quiet": True, "fit_kwargs": {"epochs": 15}}


@pytest.fixture(scope="module")
def gated(tmp_path_factory):
    df = synthetic_market(3000, seed=0, anomaly_rate=0.008)
    cache = tmp_path_factory.mktemp("gated-cache")
    config = BacktestConfig("density_gated", params={"diagnostics": False}, commission=0.001,
                            walk_forward={**SMALL, "cache_dir": cache})
    return df, backtest(df, config)


def test_density_gated_follows_its_trend_core_sized_by_the_overlay(gated):
    """Entries only where the trend core is up; every position is target x the risk scale of the bar it was decided
    on (filled at the next open); long only."""
    df, res = gated
    s = res.strategy
    pos, close, value = res.positions.to_numpy(), df["close"].to_numpy(), res.values.to_numpy()
    scale = np.asarray(s.risk.scale.array)[:len(df)]
    changed = np.flatnonzero(np.diff(pos) != 0)          # decided on these bars, filled on the next
    assert len(changed) >= 4 and (pos >= 0).all()
    for d in changed:
        gap = close[d - 23:d + 1].mean() - close[d - 167:d + 1].mean()
        if pos[d] == 0:                                  # an entry: the trend is up
            assert gap > 0
        if pos[d + 1] > 0:                               # the size: target x scale of the decision bar
            assert pos[d + 1] == pytest.approx(0.95 * scale[d] * value[d] / close[d], rel=1e-9)


def test_density_gated_pays_little_in_fees_and_holds_for_days(gated):
    _, res = gated
    summary = summarize(res, 10_000.0)
    assert 0 < summary["fees_per_year"] < 0.10 and summary["avg_holding_days"] > 1.0
    assert len(np.flatnonzero(np.diff(res.positions.to_numpy()))) < 3000 / 24


def test_density_gated_scales_down_while_the_smooth_gate_is_closed():
    """Scripted model lines (no fitting): a density p-value that closes the gate at bar 300, hovers at the reopen
    level (2 alpha) until bar 400 and is high after: with closed_scale=0 the position is 0 from the fill after bar
    300 until the gate reopens on the third bar above it (reopen_bars), bar 402."""
    df = synthetic_market(600, seed=1)
    p = np.full(len(df), 1.0)
    p[300:311], p[311:400] = 0.01, 0.1
    density = np.column_stack([np.zeros(len(df)), p, (p > 0.05).astype(float), np.full(len(df), np.nan)])
    energy = np.zeros((len(df), 3))
    density[:50] = energy[:50] = np.nan
    swap = {"LogDensity": (replay_indicator("LogDensity", ("logp", "pvalue", "gate", "smooth_gate")), density),
            "Energy": (replay_indicator("Energy", ("energy", "zscore", "pvalue")), energy)}
    res = backtest(df, BacktestConfig("density_gated", commission=0.001, params={
        "core": "hold", "vol": "none", "closed_scale": 0.0, "diagnostics": False, "replace": swap}))
    pos = res.positions.to_numpy()
    assert (pos[51:301] > 0).all() and (pos[301:403] == 0).all() and (pos[403:] > 0).all()
    assert len(np.flatnonzero(np.diff(pos))) == 3      # in, out, in again: the flicker at 300-310 is one trade


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_registered_strategy_runs_end_to_end(name, tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "shared-cli-cache"
    out = tmp_path_factory.mktemp(f"out-{name}")
    args = ["--strategy", name, "--bars", "1500", "--train-bars", "400", "--retrain-every", "600",
            "--cache-dir", str(cache), "--out", str(out), "--quiet"]
    if name != "density_gated":
        args.append("--no-plot")
    assert run_backtest.main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["bars"] == 1500 and (out / "tearsheet.html").stat().st_size > 10_000
    assert np.isfinite(summary["final_value"]) and summary["final_value"] > 0
    if name == "density_gated":
        assert (out / "plot.png").stat().st_size > 10_000
    model_strategy = name not in ("buy_and_hold", "sma_cross")
    assert (out / "diagnostics.html").exists() == model_strategy
    if model_strategy:  # the model figures of summary.json, and a page with its panels as embedded images
        assert 0.0 <= summary["time_in_market"] <= 1.0
        page = (out / "diagnostics.html").read_text()
        assert page.count("data:image/png;base64,") >= 1


def test_regime_filter_reads_the_jems_own_classes():
    """regime_filter enters in the ``bull`` regime: it reads Regime(pool=False), whose most probable class is bull
    far more often than the pooled Regime's (the classical forecasts split the directional mass)."""
    import backtrader as bt

    from btdensity.feeds import DataFrameFeed
    from btdensity.indicators import Regime

    class WithPooled(STRATEGIES["regime_filter"]):
        def __init__(self):
            super().__init__()
            self.pooled = self.model(Regime)

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(DataFrameFeed(dataname=synthetic_market(3000, seed=0)))
    cerebro.addstrategy(WithPooled, walk_forward={**SMALL, "cache_dir": None})
    strat = cerebro.run()[0]
    assert strat.regime.p.pool is False and strat.pooled.p.pool is True

    def bull_share(ind):
        regime = np.asarray(ind.regime.array)
        return np.mean(regime[np.isfinite(regime)] == 0)

    assert bull_share(strat.regime) >= 0.05 and bull_share(strat.pooled) <= 0.5 * bull_share(strat.regime)


def test_bad_strategy_parameters_are_named(tmp_path):
    df = synthetic_market(300)
    with pytest.raises(ValueError, match="core"):
        backtest(df, BacktestConfig("density_gated", params={"core": "tea leaves"},
                                    walk_forward={"cache_dir": tmp_path}))
    with pytest.raises(ValueError, match="brackets"):
        backtest(df, BacktestConfig("density_gated", params={"stop_loss": 0.02}, walk_forward={"cache_dir": tmp_path}))
    with pytest.raises(ValueError, match="enter_z"):
        backtest(df, BacktestConfig("density_gated", params={"enter_z": 4, "exit_z": 3},
                                    walk_forward={"cache_dir": tmp_path}))
    with pytest.raises(ValueError, match="stop_loss"):
        backtest(df, BacktestConfig("score_momentum", params={"stop_loss": 2.0},
                                    walk_forward={"cache_dir": tmp_path}))


@pytest.mark.parametrize("name, params, zero_mean", [
    ("density_gated", {}, True),                    # the BNN only on the diagnostics page: the default forecast
    ("density_gated", {"vol": "bnn"}, True),        # its std sizes the position
    ("density_gated", {"core": "bnn"}, False),      # the core trades the sign of its mean
    ("density_gated", {"edge": "bnn"}, False),      # the cost-aware entry reads its mean
    ("bnn_confidence", {}, False),
    ("uncertainty_portfolio", {}, False),           # mean-variance weights
])
def test_strategies_that_trade_the_bnns_mean_ask_for_it(name, params, zero_mean):
    """BNNUncertainty's forecast is centred at zero by default; a strategy that reads its mean asks for the
    network's (too few bars for a fit: only the indicators are built)."""
    import backtrader as bt

    from btdensity.feeds import DataFrameFeed

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(DataFrameFeed(dataname=synthetic_market(200, seed=0)))
    cerebro.addstrategy(STRATEGIES[name], walk_forward={**SMALL, "cache_dir": None}, **params)
    strat = cerebro.run()[0]
    assert strat.uncertainty.p.zero_mean is zero_mean
