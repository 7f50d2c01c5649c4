"""Indicators against known truths of synthetic markets: anomalies, in-distribution rates, planted signals."""
import backtrader as bt
import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from btdensity.feeds import DataFrameFeed, synthetic_market
from btdensity.indicators import AdaptiveGate, BNNUncertainty, Energy, LogDensity, ScoreDirection


def auroc(score, positive):
    ranks = rankdata(score)
    n1, n0 = positive.sum(), (~positive).sum()
    return (ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)


def run(df, **makers):
    class Holder(bt.Strategy):
        def __init__(self):
            for name, make in makers.items():   # a maker of two arguments also gets the indicators made before
                setattr(self, name, make(self.data) if make.__code__.co_argcount == 1 else make(self.data, self))

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(DataFrameFeed(dataname=df))
    cerebro.addstrategy(Holder)
    return cerebro.run()[0]


def ar1_market(n, phi, seed):
    """Log returns r_t = phi r_{t-1} + e_t: the conditional mean of the next return has the sign of phi * r_t."""
    rng = np.random.default_rng(seed)
    e = rng.standard_normal(n) * 0.004
    r = np.zeros(n)
    for t in range(1, n):
        r[t] = phi * r[t - 1] + e[t]
    close = 100 * np.exp(np.cumsum(r))
    open_ = np.r_[100.0, close[:-1]]
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    df = pd.DataFrame({"open": open_, "close": close, "volume": np.exp(rng.normal(3, 0.3, n)),
                       "high": np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.001, n))),
                       "low": np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.001, n)))}, index=idx)
    return df, r


@pytest.fixture(scope="module")
def stationary(tmp_path_factory):
    """One regime ('normal'): bars after each fit come from the distribution the model was fitted on."""
    df = synthetic_market(5000, seed=0, regimes=("normal",))
    cache = tmp_path_factory.mktemp("truth-cache")
    kw = dict(train_bars=2000, retrain_every=500, cache_dir=cache, fit_kwargs={"epochs": 30})
    strat = run(df, energy=lambda d: Energy(d, **kw), density=lambda d: LogDensity(d, alpha=0.05, **kw),
                adaptive=lambda d, s: AdaptiveGate(d, density=s.density, alpha=0.05))
    first = strat.energy.spec.first_fit
    return df.iloc[first:], strat, first


def test_log_density_gate_closes_near_alpha_in_distribution_and_on_anomalies(stationary):
    """The static gate compares each bar with the window's held-out tail. Within the 'normal' regime volatility still
    clusters, so the next 500 bars are not quite the tail's distribution: over seven markets it closed on 3.8-8.7 %
    of the in-distribution bars at alpha 5 % (mean 6.5 % starting each fit cold, 7.0 % warm-started; 8.2 % / 8.1 %
    on this one over 9,000 bars), as on real markets (1.3-1.8x alpha). The adaptive gate, moved by the closures it
    sees, closes nearer alpha. Both close on the planted anomalies."""
    df, strat, first = stationary
    anomaly = df["anomaly"].to_numpy()
    assert anomaly.sum() >= 10
    closed = {}
    for name in ("density", "adaptive"):
        gate = np.asarray(getattr(strat, name).gate.array)[first:]
        closed[name] = 1.0 - gate[~anomaly].mean()
        closed_anomaly = 1.0 - gate[anomaly].mean()
        assert closed_anomaly >= 5 * closed[name], (name, closed_anomaly, closed[name])
    assert 0.025 <= closed["density"] <= 0.10, closed
    assert abs(closed["adaptive"] - 0.05) < abs(closed["density"] - 0.05), closed


def test_energy_zscore_separates_anomalies(stationary):
    df, strat, first = stationary
    z = np.asarray(strat.energy.zscore.array)[first:]
    assert auroc(z, df["anomaly"].to_numpy()) >= 0.85
    pvalue = np.asarray(strat.energy.pvalue.array)[first:]
    assert ((pvalue > 0) & (pvalue <= 1)).all()
    spec = strat.energy.spec
    for k in range(spec.fit_index(len(df) + first - 1) + 1):   # within a window: the higher z, the lower p
        bars = np.array(spec.served(k, len(df) + first)) - first
        order = np.argsort(z[bars])
        assert (np.diff(pvalue[bars][order]) <= 0).all()


def test_score_direction_finds_planted_ar1_sign(tmp_path):
    df, r = ar1_market(3000, 0.4, seed=0)
    strat = run(df, ind=lambda d: ScoreDirection(d, train_bars=1200, retrain_every=600, cache_dir=tmp_path,
                                                 fit_kwargs={"epochs": 30}))
    first = strat.ind.spec.first_fit
    direction = np.asarray(strat.ind.direction.array)[first:]
    agreement = (np.sign(direction) == np.sign(r[first:])).mean()
    assert agreement >= 0.65, agreement
    strength = np.asarray(strat.ind.strength.array)[first:]
    assert np.median(strength) == pytest.approx(1.0, abs=0.35)  # relative to the calibration tail


def switching_volatility_market(n, seed, low=0.004, high=0.016, every=400):
    """Independent normal log returns whose standard deviation switches between ``low`` and ``high`` every ``every``
    bars: the truth of the next return's scale is known at every bar."""
    rng = np.random.default_rng(seed)
    sigma = np.where((np.arange(n) // every) % 2 == 0, low, high)
    r = rng.standard_normal(n) * sigma
    close = 100 * np.exp(np.cumsum(r))
    open_ = np.r_[100.0, close[:-1]]
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    wick = np.abs(rng.normal(0, 0.3, n)) * sigma
    df = pd.DataFrame({"open": open_, "close": close, "volume": np.exp(rng.normal(3, 0.3, n)),
                       "high": np.maximum(open_, close) * np.exp(wick), "low": np.minimum(open_, close) * np.exp(-wick)},
                      index=idx)
    return df, sigma


def test_standardized_bnn_tracks_a_switching_volatility(tmp_path):
    """standardize=True: the network sees returns in units of the last 24 bars' volatility and the lines come back
    in returns; the interval's width follows the true scale of the next return in both states (within -20 / +25 %:
    it also holds the model's own uncertainty), and it covers at its level."""
    df, sigma = switching_volatility_market(3200, seed=0)
    strat = run(df, ind=lambda d: BNNUncertainty(d, level=0.9, standardize=True, train_bars=1200, retrain_every=400,
                                                 cache_dir=tmp_path, fit_kwargs={"epochs": 30}))
    first = strat.ind.spec.first_fit
    lower, upper = (np.asarray(getattr(strat.ind, n).array) for n in ("lower", "upper"))
    realised = np.log(df["close"].shift(-1) / df["close"]).to_numpy()
    bars = np.arange(len(df))
    settled = (bars >= first) & (bars % 400 >= 48) & (bars % 400 < 399) & np.isfinite(realised)   # 48 bars after a switch
    next_sigma = np.r_[sigma[1:], np.nan]
    half_width = (upper - lower) / 2 / 1.6449   # a normal's 90 % interval is ± 1.645 sigma
    for state in (0.004, 0.016):
        ratio = np.median(half_width[settled & (next_sigma == state)] / state)
        assert 0.8 <= ratio <= 1.25, (state, ratio)
    inside = (realised >= lower) & (realised <= upper)
    assert abs(inside[settled].mean() - 0.9) <= 0.05, inside[settled].mean()


def test_bnn_interval_covers_forward_returns_at_its_level(tmp_path):
    df = synthetic_market(4000, seed=0, regimes=("normal",))
    strat = run(df, ind=lambda d: BNNUncertainty(d, level=0.9, train_bars=1500, retrain_every=500,
                                                 cache_dir=tmp_path))
    first = strat.ind.spec.first_fit
    lower, upper = np.asarray(strat.ind.lower.array), np.asarray(strat.ind.upper.array)
    realised = np.log(df["close"].shift(-1) / df["close"]).to_numpy()
    held_out = (np.arange(len(df)) >= first) & np.isfinite(realised)
    coverage = ((realised[held_out] >= lower[held_out]) & (realised[held_out] <= upper[held_out])).mean()
    assert abs(coverage - 0.9) <= 0.05, coverage
    epistemic = np.asarray(strat.ind.epistemic.array)[held_out]
    aleatoric = np.asarray(strat.ind.aleatoric.array)[held_out]
    assert (epistemic > 0).all() and (aleatoric > 0).all()
