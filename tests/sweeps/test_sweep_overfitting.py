"""A sweep end to end through the CLI: coin-flip strategies (random long / short entries, no edge) on two
sample markets, and on the second market one candidate that peeks at the next bar (a planted edge). The
selection-bias figures reach sweep.csv, overfitting.csv, sweep.html and the printed summary; the noise
group's winner is not trusted, the planted edge is; a resumed sweep computes them from the stored returns."""
import json
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from btdensity import run_backtest
from btdensity.runner.metrics import daily_returns
from btdensity.sweeps.overfitting import deflated_sharpe_ratio, return_moments, sharpe_ratios
from btdensity.sweeps.returns import read_returns
from btdensity.sweeps.sweep import sweep

COIN = "sweep_coin_plugin"
COIN_SOURCE = textwrap.dedent('''
    import backtrader as bt
    import numpy as np
    from btdensity.strategies.registry import register_strategy

    @register_strategy("sweep_test_coin")
    class Coin(bt.Strategy):
        """Long or short 90 % at random every bar (``draw`` seeds the coin); on the market whose seed is
        ``peek_on_seed`` it reads the next close instead: long exactly when the next bar rises."""
        params = (("draw", 0), ("seed", 0), ("peek_on_seed", -1))

        def __init__(self):
            self.coin = np.random.default_rng(self.p.draw)

        def next(self):
            long = self.coin.random() < 0.5
            if self.p.seed == self.p.peek_on_seed and len(self.data) < self.data.buflen():
                long = self.data.close[1] > self.data.close[0]
            self.order_target_percent(target=0.9 if long else -0.9)
''')
NOISE_TRIALS = 8


@pytest.fixture(scope="module")
def coin_sweep(tmp_path_factory):
    base = tmp_path_factory.mktemp("coin")
    (base / f"{COIN}.py").write_text(COIN_SOURCE)
    sys.path.insert(0, str(base))
    grid = {"data": {"source": "sample", "bars": 400, "timeframe": "1d"}, "seed": [0, 1], "imports": [COIN],
            "broker": {"commission": 0.0},
            "strategies": [{"strategy": "sweep_test_coin", "params": {"draw": list(range(NOISE_TRIALS))}},
                           {"strategy": "sweep_test_coin", "params": {"draw": NOISE_TRIALS, "peek_on_seed": 1}}]}
    (base / "grid.yaml").write_text(json.dumps(grid))
    yield base
    sys.path.remove(str(base))


@pytest.fixture(scope="module")
def coin_cli(coin_sweep):
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = run_backtest.main(["sweep", "--grid", str(coin_sweep / "grid.yaml"), "--out",
                                  str(coin_sweep / "out"), "--max-parallel", "2"])
    assert code == 0
    return coin_sweep / "out", printed.getvalue()


def test_noise_is_not_trusted_and_a_planted_edge_is(coin_cli):
    out, _ = coin_cli
    figures = pd.read_csv(out / "overfitting.csv").set_index("seed")
    assert (figures["n_trials"] == NOISE_TRIALS + 1).all() and (figures["days"] == 400).all()
    noise, edge = figures.loc[0], figures.loc[1]
    assert noise["deflated_sharpe"] < 0.8 and noise["pbo"] >= 0.4
    assert json.loads(edge["params"]) == {"draw": NOISE_TRIALS, "peek_on_seed": 1}
    assert edge["deflated_sharpe"] > 0.95 and edge["pbo"] < 0.05
    assert (figures["pbo_blocks"] == 16).all() and (figures["pbo_splits"] == 12870).all()


def test_figures_reach_sweep_csv_the_report_and_the_cli(coin_cli):
    out, printed = coin_cli
    figures = pd.read_csv(out / "overfitting.csv")
    table = pd.read_csv(out / "sweep.csv")
    chosen = table[table["selected"]].set_index("trial_id")
    assert len(chosen) == 2 and sorted(chosen.index) == sorted(figures["trial_id"])
    assert table.loc[~table["selected"], ["deflated_sharpe", "pbo"]].isna().all().all()
    for row in figures.itertuples():
        assert chosen.loc[row.trial_id, "deflated_sharpe"] == pytest.approx(row.deflated_sharpe)
        assert chosen.loc[row.trial_id, "pbo"] == pytest.approx(row.pbo)
        assert chosen.loc[row.trial_id, "sharpe"] == pytest.approx(row.sharpe, rel=1e-5)   # float32 returns
        assert f"deflated Sharpe {row.deflated_sharpe:.2f}, PBO {row.pbo:.2f}" in printed
    assert "sample 1d seed 1 commission 0.0" in printed
    page = (out / "sweep.html").read_text()
    assert "Selection bias: deflated Sharpe ratio and probability of backtest overfitting" in page
    assert page.count("data:image/png;base64,") == 1          # the logit distributions (no heatmap: 1 varied)
    assert f"{figures['deflated_sharpe'].iloc[1]:.3f}" in page


def test_the_dsr_is_computed_from_daily_returns_of_the_stored_per_bar_returns(coin_cli):
    out, _ = coin_cli
    table = pd.read_csv(out / "sweep.csv")
    figures = pd.read_csv(out / "overfitting.csv").set_index("seed")
    group = table[table["seed"] == 0]
    days = pd.DataFrame({tid: daily_returns(100.0 * np.cumprod(1.0 + read_returns(out, tid).astype(float)), 100.0)
                         for tid in group["trial_id"]})
    srs = sharpe_ratios(days.to_numpy())
    best = group.loc[group["sharpe"].idxmax(), "trial_id"]
    assert best == figures.loc[0, "trial_id"]
    col = list(days.columns).index(best)
    assert srs * np.sqrt(365) == pytest.approx(group["sharpe"].to_numpy(), rel=1e-5)
    skew, kurt = return_moments(days[best].to_numpy())
    dsr = deflated_sharpe_ratio(srs[col], np.var(srs, ddof=1), len(srs), len(days), skew, kurt)
    assert figures.loc[0, "deflated_sharpe"] == pytest.approx(dsr, abs=1e-9)
    assert figures.loc[0, "skewness"] == pytest.approx(skew) and figures.loc[0, "kurtosis"] == pytest.approx(kurt)


def test_a_resumed_sweep_reads_the_stored_returns(coin_cli, coin_sweep):
    out, _ = coin_cli
    before = pd.read_csv(out / "overfitting.csv")
    again = sweep(coin_sweep / "grid.yaml", "local", out=out, max_parallel=2, report=False)
    assert again.computed == 0
    pd.testing.assert_frame_equal(pd.read_csv(again.paths["overfitting"]), before)
    victim = before["trial_id"].iloc[0]
    (out / "returns" / f"{victim}.parquet").unlink()            # a trial without its returns runs again
    third = sweep(coin_sweep / "grid.yaml", "local", out=out, max_parallel=2, report=False)
    assert third.computed == 1 and (out / "returns" / f"{victim}.parquet").exists()
    pd.testing.assert_frame_equal(pd.read_csv(third.paths["overfitting"]), before)
