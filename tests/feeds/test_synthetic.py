"""synthetic_market: determinism and the stylised facts of real markets, measured."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from btdensity.feeds import REGIMES, synthetic_market
from btdensity.feeds.synthetic import SHOCK_DF


@pytest.fixture(scope="module")
def market() -> pd.DataFrame:
    return synthetic_market(8760, seed=0)


def test_same_seed_identical_other_seed_differs():
    a, b, c = synthetic_market(2000, seed=3), synthetic_market(2000, seed=3), synthetic_market(2000, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["close"].to_numpy(), c["close"].to_numpy())


def test_fat_tails_and_volatility_clustering(market):
    r = np.diff(np.log(market["close"].to_numpy()))
    assert stats.kurtosis(r, fisher=False) > 3.0
    absr = np.abs(r)
    assert np.corrcoef(absr[1:], absr[:-1])[0, 1] > 0.1
    # without the injected anomalies the tails are still fat (Student-t shocks, regime mixing)
    normal = ~market["anomaly"].to_numpy()[1:]
    assert stats.kurtosis(r[normal], fisher=False) > 4.0


def test_ohlc_consistent_on_every_row(market):
    o, h, l, c = (market[k].to_numpy() for k in ("open", "high", "low", "close"))
    assert (h >= np.maximum(o, c)).all() and (l <= np.minimum(o, c)).all() and (l > 0).all()
    assert np.allclose(o[1:], c[:-1])  # 24/7 market: a bar opens at the last close


def test_volume_rises_with_volatility(market):
    r = np.abs(np.diff(np.log(market["close"].to_numpy())))
    rho = stats.spearmanr(r, market["volume"].to_numpy()[1:]).statistic
    assert rho > 0.3


def test_regimes_are_persistent_and_ordered_by_volatility(market):
    regime = market["regime"].astype(str).to_numpy()
    assert set(regime) == set(REGIMES)
    switches = (regime[1:] != regime[:-1]).sum()
    assert len(regime) / (switches + 1) > 30  # mean spell of more than a day
    r = pd.Series(np.r_[0.0, np.diff(np.log(market["close"].to_numpy()))], index=market.index)
    r = r[~market["anomaly"].to_numpy()]
    vol = r.groupby(market["regime"].astype(str)[r.index]).std()
    assert vol["calm"] < vol["normal"] < vol["volatile"] < vol["crisis"]


def test_drift_and_sigma_are_the_law_each_return_was_drawn_from(market):
    # (r - drift) / sigma on the bars without an anomaly must be the unit-variance t with SHOCK_DF degrees of freedom
    r = np.log(market["close"]).diff().to_numpy()[1:]
    drift, sigma = market["drift"].to_numpy()[1:], market["sigma"].to_numpy()[1:]
    z = ((r - drift) / sigma)[~market["anomaly"].to_numpy()[1:]]
    unit_t = stats.t(SHOCK_DF, scale=np.sqrt((SHOCK_DF - 2.0) / SHOCK_DF))
    assert stats.kstest(z, unit_t.cdf).pvalue > 0.01
    assert stats.kstest(z, "norm").pvalue < 0.01          # the shape matters: the shocks are fat-tailed
    assert abs(np.mean(np.abs(z) > unit_t.ppf(0.95)) - 0.10) < 0.015
    # a return standardised by a wrong scale is not that law: the regime's volatility alone misses the clustering
    regime_vol = market["regime"].astype(str).map(market.groupby("regime", observed=True)["sigma"].median())
    z_regime = ((r - drift) / regime_vol.to_numpy()[1:])[~market["anomaly"].to_numpy()[1:]]
    assert stats.kstest(z_regime, unit_t.cdf).pvalue < stats.kstest(z, unit_t.cdf).pvalue
    assert (market["sigma"] > 0).all()
    assert market.groupby("regime", observed=True)["drift"].nunique().eq(1).all()


def test_anomalies_are_extreme_where_marked(market):
    kinds = market["anomaly_kind"]
    assert market["anomaly"].sum() == (kinds != "").sum() > 10
    r = np.log(market["close"]).diff()
    scale = r.abs().rolling(48).median().shift(1)
    jumps = kinds == "jump"
    assert (r[jumps].abs() / scale[jumps]).min() > 5
    spikes = kinds == "volume_spike"
    vol_ratio = market["volume"] / market["volume"].rolling(48).median().shift(1)
    assert vol_ratio[spikes].min() > 5
    crash_start = (kinds == "flash_crash") & (kinds.shift(1) != "flash_crash")
    assert (r[crash_start] < 0).all()
    recovery = crash_start.shift(1, fill_value=False)
    assert (r[recovery] > 0).all()


def test_frequency_and_index():
    df = synthetic_market(100, freq="15m", seed=1)
    assert str(df.index.tz) == "UTC"
    assert (np.diff(df.index.asi8) == 15 * 60 * 10**9).all()
    assert df[["open", "high", "low", "close", "volume"]].dtypes.eq(np.float64).all()


@pytest.mark.parametrize("kwargs, message", [({"n_bars": 1}, "n_bars"), ({"freq": "1x"}, "timeframe"),
                                             ({"anomaly_rate": 0.5}, "anomaly_rate")])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        synthetic_market(**{"n_bars": 100, **kwargs})


def test_regime_subset_gives_a_stationary_market():
    one = synthetic_market(3000, seed=2, regimes=("normal",))
    assert set(one["regime"].astype(str)) == {"normal"}
    two = synthetic_market(6000, seed=2, regimes=("calm", "normal"))
    assert set(two["regime"].astype(str)) == {"calm", "normal"}
    pd.testing.assert_frame_equal(synthetic_market(500, seed=2), synthetic_market(500, seed=2, regimes=REGIMES))
    with pytest.raises(ValueError, match="regimes"):
        synthetic_market(100, regimes=("bubble",))
