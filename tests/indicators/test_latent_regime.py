"""LatentRegime against known truths, and its walk-forward contract.

Truth: a market of two planted regimes, in runs of 100-300 bars, that differ only in the joint shape of the features
(four pairs of standard normal features, each pair correlated +0.9 in regime 0 and -0.9 in regime 1: the same
marginals) and in the drift of the close (up in regime 0, down in regime 1), with a few planted outlier bars. The
features reach the indicator through its ``inputs`` hook, carried by the bars (open, high and low as log offsets
from the close, volume as its log). Contract (as tests/indicators/test_contract.py writes it): NaN before the first
fit and finite after, truncation invariance to the bit (batched and bar by bar), mode parity within 1e-10, no
look-ahead with a horizon and an embargo, the model cache (a second run fits nothing and gives the same values), the
same values when the fits run in parallel worker processes.
"""
import doctest
import importlib
import itertools

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from btdensity.feeds import DataFrameFeed, synthetic_market
from btdensity.feeds.ohlcv import resample_ohlcv
from btdensity.indicators import LatentRegime, parallel_fits
from btdensity.indicators.latent_regime import (LatentMixtureFlow, bhattacharyya, label_clusters, match_clusters,
                                                rolling_moments)
from btdensity.indicators.walkforward import FitCache

SCALE = 0.01          # feature units per log offset of open / high / low from the close
RHO, DRIFT = 0.9, 0.002
OUTLIERS = np.arange(1500, 2700, 150)       # bars whose features are (4, 4, 4, -4): like neither regime, and far out


def planted_market(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Bars carrying four features a bar (two pairs, correlated +RHO in regime 0 and -RHO in regime 1) and a close
    drifting +DRIFT / -DRIFT a bar; and the regime of each bar."""
    rng = np.random.default_rng(seed)
    runs = rng.integers(100, 300, n // 100 + 2)
    regime = np.repeat(np.arange(runs.size) % 2, runs)[:n]
    sign = np.where(regime == 0, 1.0, -1.0)
    F = np.empty((n, 4))
    for p in range(2):
        a, b = rng.standard_normal((2, n))
        F[:, 2 * p], F[:, 2 * p + 1] = a, sign * RHO * a + np.sqrt(1 - RHO ** 2) * b
    F[OUTLIERS[OUTLIERS < n]] = [4.0, 4.0, 4.0, -4.0]
    close = 100 * np.exp(np.cumsum(DRIFT * sign + 0.01 * rng.standard_normal(n)))
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    return pd.DataFrame({"open": close * np.exp(SCALE * F[:, 0]), "high": close * np.exp(SCALE * F[:, 1]),
                         "low": close * np.exp(SCALE * F[:, 2]), "close": close, "volume": np.exp(F[:, 3])},
                        index=idx), regime


class PlantedLatentRegime(LatentRegime):
    """Reads the planted features: row t holds bar t's four and bar t-1's four (eight features, four pairs)."""

    def inputs(self, arrays):
        c = np.log(arrays["close"])
        now = np.column_stack([(np.log(arrays[k]) - c) / SCALE for k in ("open", "high", "low")]
                              + [np.log(arrays["volume"])])
        rows = np.full((c.size, 8), np.nan)
        rows[1:, :4], rows[1:, 4:] = now[1:], now[:-1]
        return rows

    def input_lookback(self):
        return 1


PLANTED = dict(n_regimes=2, train_bars=1000, retrain_every=400, n_jobs=1, quiet=True,
               model_kwargs={"n_layers": 4, "hidden": 32}, fit_kwargs={"epochs": 30})
SMALL = dict(train_bars=240, retrain_every=200, n_jobs=1, quiet=True, horizon=6,
             model_kwargs={"n_layers": 2, "hidden": 16}, fit_kwargs={"epochs": 6})


def run(df, cls=LatentRegime, runonce=True, **params):
    class Holder(bt.Strategy):
        def __init__(self):
            self.ind = cls(self.data, **params)

    cerebro = bt.Cerebro(stdstats=False, runonce=runonce)
    cerebro.adddata(DataFrameFeed(dataname=df))
    cerebro.addstrategy(Holder)
    ind = cerebro.run()[0].ind
    n = len(df)
    lines = pd.DataFrame({a: np.asarray(ind.lines[i].array, dtype=float)[:n]
                          for i, a in enumerate(ind.lines.getlinealiases())})
    return lines, ind


def shocked_after(df, t):
    """Every price after bar ``t`` times 10, every volume times 7."""
    shocked = df.copy()
    shocked.iloc[t + 1:, :4] *= 10.0
    shocked.iloc[t + 1:, 4] *= 7.0
    return shocked


# ---------------------------------------------------------------------------------------------------- helpers
def test_doctests():
    result = doctest.testmod(importlib.import_module("btdensity.indicators.latent_regime"))
    assert result.attempted >= 5 and result.failed == 0


def test_rolling_moments_match_brute_force():
    Z = np.random.default_rng(0).normal(size=(40, 3))
    out = rolling_moments(Z, 7)
    upper = np.triu_indices(3)
    brute = [np.r_[Z[i:i + 7].mean(0), (Z[i:i + 7].T @ Z[i:i + 7] / 7)[upper]] for i in range(34)]
    np.testing.assert_allclose(out, brute, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="bars must be in"):
        rolling_moments(Z, 41)


@pytest.mark.parametrize("a, b", [((0.0, 1.0), (1.5, 1.0)), ((0.3, 0.5), (-1.0, 2.0)), ((0.0, 1.0), (0.0, 3.0))])
def test_bhattacharyya_is_minus_log_of_the_overlap(a, b):
    """-ln ∫ sqrt(p q) dx by numerical integration, for 1-D Gaussians (means, standard deviations)."""
    x = np.linspace(-30, 30, 600_001)
    p, q = (np.exp(-0.5 * ((x - m) / s) ** 2) / (s * np.sqrt(2 * np.pi)) for m, s in (a, b))
    overlap = np.sum(np.sqrt(p * q)) * (x[1] - x[0])
    got = bhattacharyya(np.array([a[0]]), np.array([[a[1] ** 2]]), np.array([b[0]]), np.array([[b[1] ** 2]]))
    assert got == pytest.approx(-np.log(overlap), rel=1e-8)


def test_matching_recovers_a_permutation_of_clusters_that_differ_in_correlation_only():
    rng = np.random.default_rng(1)
    corr = [np.array([[1.0, r], [r, 1.0]]) for r in (0.9, -0.9, 0.0)]
    ref_means, ref_covs = np.zeros((3, 2)), np.stack(corr)
    for perm in itertools.permutations(range(3)):
        noisy = np.stack([c + 0.05 * np.diag(rng.uniform(size=2)) for c in ref_covs[list(perm)]])
        means = ref_means[list(perm)] + rng.normal(0, 0.05, (3, 2))
        assert match_clusters(ref_means, ref_covs, means, noisy).tolist() == list(perm)
    # invariant to an affine map of the features applied to both sets
    A, shift = np.array([[3.0, 1.0], [0.0, 0.2]]), np.array([5.0, -2.0])
    moved = [(ref_means @ A.T + shift, A @ ref_covs @ A.T) for _ in range(2)]
    assert match_clusters(*moved[0], moved[1][0][[2, 0, 1]], moved[1][1][[2, 0, 1]]).tolist() == [2, 0, 1]
    with pytest.raises(ValueError, match="as many clusters"):
        match_clusters(ref_means, ref_covs, ref_means[:2], ref_covs[:2])


def test_model_keeps_its_mixture_through_a_checkpoint(tmp_path):
    df, regime = planted_market(900, seed=3)
    X = PlantedLatentRegime.inputs(None, {k: df[k].to_numpy() for k in df.columns})[1:]
    y = np.where(regime[1:] == 0, 1.0, -1.0)
    model = LatentMixtureFlow(8, n_clusters=2, n_layers=2, hidden=16, seed=4).fit(X[:700], X_val=X[700:], y=y[:700],
                                                                                  epochs=5)
    post, dist = model.clusters(X)
    own = post.argmax(1)
    # the clusters are the regimes (one of the two labellings), and their mean y is the regime's sign
    agree = max(np.mean(own == regime[1:]), np.mean(own != regime[1:]))
    assert agree > 0.9
    np.testing.assert_allclose(np.sort(model.cluster_returns_), [-1.0, 1.0], atol=0.1)
    np.testing.assert_allclose(post.sum(1), 1.0)
    model.save(tmp_path / "m.pt", meta={"k": 1})
    again = LatentMixtureFlow.load(tmp_path / "m.pt")
    post2, dist2 = again.clusters(X)
    np.testing.assert_array_equal(post2, post)
    np.testing.assert_array_equal(dist2, dist)
    for name in ("cluster_means_", "cluster_covariances_", "cluster_returns_", "cluster_weights_"):
        np.testing.assert_array_equal(getattr(again, name), getattr(model, name))
    # labels without a reference follow the weights; against its own summaries a model keeps its order
    labelled = label_clusters(model, None)
    assert labelled.labels.tolist() == np.argsort(np.argsort(-model.cluster_weights_)).tolist()
    assert label_clusters(model, labelled).labels.tolist() == labelled.labels.tolist()
    with pytest.raises(ValueError, match="n_clusters must be a positive integer"):
        LatentMixtureFlow(2, n_clusters=0)
    with pytest.raises(ValueError, match="one finite value per row"):
        LatentMixtureFlow(8, n_clusters=2, n_layers=2, hidden=8).fit(X[:100], y=y[:50], epochs=1)


# ---------------------------------------------------------------------------------------------------- planted regimes
@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    df, regime = planted_market(2725, seed=0)
    cache = tmp_path_factory.mktemp("latent-planted")
    FitCache.forget()
    lines, ind = run(df, PlantedLatentRegime, cache_dir=cache, **PLANTED)
    return df, regime, cache, lines, ind


def test_planted_regimes_are_recovered_out_of_sample_with_one_labelling(planted):
    df, regime, _, lines, ind = planted
    n_windows = ind.spec.fit_index(len(df) - 1) + 1
    assert n_windows == 5 and ind.n_fits == 5
    label = lines["regime"].to_numpy()
    for k in range(n_windows):                       # each window: the regimes up to a relabelling
        bars = ind.spec.served(k, len(df))
        own = label[bars.start:bars.stop]
        truth = regime[bars.start:bars.stop]
        assert max(np.mean(own == truth), np.mean(own != truth)) >= 0.9, k
    served = slice(ind.spec.first_fit, len(df))
    best = max(np.mean(label[served] == p[regime[served]]) for p in (np.array([0, 1]), np.array([1, 0])))
    assert best >= 0.95                              # ONE labelling for all windows (measured: 0.985; 0.70 unmatched)
    # the matching had work to do: the mixtures of different windows came out in different orders
    assert len({tuple(ind._chain[k].labels) for k in range(n_windows)}) == 2


def test_direction_has_the_sign_of_the_regime_drift(planted):
    _, regime, _, lines, ind = planted
    served = slice(ind.spec.first_fit, None)
    direction = lines["direction"].to_numpy()[served]
    drift = np.where(regime[served] == 0, 1.0, -1.0)
    assert np.mean(np.sign(direction) == drift) >= 0.9       # measured: 0.98
    # its size: the regime's mean 24-bar log return, 24 * DRIFT, within the noise of ~700 overlapping returns
    assert np.median(np.abs(direction)) == pytest.approx(24 * DRIFT, abs=0.012)


def test_distance_is_about_one_on_usual_bars_and_large_on_outliers(planted):
    df, _, _, lines, ind = planted
    distance = lines["distance"].to_numpy()
    served = np.arange(ind.spec.first_fit, len(df))
    outlier_rows = np.union1d(OUTLIERS, OUTLIERS + 1)          # a row holds its bar's features and the previous bar's
    usual = np.setdiff1d(served, outlier_rows)
    assert 0.85 < np.median(distance[usual]) < 1.2           # calibrated on the held-out tail: 1 = a usual bar
    hit = OUTLIERS[OUTLIERS >= ind.spec.first_fit]
    assert hit.size >= 5 and (distance[hit] > np.quantile(distance[usual], 0.95)).all(), (distance[hit], np.quantile(distance[usual], [0.95, 0.99]))


def test_mode_parity_bar_by_bar(planted):
    df, _, cache, lines, ind = planted
    stepped, again = run(df, PlantedLatentRegime, runonce=False, cache_dir=cache, **PLANTED)
    assert again.n_fits == 0
    pd.testing.assert_frame_equal(stepped, lines, check_exact=False, rtol=1e-10, atol=1e-10)


def test_truncation_invariance_both_modes(planted):
    # the data ends at the third fit's bar: window 2's labels come from the chain of windows 0, 1 and 2
    df, _, cache, lines, ind = planted
    m = ind.spec.fit_bar(2) + 1
    cut, _ = run(df.iloc[:m], PlantedLatentRegime, cache_dir=cache, **PLANTED)
    pd.testing.assert_frame_equal(cut, lines.iloc[:m], check_exact=True)
    cut, _ = run(df.iloc[:m], PlantedLatentRegime, runonce=False, cache_dir=cache, **PLANTED)
    whole, _ = run(df, PlantedLatentRegime, runonce=False, cache_dir=cache, **PLANTED)
    pd.testing.assert_frame_equal(cut, whole.iloc[:m], check_exact=True)


# ---------------------------------------------------------------------------------------------------- contract
@pytest.fixture(scope="module")
def hours():
    return resample_ohlcv(synthetic_market(720 * 4, freq="15m", seed=11), pd.Timedelta(hours=1))


@pytest.fixture(scope="module")
def reference(hours, tmp_path_factory):
    cache = tmp_path_factory.mktemp("latent-contract")
    FitCache.forget()
    lines, ind = run(hours, cache_dir=cache, **SMALL)
    return cache, lines, ind


def test_values_start_at_the_first_fit_and_are_finite(reference, hours):
    _, lines, ind = reference
    first = ind.spec.first_fit
    assert first == 48 + 240 + 6
    assert lines.iloc[:first].isna().all().all()
    assert np.isfinite(lines.iloc[first:].to_numpy()).all()
    assert set(np.unique(lines["regime"].iloc[first:])) <= {0.0, 1.0, 2.0}
    assert ind.n_fits == ind.spec.fit_index(len(hours) - 1) + 1 == 3


def test_second_run_reads_the_models_from_disk(reference, hours):
    cache, lines, ind = reference
    FitCache.forget()                                # a new process: models (and mixtures) come from disk
    again, ind2 = run(hours, cache_dir=cache, **SMALL)
    assert ind2.n_fits == 0 and ind2.cache.hits == ind.n_fits
    pd.testing.assert_frame_equal(again, lines, check_exact=True)
    changed, ind3 = run(hours, cache_dir=cache, **{**SMALL, "n_regimes": 2})
    assert ind3.n_fits == ind.n_fits and set(np.unique(changed["regime"].dropna())) == {0.0, 1.0}


def test_a_window_reached_out_of_order_first_labels_the_windows_before_it(reference, hours):
    _, _, ind = reference
    chain = dict(ind._chain)
    X, y, _ = ind._once_inputs()
    ind._chain.clear()
    _, (_, labelled) = ind._model_of(ind._windows[2], X, y)
    assert sorted(ind._chain) == [0, 1, 2]
    for k in range(3):
        np.testing.assert_array_equal(ind._chain[k].labels, chain[k].labels)
    assert labelled is ind._chain[2]


def test_no_look_ahead_with_horizon_and_embargo(hours, tmp_path):
    gaps = dict(horizon=20, embargo=3, val_fraction=0.05)
    FitCache.forget()
    full, ind = run(hours, cache_dir=tmp_path / "plain", **{**SMALL, **gaps})
    t = ind.spec.fit_bar(1)
    FitCache.forget()
    lines, _ = run(shocked_after(hours, t), cache_dir=tmp_path / "shocked", **{**SMALL, **gaps})
    pd.testing.assert_frame_equal(lines.iloc[:t + 1], full.iloc[:t + 1], check_exact=True)
    assert not np.allclose(lines.iloc[t + 1:].to_numpy(), full.iloc[t + 1:].to_numpy(), equal_nan=True)


def test_parallel_warm_started_fits_give_the_same_values(hours, tmp_path):
    """Fits in a worker process (the clusters too), each window starting from the previous window's flow, and
    labels matched as the windows are evaluated: the values of a serial run, exactly."""
    FitCache.forget()
    serial, _ = run(hours, cache_dir=None, **{**SMALL, "warm_start": True})
    pool = parallel_fits.get_pool(2).start()
    try:
        FitCache.forget()
        parallel, ind = run(hours, cache_dir=tmp_path, **{**SMALL, "n_jobs": 2, "warm_start": True})
        assert pool.worker_fits > 0 and ind._queued and ind.n_fits == 3
    finally:
        parallel_fits.shutdown_pool()
    pd.testing.assert_frame_equal(parallel, serial, check_exact=True)


def test_bad_parameters_are_named(hours):
    with pytest.raises(ValueError, match=r"LatentRegime\(n_regimes=1\)"):
        run(hours, **{**SMALL, "n_regimes": 1})
    with pytest.raises(ValueError, match="set n_regimes instead"):
        run(hours, **{**SMALL, "model_kwargs": {"n_clusters": 2}})
