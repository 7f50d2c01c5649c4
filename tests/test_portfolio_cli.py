"""run_backtest.py with several data sets: repeated --data and comma lists, two sample markets, the portfolio report
(per-asset figures that add up to the total, assets.csv, the tearsheet's asset table, the printed table), and one-line
errors for data sets that do not overlap or overlap too little."""
import contextlib
import io
import json

import pandas as pd
import pytest

from btdensity import run_backtest
from btdensity.cli_options import asset_name, data_specs
from btdensity.feeds import synthetic_market

#: two sample markets, 1000 bars, small walk-forward windows, few epochs: two fits per asset
PORTFOLIO = ["--data", "sample", "--data", "sample:seed=7", "--bars", "1000", "--train-bars", "250",
             "--retrain-every", "400", "--strategy", "uncertainty_portfolio", "--param", "method=risk_parity",
             "--param", "walk_forward={'fit_kwargs': {'epochs': 6}}", "--jobs", "1", "--no-plot"]


@pytest.fixture(scope="module")
def portfolio(tmp_path_factory):
    cache = tmp_path_factory.mktemp("portfolio-cache")
    out = tmp_path_factory.mktemp("portfolio")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(io.StringIO()):   # (progress bars)
        assert run_backtest.main(PORTFOLIO + ["--cache-dir", str(cache), "--out", str(out)]) == 0
    return cache, out, json.loads((out / "summary.json").read_text()), printed.getvalue()


def test_the_report_has_per_asset_figures_that_add_up_to_the_total(portfolio):
    _, out, summary, _ = portfolio
    assets = summary["assets"]
    assert list(assets) == ["sample", "sample:seed=7"] and summary["bars"] == 1000
    # two different markets: their own buy-and-hold returns
    assert assets["sample"]["buy_and_hold_return"] != assets["sample:seed=7"]["buy_and_hold_return"]
    assert sum(a["pnl"] for a in assets.values()) == pytest.approx(summary["final_value"] - 10_000.0, abs=1e-6)
    assert sum(a["total_return"] for a in assets.values()) == pytest.approx(summary["total_return"], abs=1e-10)
    for key in ("fees_paid", "turnover_per_year", "fees_per_year"):
        assert sum(a[key] for a in assets.values()) == pytest.approx(summary[key], rel=1e-9), key
    # risk parity at a gross exposure of 0.95 (drifting between rebalances) on the bars after the first fills
    gross = sum(a["avg_weight"] for a in assets.values()) / summary["exposure"]
    assert summary["fees_paid"] > 0 and 0.9 < gross < 0.97 and summary["exposure"] < 0.75
    table = pd.read_csv(out / "assets.csv", index_col="asset")
    assert list(table.index) == ["sample", "sample:seed=7", "total"]
    assert table.loc["total", "pnl"] == pytest.approx(summary["final_value"] - 10_000.0, rel=1e-9)
    assert table.loc["total", "sharpe"] == pytest.approx(summary["sharpe"], rel=1e-9)
    assert table.loc["sample", "volatility"] == pytest.approx(assets["sample"]["volatility"], rel=1e-9)
    page = (out / "tearsheet.html").read_text()
    assert page.count('class="assets"') == 1 and "<td>sample:seed=7</td>" in page and "<td>total</td>" in page
    assert (out / "diagnostics.html").exists()          # of the first asset


def test_the_printed_table_has_a_row_per_asset_and_the_total(portfolio):
    _, _, summary, printed = portfolio
    rows = {line.split()[0]: line for line in printed.splitlines() if line.split()}
    assert {"sample", "sample:seed=7", "total"} <= set(rows)
    assert f"{summary['assets']['sample']['total_return']:+.2%}" in rows["sample"]
    assert f"{summary['total_return']:+.2%}" in rows["total"]


def test_repeated_data_and_comma_lists_name_the_assets():
    assert data_specs(["sample", "sample:seed=7,a/b/eth.csv", "bybit:BTC/USDT:USDT"]) == [
        "sample", "sample:seed=7", "a/b/eth.csv", "bybit:BTC/USDT:USDT"]
    assert [asset_name(s) for s in data_specs("sample:seed=7,a/b/eth.csv,bybit:BTC/USDT:USDT")] == [
        "sample:seed=7", "eth", "BTC/USDT:USDT"]
    assert data_specs(None) == ["sample"]     # the default run: the sample market, as before


@pytest.mark.parametrize("extra, message", [
    (["--data", "sample", "--data", "LATE"], "--data: data set 'late' ("),
    (["--data", "sample,sample:seed=3", "--strategy", "uncertainty_portfolio"],
     "share 300 bars (2023-01-01 00:00:00+00:00 .. 2023-01-13 11:00:00+00:00); at least 2194 are needed "
     "(the walk-forward's warm-up with --train-bars 2000)"),
    (["--data", "sample:seed=x,sample"], "'sample:seed=x': the sample market takes 'sample' or 'sample:seed=N'"),
    (["--data", "sample", "--data", "sample"], "--data sample is given twice"),
    (["--data", "sample,,sample:seed=2"], "--data has an empty data set"),
    (["--data", "sample,sample:seed=2", "--live"], "--live paper-trades one data set"),
])
def test_several_data_set_errors_are_one_line(tmp_path, capsys, extra, message):
    late = tmp_path / "late.csv"
    df = synthetic_market(300, seed=5)[["open", "high", "low", "close", "volume"]]
    df.set_axis(df.index + pd.Timedelta(days=400)).to_csv(late)
    args = [str(late) if a == "LATE" else a for a in extra]
    code = run_backtest.main(["--out", str(tmp_path / "o"), "--bars", "300", "--no-plot", *args])
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("run_backtest.py: error:") and message in lines[0], lines
