"""The walk-forward contract, for every indicator: truncation invariance, no look-ahead, mode parity, cache."""
import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from btdensity.feeds import DataFrameFeed, synthetic_market
from btdensity.feeds.ohlcv import resample_ohlcv
from btdensity.indicators import BNNUncertainty, Energy, LogDensity, Regime, ScoreDirection
from btdensity.indicators.features import RISK_FEATURES, SCALE_FEATURES, SEASONAL_FEATURES
from btdensity.indicators.density_baselines import GaussianDensity, MixtureDensity
from btdensity.indicators.garch import GarchForecast
from btdensity.indicators.har_forecast import HarForecast
from btdensity.indicators.persistence import PersistenceRegime
from btdensity.indicators.volatility_regime import VolatilityRegime
from btdensity.indicators.statistic_baselines import MomentumDirection, RealizedVolGate
from btdensity.indicators.walkforward import FitCache

from .conftest import DAY_SCALE_FEATURES

SMALL = dict(train_bars=240, retrain_every=200, quiet=True)
INDICATORS = {
    "Energy": (Energy, dict(model_kwargs={"hidden": (16, 16)}, fit_kwargs={"epochs": 6}, threshold=2.0, release=0.5,
                            resolve_bars=12)),
    "LogDensity": (LogDensity, dict(model_kwargs={"n_layers": 2, "hidden": 16}, fit_kwargs={"epochs": 6})),
    "ScoreDirection": (ScoreDirection, dict(model_kwargs={"hidden": 16}, fit_kwargs={"epochs": 6}, consistency_bars=6)),
    "BNNUncertainty": (BNNUncertainty, dict(model_kwargs={"hidden": (8,), "kl_warmup": 2}, fit_kwargs={"epochs": 6},
                                            n_samples=16, scale_features=DAY_SCALE_FEATURES)),
    # the seasonal features read the bars' time stamps, which a replayed bar changes while it forms
    "BNNSeasonal": (BNNUncertainty, dict(model_kwargs={"hidden": (8,), "kl_warmup": 2}, fit_kwargs={"epochs": 6},
                                         n_samples=16, features=RISK_FEATURES + SEASONAL_FEATURES,
                                         scale_features=DAY_SCALE_FEATURES)),
    # the target not divided by the volatility forecast (the default divides it and scales the lines back), and the
    # forecast centred at the network's mean (the default centres it at zero)
    "BNNPlain": (BNNUncertainty, dict(model_kwargs={"hidden": (8,), "kl_warmup": 2}, fit_kwargs={"epochs": 6},
                                      n_samples=16, standardize=False, zero_mean=False)),
    "Regime": (Regime, dict(horizon=6, model_kwargs={"hidden": (16,)}, fit_kwargs={"epochs": 6})),
    # the JEM's own probabilities (the default pools them with persistence and a volatility forecast)
    "RegimeJEM": (Regime, dict(horizon=6, pool=False, model_kwargs={"hidden": (16,)}, fit_kwargs={"epochs": 6})),
    "GaussianDensity": (GaussianDensity, dict()),
    "MixtureDensity": (MixtureDensity, dict(model_kwargs={"max_components": 4})),
    "PersistenceRegime": (PersistenceRegime, dict(horizon=6)),
    "VolatilityRegime": (VolatilityRegime, dict(horizon=6)),
    "GarchForecast": (GarchForecast, dict(memory=48)),
    "RealizedVolGate": (RealizedVolGate, dict()),
    "MomentumDirection": (MomentumDirection, dict()),
    "HarForecast": (HarForecast, dict(features=DAY_SCALE_FEATURES)),
}
#: a parameter that changes the fit (the classical baselines do not depend on the seed, or not visibly)
CHANGED = {"GaussianDensity": dict(model_kwargs={"ridge": 0.5}),
           "MixtureDensity": dict(model_kwargs={"max_components": 1}),
           "PersistenceRegime": dict(model_kwargs={"smoothing": 5.0}),
           "VolatilityRegime": dict(model_kwargs={"smoothing": 5.0}),
           "GarchForecast": dict(memory=40), "RealizedVolGate": dict(val_fraction=0.2),
           "MomentumDirection": dict(val_fraction=0.2), "HarForecast": dict(val_fraction=0.2)}
N_HOURS = 720
#: lines known only some bars after the first fit: (indicator, line) -> bars (consistency and score_var need
#: consistency_bars directions)
LATER = {("ScoreDirection", "consistency"): 5, ("ScoreDirection", "score_var"): 5}


class Holder(bt.Strategy):
    params = (("make", None),)

    def __init__(self):
        self.ind = self.p.make(self.data)


def lines_of(ind, n):
    return pd.DataFrame({alias: np.asarray(ind.lines[i].array, dtype=float)[:n]
                         for i, alias in enumerate(ind.lines.getlinealiases())})


def run(df, name, cache_dir, runonce=True, replay_from=None, **overrides):
    cls, kwargs = INDICATORS[name]
    params = {**SMALL, **kwargs, "cache_dir": cache_dir, **overrides}
    cerebro = bt.Cerebro(stdstats=False, runonce=runonce)
    if replay_from is None:
        cerebro.adddata(DataFrameFeed(dataname=df))
    else:
        cerebro.replaydata(DataFrameFeed(dataname=replay_from), timeframe=bt.TimeFrame.Minutes, compression=60)
    cerebro.addstrategy(Holder, make=lambda data: cls(data, **params))
    strat = cerebro.run()[0]
    n = len(strat.data.datetime.array)
    return lines_of(strat.ind, n), strat.ind


def assert_parity(lines, full):
    """Mode parity: the same models evaluate one row (bar by bar) or a window's rows at once (batched), in
    float64, so the values agree far inside the contract's 1e-5 (measured: at most 6e-14)."""
    pd.testing.assert_frame_equal(lines, full, check_exact=False, rtol=1e-10, atol=1e-10)


@pytest.fixture(scope="module")
def quarter_hours():
    return synthetic_market(N_HOURS * 4, freq="15m", seed=11)


@pytest.fixture(scope="module")
def hours(quarter_hours):
    return resample_ohlcv(quarter_hours, pd.Timedelta(hours=1))


@pytest.fixture(scope="module", params=list(INDICATORS))
def reference(request, hours, tmp_path_factory):
    cache = tmp_path_factory.mktemp(f"cache-{request.param}")
    FitCache.forget()
    lines, ind = run(hours, request.param, cache)
    return request.param, cache, lines, ind


def test_values_start_at_the_first_fit_and_are_finite(reference, hours):
    name, _, lines, ind = reference
    for line in lines:
        first = ind.spec.first_fit + LATER.get((name, line), 0)
        assert lines[line].iloc[:first].isna().all() and np.isfinite(lines[line].iloc[first:]).all(), line
    assert ind.n_fits == ind.spec.fit_index(len(hours) - 1) + 1 >= 2


@pytest.mark.parametrize("reference", ["Energy", "ScoreDirection"], indirect=True)
def test_derived_lines_follow_their_model_line(reference):
    """Energy's regime / spike_resolved and ScoreDirection's consistency / score_var are their functions of the
    indicator's own z-score / direction line (test_derived_lines.py checks those against hand-computed values); the
    spike fires on these bars, so the contract tests here hold for a signal that is not all zeros."""
    from btdensity.indicators.energy import energy_regime, spike_resolved
    from btdensity.indicators.score_direction import direction_consistency

    name, _, lines, ind = reference
    if name == "Energy":
        z = lines["zscore"].to_numpy()
        np.testing.assert_array_equal(lines["regime"], energy_regime(z, (-0.5, 1.0, 2.5)))
        np.testing.assert_array_equal(lines["spike_resolved"], spike_resolved(z, 2.0, 0.5, 12))
        assert np.nansum(lines["spike_resolved"]) >= 2 and len(set(lines["regime"].dropna())) >= 3
    else:
        stats = direction_consistency(lines["direction"].to_numpy(), 6)
        np.testing.assert_array_equal(lines[["consistency", "score_var"]].to_numpy(), stats)
        assert len(set(lines["consistency"].dropna())) >= 3


def test_truncation_invariance(reference, hours):
    name, cache, full, ind = reference
    m = ind.spec.fit_bar(1) + 1  # the data ends at the second fit's bar: a fit reading labels past it finds none
    cut, _ = run(hours.iloc[:m], name, cache)
    pd.testing.assert_frame_equal(cut, full.iloc[:m], check_exact=True)


def test_truncation_invariance_bar_by_bar(reference, hours):
    name, cache, full, ind = reference
    m = ind.spec.fit_bar(1) + 1
    cut, _ = run(hours.iloc[:m], name, cache, runonce=False)
    whole, _ = run(hours, name, cache, runonce=False)
    pd.testing.assert_frame_equal(cut, whole.iloc[:m], check_exact=True)


def shocked_after(df, t):
    """Every price after bar ``t`` times 10, every volume times 7."""
    shocked = df.copy()
    for col in ("open", "high", "low", "close"):
        shocked.iloc[t + 1:, shocked.columns.get_loc(col)] *= 10.0
    shocked.iloc[t + 1:, shocked.columns.get_loc("volume")] *= 7.0
    return shocked


def test_no_look_ahead(reference, hours, tmp_path):
    # t is the bar of the second fit, T_1: its value comes from the model fitted at T_1. A training row t' whose
    # label reaches past T_1 (t' + h > T_1, e.g. rows up to T_1 - 1 with h >= 2) would read a shocked price.
    name, cache, full, ind = reference
    t = ind.spec.fit_bar(1)
    FitCache.forget()
    lines, _ = run(shocked_after(hours, t), name, tmp_path)  # a fresh cache: every window is refitted
    pd.testing.assert_frame_equal(lines.iloc[:t + 1], full.iloc[:t + 1], check_exact=True)
    assert not np.allclose(lines.iloc[t + 1:].to_numpy(), full.iloc[t + 1:].to_numpy())  # the shock is seen


LABELLED = ("ScoreDirection", "BNNUncertainty", "BNNPlain", "Regime", "RegimeJEM", "PersistenceRegime",
            "VolatilityRegime", "HarForecast")
# labels 20 bars ahead, an embargo of 3, a held-out tail of 12 rows: labels leaking past a fit bar would reach
# into the fit rows, not only the tail (where they would touch early stopping and calibration alone)
GAPS = dict(horizon=20, embargo=3, val_fraction=0.05)


@pytest.mark.parametrize("name", LABELLED)
def test_no_look_ahead_with_horizon_and_embargo(name, hours, tmp_path):
    # the fit at T_1 may use rows t' <= T_1 - 1 - 20 - 3; rows past that have labels that reach past T_1
    FitCache.forget()
    full, ind = run(hours, name, tmp_path / "plain", **GAPS)
    assert (ind.spec.horizon, ind.spec.embargo, ind.spec.first_fit) == (20, 3, 48 + 240 + 20 + 3)
    t = ind.spec.fit_bar(1)
    FitCache.forget()
    lines, _ = run(shocked_after(hours, t), name, tmp_path / "shocked", **GAPS)
    pd.testing.assert_frame_equal(lines.iloc[:t + 1], full.iloc[:t + 1], check_exact=True)


@pytest.mark.parametrize("name", list(INDICATORS))
def test_fit_reads_bars_up_to_its_embargo_only(name, hours, tmp_path):
    """Rule 1 to the bar: the fit at T_k reads bars <= T_k - 1 - embargo only (its last row's label ends there,
    or, without labels, its last row). Shocking the bars after that one leaves fits 0 and 1 as they were (read
    back from the cache); shocking one bar earlier changes fit 1. An ignored horizon or embargo refits fit 1."""
    gaps = GAPS if name in LABELLED else dict(embargo=3)
    FitCache.forget()
    _, ind = run(hours, name, tmp_path, **gaps)
    n = ind.n_fits
    assert n == 3
    last = ind.spec.fit_bar(1) - 1 - 3
    for after, kept in ((last, 2), (last - 1, 1)):
        _, shocked = run(shocked_after(hours, after), name, tmp_path, **gaps)
        assert (shocked.n_fits, shocked.cache.hits) == (n - kept, kept), f"shocked after bar {after}"


def test_mode_parity_bar_by_bar(reference, hours):
    name, cache, full, _ = reference
    lines, _ = run(hours, name, cache, runonce=False)
    assert_parity(lines, full)


def test_mode_parity_replay(reference, hours, quarter_hours):
    # backtrader's replay groups bars by their close time, (t - 1h, t]: stamp the bars with close times
    name, cache, full, ind = reference
    closing = quarter_hours.set_axis(quarter_hours.index + pd.Timedelta(minutes=15))
    if set(ind.feature_spec) & set(SEASONAL_FEATURES):   # features that read the stamps (the BNN's and HAR's scale
        # regressors hold the time of day): compare with batched bars stamped the same way
        full, _ = run(hours.set_axis(hours.index + pd.Timedelta(hours=1)), name, cache)
    lines, _ = run(hours, name, cache, replay_from=closing)
    assert len(lines) == len(full)
    assert_parity(lines, full)


def test_cache_second_run_fits_nothing_and_changed_parameter_refits(reference, hours):
    name, cache, full, ind = reference
    FitCache.forget()                       # a new process: models come from disk
    again, ind2 = run(hours, name, cache)
    assert ind2.n_fits == 0 and ind2.cache.hits == ind.n_fits
    pd.testing.assert_frame_equal(again, full, check_exact=True)
    for path in cache.iterdir():            # the same process: models come from memory
        path.unlink()
    in_memory, ind4 = run(hours, name, cache)
    assert ind4.n_fits == 0 and ind4.cache.hits == ind.n_fits
    pd.testing.assert_frame_equal(in_memory, full, check_exact=True)
    changed, ind3 = run(hours, name, cache, **CHANGED.get(name, dict(seed=1)))
    assert ind3.n_fits == ind.n_fits
    assert not np.allclose(changed.to_numpy()[ind.spec.first_fit:], full.to_numpy()[ind.spec.first_fit:])


def test_bnn_volatility_regression_reads_a_week_by_default(hours, tmp_path):
    """The default scale features hold the week's volatility (``lvol_168``): the BNN's first value comes 168 bars of
    lookback and a training window after the start, and its lines are finite from there."""
    lines, ind = run(hours, "BNNUncertainty", tmp_path, scale_features=SCALE_FEATURES)
    assert "lvol_168" in ind.feature_spec and ind.spec.first_fit == 168 + 240 + 1
    assert ind.plotlabel() == "BNN forecast (BayesianNN on a HAR volatility scale)"
    values = lines.to_numpy()
    assert np.isnan(values[:ind.spec.first_fit]).all() and np.isfinite(values[ind.spec.first_fit:]).all()


@pytest.mark.parametrize("runonce", [True, False])
def test_user_strategy_reads_every_line_of_every_indicator_in_next(hours, tmp_path, runonce):
    seen, orders = [], []

    class Mine(bt.Strategy):
        def __init__(self):
            self.inds = {name: cls(self.data, cache_dir=tmp_path, **SMALL, **kwargs)
                         for name, (cls, kwargs) in INDICATORS.items()}

        def next(self):
            seen.append((len(self), {(name, alias): getattr(ind, alias)[0] for name, ind in self.inds.items()
                                     for alias in ind.lines.getlinealiases()}))
            if self.inds["LogDensity"].gate[0] > 0 and self.inds["Regime"].regime[0] == 0 and not self.position:
                orders.append(self.buy(size=0.01))
            elif self.inds["ScoreDirection"].direction[0] < 0 and self.position:
                self.close()

    cerebro = bt.Cerebro(stdstats=False, runonce=runonce)
    cerebro.adddata(DataFrameFeed(dataname=hours))
    cerebro.addstrategy(Mine)
    strat = cerebro.run()[0]
    # next() starts once all have values: at Regime's minperiod, the longest (lookback 48 + 240 rows + 6)
    first = 48 + 240 + 6
    assert [ind.spec.first_fit for ind in strat.inds.values()] == [288, 288, 289, 289, 289, 289, first, first, 288,
                                                                       288, first, first, 288, 264, 264, 289]
    assert max(ind._minperiod for ind in strat.inds.values()) == first + 1
    assert seen[0][0] == first + 1 and len(seen) == len(hours) - first
    assert len(seen[0][1]) == sum(len(cls.lines.getlinealiases()) for cls, _ in INDICATORS.values())   # 58
    assert all(np.isfinite(v) for _, row in seen for v in row.values())
    for name, ind in strat.inds.items():  # next() read the current bar's value of every line
        lines = lines_of(ind, len(hours))
        for alias in lines:
            np.testing.assert_array_equal([row[name, alias] for _, row in seen], lines[alias].to_numpy()[first:])
    assert {row["LogDensity", "gate"] for _, row in seen} == {0.0, 1.0}
    for name in ("Regime", "RegimeJEM", "PersistenceRegime", "VolatilityRegime"):
        assert {row[name, "regime"] for _, row in seen} <= {0.0, 1.0, 2.0, 3.0}
    for name in ("GaussianDensity", "MixtureDensity"):
        assert {row[name, "gate"] for _, row in seen} == {0.0, 1.0}
    assert orders and all(o.status == o.Completed for o in orders)  # it trades on them


def test_bad_parameters_are_named(hours):
    with pytest.raises(ValueError, match="choose one of"):
        run(hours, "Energy", None, model="nope")
    for name in ("LogDensity", "GaussianDensity", "MixtureDensity"):
        with pytest.raises(ValueError, match=rf"{name}\(alpha=0.7\): alpha must be in"):
            run(hours, name, None, alpha=0.7)
    for name in ("PersistenceRegime", "VolatilityRegime"):
        with pytest.raises(ValueError, match=rf"{name}\(horizon=1\): labels need at least 2 forward bars"):
            run(hours, name, None, horizon=1)
    with pytest.raises(ValueError, match="unknown feature"):
        run(hours, "Energy", None, features=("ret_1", "magic"))
    with pytest.raises(ValueError, match="unknown feature"):
        run(hours, "BNNUncertainty", None, scale_features=("lvol_24", "magic"))
    for name in ("BNNUncertainty", "HarForecast"):
        with pytest.raises(ValueError, match=rf"{name}\(level=1.5\): level must be in \(0, 1\)"):
            run(hours, name, None, level=1.5)
    with pytest.raises(ValueError, match="train_bars"):
        run(hours, "Energy", None, train_bars=5)
