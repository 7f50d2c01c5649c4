"""The walk-forward contract of test_contract.py for BNNHorizons and SequenceUncertainty (also standardised by the
volatility regression, centred at zero: SequenceScaled): NaN before the first fit and
finite after, truncation invariance to the bit (batched and bar by bar), mode parity (bar by bar and replay), no
look-ahead, fits read no bar past their embargo, the model cache, and the same values from parallel fits. Kept apart
from test_contract.py, whose strategy test pins the line count and the warm-ups of the indicators there.

SequenceUncertainty's input rows are checked against a brute-force window of ``market_features``, and its
``input_lookback`` is shown to be exactly the history a row needs."""
import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from btdensity.feeds import DataFrameFeed, synthetic_market
from btdensity.feeds.ohlcv import resample_ohlcv
from btdensity.indicators import BNNHorizons, SequenceUncertainty, parallel_fits
from btdensity.indicators.features import RISK_FEATURES, SEASONAL_FEATURES, lookback, market_features
from btdensity.indicators.walkforward import FitCache
from btdensity.models.volatility_scaled import VolatilityScaledSequence

from .conftest import DAY_SCALE_FEATURES

SMALL = dict(train_bars=240, retrain_every=200, quiet=True, n_jobs=1)
INDICATORS = {
    "BNNHorizons": (BNNHorizons, dict(horizons=(1, 6), model_kwargs={"hidden": (8,)}, fit_kwargs={"epochs": 6},
                                      n_samples=16)),
    "SequenceUncertainty": (SequenceUncertainty, dict(seq_len=6, model_kwargs={"hidden": 8, "kl_warmup": 2},
                                                      fit_kwargs={"epochs": 6}, n_samples=16)),
    # the target in units of the volatility regression on the current bar's scale features, centred at zero
    "SequenceScaled": (SequenceUncertainty, dict(seq_len=6, model_kwargs={"hidden": 8, "kl_warmup": 2},
                                                 fit_kwargs={"epochs": 6}, n_samples=16, standardize=True,
                                                 zero_mean=True, scale_features=DAY_SCALE_FEATURES)),
}
N_HOURS = 720


def lines_of(ind, n):
    return pd.DataFrame({alias: np.asarray(ind.lines[i].array, dtype=float)[:n]
                         for i, alias in enumerate(ind.lines.getlinealiases())})


def run(df, name, cache_dir, runonce=True, replay_from=None, **overrides):
    cls, kwargs = INDICATORS[name]
    params = {**SMALL, **kwargs, "cache_dir": cache_dir, **overrides}

    class Holder(bt.Strategy):
        def __init__(self):
            self.ind = cls(self.data, **params)

    cerebro = bt.Cerebro(stdstats=False, runonce=runonce)
    if replay_from is None:
        cerebro.adddata(DataFrameFeed(dataname=df))
    else:
        cerebro.replaydata(DataFrameFeed(dataname=replay_from), timeframe=bt.TimeFrame.Minutes, compression=60)
    cerebro.addstrategy(Holder)
    strat = cerebro.run()[0]
    return lines_of(strat.ind, len(strat.data.datetime.array)), strat.ind


def assert_parity(lines, full):
    """The same models evaluate one row (bar by bar) or a window's rows at once, in float64."""
    pd.testing.assert_frame_equal(lines, full, check_exact=False, rtol=1e-10, atol=1e-10)


def shocked_after(df, t):
    """Every price after bar ``t`` times 10, every volume times 7."""
    shocked = df.copy()
    shocked.iloc[t + 1:, :4] *= 10.0
    shocked.iloc[t + 1:, 4] *= 7.0
    return shocked


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


def test_lines_start_at_the_first_fit_and_are_finite(reference, hours):
    name, cache, lines, ind = reference
    first = ind.spec.first_fit
    assert lines.iloc[:first].isna().all().all() and np.isfinite(lines.iloc[first:].to_numpy()).all()
    assert ind.n_fits == ind.spec.fit_index(len(hours) - 1) + 1 == 3
    expected = {"BNNHorizons": (lookback(RISK_FEATURES), 6), "SequenceUncertainty": (lookback(RISK_FEATURES) + 5, 1),
                "SequenceScaled": (lookback(tuple(dict.fromkeys(RISK_FEATURES + DAY_SCALE_FEATURES))) + 5, 1)}
    assert (ind.spec.first_row, ind.spec.horizon) == expected[name]
    if name == "SequenceScaled":   # the regression reads the current bar's (the window's last row's) scale features
        last = 5 * len(ind.feature_spec)
        model = VolatilityScaledSequence.load(sorted(cache.glob("*.pt"))[0])   # a window's checkpoint
        assert model.columns == [last + ind.feature_spec.index(f) for f in DAY_SCALE_FEATURES]
        assert (lines["mean"].dropna() == 0).all() and np.isfinite(lines["lower"].iloc[first:]).all()


def test_truncation_invariance_both_modes(reference, hours):
    name, cache, full, ind = reference
    m = ind.spec.fit_bar(1) + 1      # the data ends at the second fit's bar: a fit reading labels past it finds none
    cut, _ = run(hours.iloc[:m], name, cache)
    pd.testing.assert_frame_equal(cut, full.iloc[:m], check_exact=True)
    cut, _ = run(hours.iloc[:m], name, cache, runonce=False)
    whole, _ = run(hours, name, cache, runonce=False)
    pd.testing.assert_frame_equal(cut, whole.iloc[:m], check_exact=True)
    assert_parity(whole, full)                                  # mode parity, bar by bar


def test_mode_parity_replay(reference, hours, quarter_hours):
    name, cache, full, ind = reference
    closing = quarter_hours.set_axis(quarter_hours.index + pd.Timedelta(minutes=15))
    if set(ind.feature_spec) & set(SEASONAL_FEATURES):   # the scale regressors read the stamps (the time of day):
        full, _ = run(hours.set_axis(hours.index + pd.Timedelta(hours=1)), name, cache)   # batched, stamped alike
    lines, _ = run(hours, name, cache, replay_from=closing)
    assert len(lines) == len(full)
    assert_parity(lines, full)


def test_no_look_ahead(reference, hours, tmp_path):
    name, _, full, ind = reference
    t = ind.spec.fit_bar(1)
    FitCache.forget()
    lines, _ = run(shocked_after(hours, t), name, tmp_path)     # a fresh cache: every window is refitted
    pd.testing.assert_frame_equal(lines.iloc[:t + 1], full.iloc[:t + 1], check_exact=True)
    assert not np.allclose(lines.iloc[t + 1:].to_numpy(), full.iloc[t + 1:].to_numpy())


def test_fit_reads_bars_up_to_its_embargo_only(hours, tmp_path):
    """SequenceUncertainty with labels 20 bars ahead and an embargo of 3 (BNNHorizons: test_horizons.py)."""
    gaps = dict(horizon=20, embargo=3, val_fraction=0.05)
    FitCache.forget()
    _, ind = run(hours, "SequenceUncertainty", tmp_path, **gaps)
    last = ind.spec.fit_bar(1) - 1 - 3
    for after, kept in ((last, 2), (last - 1, 1)):
        _, shocked = run(shocked_after(hours, after), "SequenceUncertainty", tmp_path, **gaps)
        assert (shocked.n_fits, shocked.cache.hits) == (3 - kept, kept), f"shocked after bar {after}"


@pytest.fixture(scope="module")
def pool():
    """One pool of parallel fits for the module, its worker started (a worker takes seconds to import torch)."""
    yield parallel_fits.get_pool(2).start()
    parallel_fits.shutdown_pool()


def test_cache_and_parallel_fits(reference, hours, tmp_path, pool):
    name, cache, full, ind = reference
    FitCache.forget()                                           # a new process: models come from disk
    again, ind2 = run(hours, name, cache)
    assert ind2.n_fits == 0 and ind2.cache.hits == ind.n_fits
    pd.testing.assert_frame_equal(again, full, check_exact=True)
    changed, ind3 = run(hours, name, cache, seed=1)
    assert ind3.n_fits == ind.n_fits
    assert not np.allclose(changed.to_numpy()[ind.spec.first_fit:], full.to_numpy()[ind.spec.first_fit:])
    FitCache.forget()                                           # fits in a worker process, which rebuilds the class
    done = pool.worker_fits
    parallel, ind4 = run(hours, name, tmp_path, n_jobs=2)
    assert pool.worker_fits > done and ind4._queued and ind4.n_fits == ind.n_fits
    pd.testing.assert_frame_equal(parallel, full, check_exact=True)


# ---------------------------------------------------------------------------------------------------- input rows
def test_sequence_rows_are_the_last_bars_feature_rows_and_need_exactly_the_lookback(hours):
    _, ind = run(hours.iloc[:400], "SequenceUncertainty", None)
    arrays = {c: hours[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close", "volume")}
    rows = ind.inputs(arrays)
    features = market_features(*arrays.values(), spec=RISK_FEATURES)
    assert rows.shape == (len(hours), 6 * len(RISK_FEATURES)) and ind.input_lookback() == lookback(RISK_FEATURES) + 5
    for t in (ind.input_lookback(), 300, len(hours) - 1):       # brute force: bars t-5 ... t, oldest first
        np.testing.assert_array_equal(rows[t], features[t - 5:t + 1].ravel())
        own = ind.inputs({c: a[t - ind.input_lookback():t + 1] for c, a in arrays.items()})
        np.testing.assert_array_equal(own[-1], rows[t])          # the lookback's bars suffice ...
        short = ind.inputs({c: a[t - ind.input_lookback() + 1:t + 1] for c, a in arrays.items()})
        assert np.isnan(short[-1]).any()                         # ... and one bar fewer does not
    assert np.isnan(rows[ind.input_lookback() - 1]).any() and np.isfinite(rows[ind.input_lookback():]).all()


def test_sequence_bad_parameters_are_named(hours):
    for seq_len in (0, 2.5):
        with pytest.raises(ValueError, match=r"SequenceUncertainty\(seq_len=.*\): seq_len must be a positive"):
            run(hours, "SequenceUncertainty", None, seq_len=seq_len)
