"""GaussianDensity and MixtureDensity: LogDensity's lines and calibration on classical models. Their ``logp`` is the
window model's log-density of the raw feature row, their ``pvalue`` the lower tail against the window's held-out
tail, and on an i.i.d. market the gate closes on alpha of the bars, within binomial bounds."""
import math

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from btdensity.feeds import DataFrameFeed, synthetic_market
from btdensity.indicators import market_features
from btdensity.indicators.calibration import lower_tail_pvalue, sorted_reference
from btdensity.indicators.density_baselines import GaussianDensity, MixtureDensity
from btdensity.indicators.persistence import PersistenceRegime
from btdensity.indicators.walkforward import FitCache

BASELINES = {"GaussianDensity": GaussianDensity, "MixtureDensity": MixtureDensity}
WINDOWS = dict(train_bars=300, retrain_every=200, cache_dir=None)


def run(df, runonce=True, **makers):
    class Holder(bt.Strategy):
        def __init__(self):
            self.made = {name: make(self.data) for name, make in makers.items()}

    FitCache.forget()
    cerebro = bt.Cerebro(stdstats=False, runonce=runonce)
    cerebro.adddata(DataFrameFeed(dataname=df))
    cerebro.addstrategy(Holder)
    return cerebro.run()[0].made


def lines_of(ind):
    return pd.DataFrame({alias: np.asarray(ind.lines[i].array, dtype=float)
                         for i, alias in enumerate(ind.lines.getlinealiases())})


def iid_market(n, seed):
    """Bars with i.i.d. log returns, wicks and volumes: every bar is in distribution."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.004, n)))
    open_ = np.r_[100.0, close[:-1]]
    wick_up, wick_down = np.exp(np.abs(rng.normal(0.0, 0.001, (2, n))))
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * wick_up,
                         "low": np.minimum(open_, close) / wick_down, "close": close,
                         "volume": np.exp(rng.normal(3.0, 0.3, n))},
                        index=pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC"))


@pytest.fixture(scope="module")
def market():
    return synthetic_market(1000, seed=5)


@pytest.fixture(scope="module")
def both_modes(market):
    makers = {name: (lambda data, cls=cls: cls(data, **WINDOWS)) for name, cls in BASELINES.items()}
    makers["PersistenceRegime"] = lambda data: PersistenceRegime(data, horizon=24, **WINDOWS)
    return {runonce: {name: (lines_of(ind), ind) for name, ind in run(market, runonce, **makers).items()}
            for runonce in (True, False)}


@pytest.mark.parametrize("name", [*BASELINES, "PersistenceRegime"])
def test_batched_and_bar_by_bar_agree_to_1e_12(both_modes, name):
    batched, ind = both_modes[True][name]
    bar_by_bar, _ = both_modes[False][name]
    assert batched.iloc[:ind.spec.first_fit].isna().all().all()
    assert np.isfinite(batched.iloc[ind.spec.first_fit:].to_numpy()).all()
    pd.testing.assert_frame_equal(bar_by_bar, batched, check_exact=False, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", BASELINES)
def test_logp_is_the_window_models_log_density_and_pvalue_its_lower_tail(both_modes, market, name):
    lines, ind = both_modes[True][name]
    X = market_features(*(market[c].to_numpy() for c in ("open", "high", "low", "close", "volume")))
    n = len(market)
    for k in range(ind.spec.fit_index(n - 1) + 1):
        fit_rows, val_rows = ind.spec.training_rows(k)
        model = ind.model_class()(X.shape[1]).fit(X[fit_rows.start:fit_rows.stop])
        bars = ind.spec.served(k, n)
        logp = model.log_prob(X[bars.start:bars.stop])
        np.testing.assert_allclose(lines["logp"].to_numpy()[bars.start:bars.stop], logp, rtol=1e-12)
        reference = sorted_reference(model.log_prob(X[val_rows.start:val_rows.stop]))
        pvalue = lower_tail_pvalue(reference, lines["logp"].to_numpy()[bars.start:bars.stop])
        np.testing.assert_array_equal(lines["pvalue"].to_numpy()[bars.start:bars.stop], pvalue)
        np.testing.assert_array_equal(lines["gate"].to_numpy()[bars.start:bars.stop], pvalue > 0.05)


def test_gate_closes_on_alpha_of_in_distribution_bars():
    """An i.i.d. market, features of short memory (a bar's return, range and volume against its recent past):
    the held-out tail (n = 150 rows) and the bars after it are exchangeable, so the gate of a window closes with
    probability j / (n + 1), j = floor(alpha (n + 1)) = 7: 0.046, itself drawn from Beta(j, n + 1 - j) (sd
    0.017) by the window's tail. Over W windows and N bars the closed share has variance
    p (1 - p) / N + Var(Beta) / W; the bounds are 4 sd. (With the default, slower features, whose 24- and 48-bar
    windows make neighbouring rows alike, the tail resembles its fit rows more than later bars do: the share
    measured 0.06 on average, the calibration drift DESIGN describes.)"""
    alpha, n_tail = 0.05, 150
    features = ("ret_z", "volume_z", "range_z")
    kw = dict(train_bars=300, retrain_every=100, val_fraction=0.5, alpha=alpha, features=features, cache_dir=None)
    made = run(iid_market(1200, seed=3), **{name: (lambda data, cls=cls: cls(data, **kw))
                                            for name, cls in BASELINES.items()})
    j = math.floor(alpha * (n_tail + 1))
    p = j / (n_tail + 1)
    var_beta = j * (n_tail + 1 - j) / ((n_tail + 1) ** 2 * (n_tail + 2))
    for name, ind in made.items():
        assert ind.spec.training_rows(0)[1].stop - ind.spec.training_rows(0)[1].start == n_tail
        gate = np.asarray(ind.gate.array)[ind.spec.first_fit:]
        n_bars, n_windows = gate.size, ind.spec.fit_index(ind.spec.first_fit + gate.size - 1) + 1
        sd = math.sqrt(p * (1 - p) / n_bars + var_beta / n_windows)
        closed = 1.0 - gate.mean()
        assert abs(closed - p) < 4 * sd, (name, closed, p, sd)
