"""The classical risk and direction baselines against known truths: GarchForecast on a simulated GARCH(1,1)-t market
(coverage at its level, its std against the true conditional std), RealizedVolGate's closing rate on a stationary
market and on a planted volatility burst, MomentumDirection's exact values, and the input-row hook that feeds them.
The walk-forward contract (truncation invariance, mode parity, no look-ahead, cache) is in test_contract.py."""
import doctest
import importlib.util
from pathlib import Path

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from btdensity.feeds import DataFrameFeed
from btdensity.indicators import WalkForwardIndicator
from btdensity.indicators.garch import GarchForecast
from btdensity.indicators.statistic_baselines import MomentumDirection, RealizedVolGate
from btdensity.indicators import trailing
from btdensity.indicators.trailing import log_returns, momentum
from btdensity.models import empirical, garch
from btdensity.models.garch import GarchT


def _garch_truth():
    """The simulator and true parameters of tests/models/test_garch.py (one simulator for both test files)."""
    spec = importlib.util.spec_from_file_location("garch_truth", Path(__file__).parents[1] / "models" / "test_garch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.simulate_garch_t, module.TRUTH


simulate_garch_t, TRUTH = _garch_truth()
WALK = dict(train_bars=2000, retrain_every=1000)


def ohlcv(r, seed=0):
    """Hourly bars whose close-to-close log returns are ``r``: open = previous close, wicks around both."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(r))
    open_ = np.r_[100.0, close[:-1]]
    wick = np.exp(np.abs(rng.normal(0, 0.002, (2, len(r)))))
    idx = pd.date_range("2024-01-01", periods=len(r), freq="1h", tz="UTC")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * wick[0],
                         "low": np.minimum(open_, close) / wick[1], "close": close, "volume": 1.0}, index=idx)


def run(df, runonce=True, **makers):
    class Holder(bt.Strategy):
        def __init__(self):
            for name, make in makers.items():
                setattr(self, name, make(self.data))

    cerebro = bt.Cerebro(stdstats=False, runonce=runonce)
    cerebro.adddata(DataFrameFeed(dataname=df))
    cerebro.addstrategy(Holder)
    return cerebro.run()[0]


def lines(ind):
    return {alias: np.asarray(ind.lines[i].array, dtype=float) for i, alias in enumerate(ind.lines.getlinealiases())}


# ---------------------------------------------------------------------------------------------------- GarchForecast
@pytest.fixture(scope="module")
def garch_market(tmp_path_factory):
    r, var = simulate_garch_t(6000, **TRUTH, seed=3)
    kw = dict(WALK, cache_dir=tmp_path_factory.mktemp("garch-cache"))
    strat = run(ohlcv(r), one=lambda d: GarchForecast(d, **kw), three=lambda d: GarchForecast(d, horizon=3, **kw))
    return r, var, strat


def test_garch_forecast_covers_at_its_level_and_tracks_the_true_std(garch_market):
    r, var, strat = garch_market
    one, three = lines(strat.one), lines(strat.three)
    first = strat.one.spec.first_fit
    assert first == 500 + 2000 and strat.one.n_fits == 4
    t = np.arange(first, len(r) - 1)                  # 3499 served bars whose next return is known
    covered = (r[t + 1] >= one["lower"][t]) & (r[t + 1] <= one["upper"][t])
    # 2 points is 4.2 binomial standard errors at 3499 bars (measured on six paths: 0.889-0.909)
    assert abs(covered.mean() - 0.9) <= 0.02
    true_std = np.sqrt(var[t + 1])
    assert np.corrcoef(one["std"][t], true_std)[0, 1] > 0.97          # measured 0.98-0.999
    assert abs(np.median(one["std"][t] / true_std) - 1) < 0.05        # measured 0.985-1.015
    # three bars: the variance sums three forecasts, the interval is a variance-matched t (an approximation);
    # the 3-bar windows overlap, so the tolerance is wider (measured 0.887-0.917)
    t3 = np.arange(first, len(r) - 3)
    ahead = r[t3 + 1] + r[t3 + 2] + r[t3 + 3]
    assert abs(np.mean((ahead >= three["lower"][t3]) & (ahead <= three["upper"][t3])) - 0.9) <= 0.03
    assert (three["std"][t] > one["std"][t]).all() and strat.three.n_fits == 0    # the horizon shares the fits


def test_garch_forecast_lines_are_its_model_s(garch_market):
    _, _, strat = garch_market
    one, first = lines(strat.one), strat.one.spec.first_fit
    assert all(np.isnan(v[:first]).all() and np.isfinite(v[first:]).all() for v in one.values())
    served = slice(first, first + 1000)               # the bars of the first fit, which read the returns of bars
    close = np.asarray(strat.data.close.array)        # 500 ... 2499 (fit rows and held-out tail)
    model = GarchT().fit(log_returns(close)[500:2500])
    np.testing.assert_array_equal(one["mean"][served], model.mu_)
    half = model.quantile_factor(0.9) * one["std"][served]
    np.testing.assert_array_equal(one["upper"][served], one["mean"][served] + half)
    np.testing.assert_array_equal(one["lower"][served], one["mean"][served] - half)


# --------------------------------------------------------------------------------------------------- RealizedVolGate
def test_realized_vol_gate_closes_on_alpha_of_stationary_bars():
    """i.i.d. returns with window=1: the statistic of each bar is independent, so the p-value against 600 held-out
    values is exchangeable and closes the gate with probability 30/601 (~alpha). The spread of the closing rate
    over 6000 served bars is binomial plus the threshold's own (six references of 600): sd 0.46 %, bound 3.5 sd.
    With the default window of 24 the statistic is autocorrelated and a 600-bar tail under-represents its spread:
    the gate closes on more bars (measured 4.4-7.9 %, mean 6.2 % over ten paths), bounded here loosely."""
    r = np.random.default_rng(5).standard_normal(8000) * 0.01
    strat = run(ohlcv(r), one=lambda d: RealizedVolGate(d, window=1, cache_dir=None, **WALK),
                day=lambda d: RealizedVolGate(d, cache_dir=None, **WALK))
    for ind, low, high in ((strat.one, 0.05 - 0.016, 0.05 + 0.016), (strat.day, 0.02, 0.11)):
        gate = lines(ind)["gate"][ind.spec.first_fit:]
        assert set(np.unique(gate)) == {0.0, 1.0}
        assert low <= 1 - gate.mean() <= high


def test_realized_vol_gate_pvalue_is_the_held_out_tail_count():
    r = np.random.default_rng(6).standard_normal(4000) * 0.01
    strat = run(ohlcv(r), gate=lambda d: RealizedVolGate(d, cache_dir=None, **WALK))
    ind, got = strat.gate, lines(strat.gate)
    logc = np.log(ohlcv(r)["close"].to_numpy())
    rv = np.full(len(r), np.nan)
    for t in range(24, len(r)):                       # root mean square of the last 24 close-to-close log returns
        rv[t] = np.sqrt(np.mean(np.diff(logc[t - 24:t + 1]) ** 2))
    for t in range(ind.spec.first_fit, len(r)):
        ref = rv[ind.spec.training_rows(ind.spec.fit_index(t))[1]]
        want = (1 + np.sum(ref >= rv[t] * (1 + 1e-12))) / (1 + ref.size)   # ties within rounding count as equal
        want_hi = (1 + np.sum(ref >= rv[t] * (1 - 1e-12))) / (1 + ref.size)
        assert want <= got["pvalue"][t] <= want_hi
    np.testing.assert_array_equal(got["gate"][ind.spec.first_fit:], got["pvalue"][ind.spec.first_fit:] > 0.05)


def test_realized_vol_gate_closes_on_a_volatility_burst():
    r = np.random.default_rng(8).standard_normal(4000) * 0.01
    start = 2024 + 24 + 300                           # inside the bars the first fit serves
    r[start:start + 200] *= 4.0
    strat = run(ohlcv(r), gate=lambda d: RealizedVolGate(d, cache_dir=None, **WALK))
    gate = lines(strat.gate)["gate"]
    assert strat.gate.spec.first_fit == 2024 and strat.gate.spec.fit_index(start + 199) == 0
    assert gate[start + 23:start + 200].mean() == 0.0   # every bar whose 24-bar window lies in the burst
    assert 0.9 <= gate[2024:start].mean()              # open before it


# ------------------------------------------------------------------------------------------------- MomentumDirection
def test_momentum_direction_exact_values(garch_market):
    r = garch_market[0][:3500]
    df = ohlcv(r)
    strat = run(df, mom=lambda d: MomentumDirection(d, momentum_bars=12, cache_dir=None, **WALK))
    ind, got = strat.mom, lines(strat.mom)
    logc = np.log(df["close"].to_numpy())
    first = ind.spec.first_fit
    assert first == 12 + 2000
    assert np.isnan(got["direction"][:first]).all()
    want = logc[12:] - logc[:-12]                     # bar t: log close[t] - log close[t - 12]
    np.testing.assert_array_equal(got["direction"][first:], want[first - 12:])
    for k in range(ind.spec.fit_index(len(r) - 1) + 1):
        tail = ind.spec.training_rows(k)[1]
        scale = np.median(np.abs(want[tail.start - 12:tail.stop - 12]))
        served = ind.spec.served(k, len(r))
        np.testing.assert_array_equal(got["strength"][served.start:served.stop],
                                      np.abs(want[served.start - 12:served.stop - 12]) / scale)


# ------------------------------------------------------------------------------------------------- the inputs hook
class Reversal(MomentumDirection):
    """Minus the momentum, with the base class's ``input_key``: an indicator that overrides ``inputs`` without
    naming its key must not share MomentumDirection's rows (same lookback, same feed)."""

    input_key = WalkForwardIndicator.input_key

    def inputs(self, arrays):
        return -momentum(arrays["close"], int(self.p.momentum_bars))[:, None]


KW = dict(cache_dir=None, train_bars=300, retrain_every=400)
MAKERS = dict(g1=lambda d: GarchForecast(d, memory=100, **KW), g3=lambda d: GarchForecast(d, memory=100, horizon=3, **KW),
              vol=lambda d: RealizedVolGate(d, **KW), mom=lambda d: MomentumDirection(d, **KW),
              rev=lambda d: Reversal(d, **KW))


def test_batched_and_bar_by_bar_values_are_the_same_numbers(garch_market):
    df = ohlcv(garch_market[0][:2600])
    batched, by_bar = run(df, True, **MAKERS), run(df, False, **MAKERS)
    for name in MAKERS:
        for alias, values in lines(getattr(batched, name)).items():
            np.testing.assert_array_equal(values, lines(getattr(by_bar, name))[alias], err_msg=f"{name}.{alias}")


@pytest.mark.parametrize("runonce", [True, False])
def test_indicators_on_one_feed_get_their_own_rows(garch_market, runonce):
    df = ohlcv(garch_market[0][:2600])
    together = run(df, runonce, **MAKERS)
    for name, make in MAKERS.items():
        alone = run(df, runonce, **{name: make})
        for alias, values in lines(getattr(together, name)).items():
            np.testing.assert_array_equal(values, lines(getattr(alone, name))[alias], err_msg=f"{name}.{alias}")
    np.testing.assert_array_equal(lines(together.rev)["direction"], -lines(together.mom)["direction"])
    keys = {key[0] for key in together.data._btdensity_features}
    assert {("log_returns", 100), ("RealizedVolGate", 24), ("MomentumDirection", 24)} <= keys
    assert len(keys) == 4                             # the two GarchForecasts share their rows; Reversal has its own


def test_bad_parameters_are_named(garch_market):
    df = ohlcv(garch_market[0][:300])
    for make, message in ((lambda d: GarchForecast(d, level=1.5), r"GarchForecast\(level=1.5\)"),
                          (lambda d: GarchForecast(d, memory=0), "both must be >= 1"),
                          (lambda d: RealizedVolGate(d, alpha=0.7), r"RealizedVolGate\(alpha=0.7\): alpha must be in"),
                          (lambda d: RealizedVolGate(d, window=0), "window must be >= 1"),
                          (lambda d: MomentumDirection(d, momentum_bars=0), "must be >= 1")):
        with pytest.raises(ValueError, match=message):
            run(df, ind=make)


@pytest.mark.parametrize("module", [trailing, empirical, garch], ids=lambda m: m.__name__)
def test_docstring_examples_run(module):
    result = doctest.testmod(module)
    assert result.attempted and not result.failed


# ---------------------------------------------------------------------------------------------------- HarForecast
def test_har_forecast_follows_a_daily_volatility_cycle_through_its_clock_terms():
    """Volatility three times higher at 15:00 UTC than at 03:00, t5 shocks: the default regressors (the clock's two
    harmonics among them) give the truth's daily profile; without the clock terms the realised volatilities, which
    average over the cycle, give a flat fraction of it."""
    from btdensity.indicators.features import SCALE_FEATURES, SEASONAL_FEATURES
    from btdensity.indicators.har_forecast import HarForecast

    n, rng = 4000, np.random.default_rng(3)
    hour = np.arange(n) % 24
    log_sigma = np.log(0.004) + 0.55 * np.cos(2 * np.pi * (hour - 15) / 24)        # peak / trough: e^1.1 = 3.0
    r = np.exp(log_sigma) * rng.standard_t(5, n) * np.sqrt(3 / 5)
    df = ohlcv(r)
    clockless = tuple(f for f in SCALE_FEATURES if f not in SEASONAL_FEATURES)
    strat = run(df, clock=lambda d: HarForecast(d, **WALK, quiet=True),
                none=lambda d: HarForecast(d, features=clockless, **WALK, quiet=True))
    for name, (low, high) in (("clock", (0.9, 1.3)), ("none", (0.0, 0.5))):     # truth: 1.1
        std = lines(getattr(strat, name))["std"]
        # the forecast made at bar t is for the return of the bar after it: hour (t + 1) mod 24
        profile = pd.Series(np.log(std[2000:])).groupby((hour[2000:] + 1) % 24).mean()
        assert low < profile[15] - profile[3] < high, (name, profile[15] - profile[3])
