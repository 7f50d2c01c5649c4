"""uncertainty_portfolio on scripted forecasts: exactly the expected orders in both methods (band, long-only exit,
decreases before increases), weights against hand computation, one feed; the multi-task indicator keeps the
walk-forward contract (NaN before the first fit, exact truncation invariance in both modes, mode parity) and shares
one fit per window between its assets."""
import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from btdensity.evidence.replay import replay_indicator
from btdensity.feeds import DataFrameFeed, synthetic_market
from btdensity.indicators.walkforward import FitCache
from btdensity.runner import BacktestConfig, backtest
from btdensity.strategies import BybitBroker, BybitCommission
from btdensity.strategies.portfolio import MultiTaskUncertainty, UncertaintyPortfolio, portfolio_weights

NAN = float("nan")
_Replay = replay_indicator("BNNUncertainty", ("mean", "std"))


class ScriptedForecast(_Replay):
    """BNNUncertainty's ``mean`` and ``std`` lines replayed from ``values[feed name]`` (rows: bars)."""

    def __init__(self):
        self.p.values = self.p.values[self.data._name]
        super().__init__()


class Recorder(UncertaintyPortfolio):
    """Records every order it sends: (bar, asset, target), in the order sent."""

    def __init__(self):
        super().__init__()
        self.sent = []

    def order_target_percent(self, data=None, target=0.0, **kwargs):
        self.sent.append((len(self) - 1, data._name, round(target, 12)))
        return super().order_target_percent(data=data, target=target, **kwargs)


def bars(n, seed):
    """Bars whose open is the previous close: an order sized at a close fills at that price."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    opens = np.r_[close[0], close[:-1]]
    idx = pd.date_range("2024-05-01", periods=n, freq="1h", tz="UTC")
    return pd.DataFrame({"open": opens, "high": np.maximum(opens, close) * 1.001,
                         "low": np.minimum(opens, close) * 0.999, "close": close, "volume": 1e6}, index=idx)


def script(n, phases):
    """Rows ``(mean, std)`` per bar from ``[(first bar, mean, std), ...]``; NaN before the first phase."""
    out = np.full((n, 2), NAN)
    for start, mean, std in phases:
        out[start:] = (mean, std)
    return out


#: asset A's std rises inside the band at bar 20, falls to B's at 35; A's mean turns negative at 50
N = 60
SCRIPTS = {"A": script(N, [(5, 0.004, 0.02), (20, 0.004, 0.021), (35, 0.004, 0.01), (50, -0.004, 0.01)]),
           "B": script(N, [(5, 0.004, 0.01)])}


def run(method, scripts=SCRIPTS, runonce=True, **params):
    cerebro = bt.Cerebro(stdstats=False, runonce=runonce)
    for seed, name in enumerate(scripts):
        cerebro.adddata(DataFrameFeed(dataname=bars(N, seed)), name=name)
    params = {"band": 0.05, "min_hold": 0, "forecast_halflife": 0, "signal_hold": 0, **params}
    cerebro.addstrategy(Recorder, method=method, replace={"BNNUncertainty": (ScriptedForecast, scripts)}, **params)
    cerebro.setbroker(BybitBroker(cash=10_000.0))
    cerebro.broker.addcommissioninfo(BybitCommission(market="spot", taker=0.001, maker=0.001))
    return cerebro.run()[0]


def test_weights_against_hand_computation():
    mean, std = [0.003, -0.001, 0.002], [0.03, 0.01, 0.02]
    # mean / std^2: 3.333, -10, 5; long only: 3.333, 0, 5 of 8.333; long-short: of 18.333 (gross)
    np.testing.assert_allclose(portfolio_weights(mean, std, gross=1.0), [0.4, 0.0, 0.6], rtol=1e-12)
    np.testing.assert_allclose(portfolio_weights(mean, std, gross=1.0, long_only=False),
                               np.array([10 / 3, -10, 5]) / (55 / 3), rtol=1e-12)
    # risk aversion 500: 0.00667, 0, 0.01 (sum below the cap: kept); 50: 0.0667, 0, 0.1
    np.testing.assert_allclose(portfolio_weights(mean, std, risk_aversion=500.0), [1 / 150, 0.0, 0.01], rtol=1e-12)
    # risk aversion 1: 3.33 + 5 above the cap 0.8: scaled to it
    np.testing.assert_allclose(portfolio_weights(mean, std, gross=0.8, risk_aversion=1.0), [0.32, 0.0, 0.48],
                               rtol=1e-12)
    # risk parity: 1/std = 33.3, 100, 50 of 183.3
    np.testing.assert_allclose(portfolio_weights(mean, std, "risk_parity", gross=1.1),
                               1.1 * np.array([1 / 0.03, 100, 50]) / (1 / 0.03 + 150), rtol=1e-12)
    assert np.isnan(portfolio_weights([0.001, NAN], [0.01, 0.01])).all()
    assert np.isnan(portfolio_weights([0.001, 0.001], [0.01, 0.0], "risk_parity")).all()
    assert portfolio_weights([-0.001, -0.002], [0.01, 0.01]).tolist() == [0.0, 0.0]   # all negative: cash
    with pytest.raises(ValueError, match="method='kelly'"):
        portfolio_weights([0.001], [0.01], "kelly")


@pytest.mark.parametrize("runonce", [True, False])
def test_mean_variance_orders_are_exactly_the_expected_ones(runonce):
    s = run("mean_variance", runonce=runonce)
    # 5: A 10 : B 40 of 0.95 -> 0.19 / 0.76; 20: A's weight moves 0.19 -> 0.1756 (inside the band): nothing;
    # 35: 40 : 40 -> 0.475 each, B's decrease sent first; 50: A's mean < 0 -> A out (long only), B takes 0.95
    assert s.sent == [(5, "A", 0.19), (5, "B", 0.76), (35, "B", 0.475), (35, "A", 0.475),
                      (50, "A", 0.0), (50, "B", 0.95)]


def test_risk_parity_orders_are_exactly_the_expected_ones():
    s = run("risk_parity")
    w5 = 0.95 * np.array([50.0, 100.0]) / 150.0        # 1 / std
    # 20: A 1/0.021 = 47.6 -> 0.3065 (0.010 from 0.3167: inside the band); 35: equal stds -> 0.475 each;
    # 50: the means are not used: nothing
    assert s.sent == [(5, "A", round(w5[0], 12)), (5, "B", round(w5[1], 12)), (35, "B", 0.475), (35, "A", 0.475)]


def test_cost_aware_entries_and_band_in_mean_variance():
    """An entry whose forecast gain does not beat the round-trip cost (2 x 0.1 %, plus the 50 % margin) waits."""
    scripts = {"A": script(N, [(5, 0.002, 0.01), (10, 0.004, 0.01)]), "B": script(N, [(5, 0.004, 0.01)])}
    s = run("mean_variance", scripts=scripts)
    # 5: A's edge 0.002 < 0.003: A waits; B enters at its weight, 0.95 x 40 / (20 + 40) (A counts in the weights);
    # 10: A's edge 0.004: A enters at 0.475, B is cut to 0.475 first (a decrease needs no edge)
    assert s.sent == [(5, "B", round(0.95 * 2 / 3, 12)), (10, "B", 0.475), (10, "A", 0.475)]


def test_an_asset_keeps_its_direction_for_signal_hold_bars():
    """A's mean turns negative at bar 12, 7 bars after A was entered: with signal_hold=20 A stays in at its weight
    (B's weight, of what A leaves, is unchanged) until bar 25, 20 bars after the entry; then A leaves, B takes all."""
    scripts = {"A": script(N, [(5, 0.004, 0.02), (12, -0.004, 0.02)]), "B": script(N, [(5, 0.004, 0.01)])}
    s = run("mean_variance", scripts=scripts, signal_hold=20)
    assert s.sent == [(5, "A", 0.19), (5, "B", 0.76), (25, "A", 0.0), (25, "B", 0.95)]
    assert [d.direction for d in s.directions] == [0, 1] and [d.since for d in s.directions] == [25, 5]
    s = run("mean_variance", scripts=scripts)        # no hold: A leaves at once
    assert s.sent == [(5, "A", 0.19), (5, "B", 0.76), (12, "A", 0.0), (12, "B", 0.95)]


def test_one_feed_is_a_portfolio_of_one_asset():
    scripts = {"A": SCRIPTS["A"]}
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(DataFrameFeed(dataname=bars(N, 0)), name="A")
    cerebro.addstrategy(Recorder, method="mean_variance", band=0.05, min_hold=0, forecast_halflife=0, signal_hold=0,
                        replace={"BNNUncertainty": (ScriptedForecast, scripts)})
    cerebro.setbroker(BybitBroker(cash=10_000.0))
    cerebro.broker.addcommissioninfo(BybitCommission(market="spot", taker=0.001, maker=0.001))
    s = cerebro.run()[0]
    assert s.sent == [(5, "A", 0.95), (50, "A", 0.0)]      # all of target while the mean is positive


def test_forecast_smoothing_against_hand_computation():
    scripts = {"A": script(N, [(5, 0.004, 0.02), (56, 0.002, 0.01)]), "B": script(N, [(5, 0.004, 0.01)])}
    s = run("risk_parity", scripts=scripts, forecast_halflife=1)
    # half-life 1 bar: each bar moves halfway to the new value; bars 56-59 halve the gaps to 0.002 and 0.01^2 4 times
    mean, std = s.forecast
    n = N - 56
    assert std[0] == pytest.approx(np.sqrt(1e-4 + 3e-4 * 0.5 ** n), rel=1e-12)
    assert mean[0] == pytest.approx(0.002 + 0.002 * 0.5 ** n, rel=1e-12) and std[1] == pytest.approx(0.01)
    with pytest.raises(ValueError, match="forecast_halflife"):
        run("risk_parity", forecast_halflife=-1)


# ---------------------------------------------------------------------------------------------- the multi-task BNN
SMALL = dict(train_bars=240, retrain_every=200, quiet=True, n_jobs=1, n_samples=16,
             model_kwargs={"hidden": (8,), "head_hidden": (4,), "kl_warmup": 2}, fit_kwargs={"epochs": 6})


class Holder(bt.Strategy):
    params = (("cache", None),)

    def __init__(self):
        self.heads = [MultiTaskUncertainty(*self.datas, task=i, cache_dir=self.p.cache, **SMALL)
                      for i in range(len(self.datas))]


def multitask_lines(frames, cache, runonce=True):
    cerebro = bt.Cerebro(stdstats=False, runonce=runonce)
    for name, df in frames.items():
        cerebro.adddata(DataFrameFeed(dataname=df), name=name)
    cerebro.addstrategy(Holder, cache=cache)
    s = cerebro.run()[0]
    n = len(s.data.datetime.array)
    lines = pd.concat({i: pd.DataFrame({a: np.asarray(h.lines[j].array, dtype=float)[:n]
                                        for j, a in enumerate(h.lines.getlinealiases())})
                       for i, h in enumerate(s.heads)}, axis=1)
    return lines, s.heads


@pytest.fixture(scope="module")
def two_markets():
    return {"a": synthetic_market(720, seed=3), "b": synthetic_market(720, seed=4)}


@pytest.fixture(scope="module")
def multitask(two_markets, tmp_path_factory):
    cache = tmp_path_factory.mktemp("multitask-cache")
    FitCache.forget()
    lines, heads = multitask_lines(two_markets, cache)
    return cache, lines, heads


def test_multitask_values_start_at_the_first_fit_and_the_assets_share_each_fit(multitask, two_markets):
    _, lines, heads = multitask
    first = heads[0].spec.first_fit
    assert lines.iloc[:first].isna().all().all() and np.isfinite(lines.iloc[first:].to_numpy()).all()
    n_windows = heads[0].spec.fit_index(719) + 1
    assert n_windows >= 2 and heads[0].n_fits == n_windows and heads[1].n_fits == 0   # the second reads the first's
    assert not np.allclose(lines[0]["std"].iloc[first:], lines[1]["std"].iloc[first:])   # two heads, two assets
    # the lines are the model's own predictions of each head, for the rows of both feeds side by side
    np.testing.assert_allclose(lines[0]["std"] ** 2, lines[0]["epistemic"] ** 2 + lines[0]["aleatoric"] ** 2,
                               rtol=1e-9)


def test_multitask_truncation_invariance_both_modes(multitask, two_markets):
    cache, full, heads = multitask
    m = heads[0].spec.fit_bar(1) + 1
    cut = {name: df.iloc[:m] for name, df in two_markets.items()}
    pd.testing.assert_frame_equal(multitask_lines(cut, cache)[0], full.iloc[:m], check_exact=True)
    by_bar, _ = multitask_lines(cut, cache, runonce=False)
    whole, _ = multitask_lines(two_markets, cache, runonce=False)
    pd.testing.assert_frame_equal(by_bar, whole.iloc[:m], check_exact=True)
    # mode parity: the same models on the same rows, batched or one by one, in float64
    pd.testing.assert_frame_equal(whole, full, check_exact=False, rtol=1e-10, atol=1e-10)


def test_multitask_looks_at_no_later_bar(multitask, two_markets):
    """Prices of either asset after bar t, multiplied by 10, change no value up to t."""
    cache, full, heads = multitask
    t = heads[0].spec.fit_bar(1) + 50
    shocked = dict(two_markets)
    df = two_markets["b"].copy()
    for col in ("open", "high", "low", "close"):
        df.iloc[t + 1:, df.columns.get_loc(col)] *= 10.0
    shocked["b"] = df
    lines, _ = multitask_lines(shocked, cache)
    pd.testing.assert_frame_equal(lines.iloc[:t + 1], full.iloc[:t + 1], check_exact=True)


def test_the_strategy_runs_on_the_multitask_network(two_markets, tmp_path):
    config = BacktestConfig("uncertainty_portfolio", params={"multitask": True, "method": "risk_parity"},
                            walk_forward={**{k: SMALL[k] for k in ("train_bars", "retrain_every", "n_jobs")},
                                          "fit_kwargs": {"epochs": 6}, "cache_dir": str(tmp_path)})
    res = backtest(two_markets, config)
    assert res.assets == ("a", "b") and {"MultiTaskUncertainty.std", "MultiTaskUncertainty_2.std"} <= set(res.lines)
    weights = res.asset_weights.dropna()
    assert (res.asset_positions.iloc[-1] > 0).all() and weights.sum(axis=1).max() < 1.0


@pytest.mark.parametrize("option, message", [
    ({"standardize": True}, r"MultiTaskUncertainty\(standardize=True\) is not supported"),
    ({"zero_mean": True}, r"MultiTaskUncertainty\(zero_mean=True\) is not supported: the multi-task network's heads"),
])
def test_multitask_refuses_the_single_feed_forecast_options(two_markets, option, message):
    class One(bt.Strategy):
        def __init__(self):
            MultiTaskUncertainty(*self.datas, task=0, cache_dir=None, **SMALL, **option)

    cerebro = bt.Cerebro(stdstats=False)
    for name, df in two_markets.items():
        cerebro.adddata(DataFrameFeed(dataname=df), name=name)
    cerebro.addstrategy(One)
    with pytest.raises(ValueError, match=message):
        cerebro.run()
