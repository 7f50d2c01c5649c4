"""write_report: the tearsheet holds QuantStats' metrics and charts; summary figures match hand computation."""
import json
import re

import numpy as np
import pandas as pd
import pytest

from btdensity.feeds import synthetic_market
from btdensity.reports import write_report
from btdensity.runner import SUMMARY_KEYS, daily_returns, performance, periods_per_year
from btdensity.runner import BacktestConfig, backtest


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    res = backtest(synthetic_market(24 * 60, seed=2), BacktestConfig("sma_cross"))
    summary = write_report(res, out, title="unit test")
    paths = {p.stem: p for p in out.iterdir()}
    assert json.loads(paths["summary"].read_text()) == summary   # the summary returned is the one written
    return res, paths, summary


def test_files_written(report):
    _, paths, _ = report
    for name in ("tearsheet", "summary", "plot"):
        assert paths[name].exists() and paths[name].stat().st_size > 500
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tearsheet_has_metrics_table_charts_and_benchmark(report):
    _, paths, summary = report
    html = paths["tearsheet"].read_text()
    assert "Key Performance Metrics" in html and "Sharpe" in html and "Max Drawdown" in html
    assert html.count("<svg") >= 8                        # the charts, inline
    assert "Buy &amp; hold" in html or "Buy & hold" in html
    assert not re.search(r'(src|href)="https?://[^"]*\.(ico|js|css|png)', html)  # nothing to fetch
    assert f"{summary['sharpe']:.2f}" in html              # the summary's Sharpe is the tearsheet's
    assert f"Trading: turnover {summary['turnover_per_year']:.1f}× the average equity a year" in html


#: summary.json's figures as the README lists them, written out here (not read from the code)
README_SUMMARY_KEYS = ["final_value", "total_return", "cagr", "sharpe", "sortino", "max_drawdown", "calmar",
                       "n_trades", "win_rate", "exposure", "turnover_per_year", "fees_per_year", "avg_holding_days",
                       "bars", "start", "end", "runtime_s", "benchmark"]
#: "the same performance figures of buy-and-hold under ``benchmark``"
README_BENCHMARK_KEYS = ["final_value", "total_return", "cagr", "sharpe", "sortino", "max_drawdown", "calmar"]


def test_summary_has_the_readme_keys_all_finite(report):
    res, _, summary = report
    assert set(README_SUMMARY_KEYS) <= set(summary), sorted(set(README_SUMMARY_KEYS) - set(summary))
    assert set(README_SUMMARY_KEYS) <= set(SUMMARY_KEYS)   # the code's constant promises them too
    for key in README_SUMMARY_KEYS:
        if key in ("start", "end"):
            assert pd.Timestamp(summary[key]).tz is not None, key   # an unambiguous instant
        elif key == "benchmark":
            assert sorted(summary[key]) == sorted(README_BENCHMARK_KEYS)
            for name in README_BENCHMARK_KEYS:
                v = summary[key][name]
                assert isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v), name
        else:
            v = summary[key]
            assert isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v), key
    assert isinstance(summary["n_trades"], int) and isinstance(summary["bars"], int)
    assert pd.Timestamp(summary["start"]) == res.values.index[0]
    assert pd.Timestamp(summary["end"]) == res.values.index[-1]
    assert summary["runtime_s"] > 0 and 0.0 <= summary["exposure"] <= 1.0 and 0.0 <= summary["win_rate"] <= 1.0
    assert summary["max_drawdown"] <= 0.0 and summary["benchmark"]["max_drawdown"] <= 0.0


def test_summary_keys_finite_and_consistent(report):
    res, _, summary = report
    assert set(SUMMARY_KEYS) <= set(summary)
    for key in SUMMARY_KEYS:
        if key in ("start", "end"):
            assert pd.Timestamp(summary[key]).tz is not None
        elif key == "benchmark":
            assert all(np.isfinite(v) for v in summary[key].values())
        else:
            assert np.isfinite(summary[key]), key
    assert summary["bars"] == 24 * 60
    assert summary["final_value"] == pytest.approx(res.values.iloc[-1])
    assert summary["benchmark"]["total_return"] == pytest.approx(res.benchmark.iloc[-1] / 10_000 - 1)
    assert summary["n_trades"] == len(res.trades) > 0
    assert summary["win_rate"] == pytest.approx((res.trades["pnlcomm"] > 0).mean())


def test_daily_returns_compound_intraday_returns():
    idx = pd.date_range("2024-01-06", periods=48, freq="1h", tz="UTC")   # a Saturday and a Sunday
    values = pd.Series(100.0 * 1.01 ** np.arange(1, 49), index=idx)
    daily = daily_returns(values, 100.0)
    np.testing.assert_allclose(daily.to_numpy(), [1.01 ** 24 - 1, 1.01 ** 24 - 1])
    assert periods_per_year(idx) == 365
    assert periods_per_year(pd.date_range("2024-01-01", periods=5, freq="B", tz="UTC")) == 252


def test_performance_against_hand_computation():
    idx = pd.date_range("2024-01-01", periods=4, freq="1D", tz="UTC")
    values = pd.Series([110.0, 99.0, 108.9, 119.79], index=idx)     # +10 %, -10 %, +10 %, +10 %
    perf = performance(values, 100.0, 365)
    r = np.array([0.1, -0.1, 0.1, 0.1])
    assert perf["total_return"] == pytest.approx(0.1979)
    assert perf["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(365))
    assert perf["max_drawdown"] == pytest.approx(-0.1)
    assert perf["cagr"] == pytest.approx(1.1979 ** (365 / 4) - 1)
    flat = performance(pd.Series(100.0, index=idx), 100.0, 365)
    assert flat["sharpe"] == 0.0 and flat["max_drawdown"] == 0.0 and flat["calmar"] == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_performance_ratios_equal_quantstats(seed):
    """summary.json's ratios are computed without QuantStats (its import costs the run a second and a half) but
    must be the tearsheet's: same definitions, same numbers."""
    import quantstats as qs

    from btdensity.runner.metrics import daily_returns

    rng = np.random.default_rng(seed)
    idx = pd.date_range("2024-01-01", periods=24 * 400, freq="1h", tz="UTC")
    steps = rng.standard_t(4, idx.size) * 0.01 + 0.0002
    steps[rng.random(idx.size) < 0.3] = 0.0                      # flat bars, as a strategy out of the market has
    values = pd.Series(1000.0 * np.exp(np.cumsum(steps)), index=idx)
    perf = performance(values, 1000.0, 365)
    rets = daily_returns(values, 1000.0)
    assert perf["sharpe"] == pytest.approx(qs.stats.sharpe(rets, periods=365), rel=1e-12)
    assert perf["sortino"] == pytest.approx(qs.stats.sortino(rets, periods=365), rel=1e-12)
    assert perf["cagr"] == pytest.approx(qs.stats.cagr(rets, periods=365), rel=1e-12)
    assert perf["max_drawdown"] == pytest.approx(qs.stats.max_drawdown(rets), rel=1e-12)


def test_a_strategy_that_never_trades_still_gets_a_tearsheet(tmp_path):
    from btdensity.reports.tearsheet import FLAT_NOTE, write_tearsheet

    idx = pd.date_range("2023-01-01", periods=60, freq="D")
    bench = pd.Series(np.random.default_rng(0).normal(0, 0.01, 60), index=idx)
    path = write_tearsheet(tmp_path / "t.html", pd.Series(0.0, index=idx), bench, 365, "flat")
    html = path.read_text()
    assert FLAT_NOTE in html and "Key Performance Metrics" in html


def test_trading_figures_against_hand_computation():
    """Two round trips of 0.5 coin at 100 on two days of hourly bars, equity 100 throughout, 2 of fees."""
    from types import SimpleNamespace

    from btdensity.runner.metrics import trading_figures

    idx = pd.date_range("2024-01-06", periods=48, freq="1h", tz="UTC")     # a weekend: 365 days a year
    positions = pd.Series(0.0, index=idx)
    positions.iloc[2:8] = 0.5                                               # 6 bars
    positions.iloc[20:22] = -0.5                                            # 2 bars
    result = SimpleNamespace(positions=positions, prices=pd.DataFrame({"close": 100.0}, index=idx),
                             values=pd.Series(100.0, index=idx), fees_paid=2.0)
    years = 48 / (365 * 24)
    figures = trading_figures(result)
    assert figures["turnover_per_year"] == pytest.approx(4 * 50.0 / 100.0 / years)   # 4 fills of 50
    assert figures["fees_per_year"] == pytest.approx(2.0 / 100.0 / years)
    assert figures["avg_holding_days"] == pytest.approx((6 + 2) / 2 / 24)
    assert trading_figures(SimpleNamespace(values=result.values)) == {}            # a sweep's window: none


def test_plot_titles_and_spiky_panels(report):
    from btdensity.reports.plot import robust_limits

    res, _, _ = report
    labels = {type(o).__name__: o.plotlabel() for o in res.strategy.getobservers()}
    assert labels == {"Value": "Portfolio value", "BuySell": "Orders"}
    spiky = np.r_[np.random.default_rng(0).normal(0, 1, 5000), 1200.0]     # a score direction's crash-bar spike
    low, high = robust_limits(spiky, marks=(0.0,))
    assert -4 < low < -2 and 2 < high < 4
    assert robust_limits(np.random.default_rng(0).normal(0, 1, 5000)) is None
