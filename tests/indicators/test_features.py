"""market_features: known values, causality, exact agreement of full and trailing-window computation."""
import numpy as np
import pytest

from btdensity.feeds import synthetic_market
from btdensity.indicators.features import ALL_FEATURES, lookback, market_features


@pytest.fixture(scope="module")
def bars():
    df = synthetic_market(1500, seed=4)
    return [df[k].to_numpy() for k in ("open", "high", "low", "close", "volume")]


def test_known_values(bars):
    o, h, l, c, v = bars
    X = market_features(o, h, l, c, v, spec=ALL_FEATURES)
    col = dict(zip(ALL_FEATURES, X.T))
    r = np.diff(np.log(c))
    t = 700
    np.testing.assert_allclose(col["ret_1"][t], r[t - 1])
    np.testing.assert_allclose(col["ret_24"][t], np.log(c[t] / c[t - 24]))
    np.testing.assert_allclose(col["vol_24"][t], r[t - 24:t].std(ddof=1))
    np.testing.assert_allclose(col["ret_z"][t], r[t - 1] / r[t - 25:t - 1].std(ddof=1))
    lv = np.log1p(v)
    np.testing.assert_allclose(col["volume_z"][t], (lv[t] - lv[t - 48:t].mean()) / lv[t - 48:t].std(ddof=1))
    np.testing.assert_allclose(col["range_pos"][t], (c[t] - l[t - 23:t + 1].min()) / (h[t - 23:t + 1].max()
                                                                                       - l[t - 23:t + 1].min()))
    d = np.diff(c)[t - 14:t]
    np.testing.assert_allclose(col["rsi_14"][t], d[d > 0].sum() / np.abs(d).sum())
    assert 0 <= np.nanmin(col["range_pos"]) and np.nanmax(col["range_pos"]) <= 1


@pytest.mark.parametrize("name", ALL_FEATURES)
def test_nan_exactly_until_lookback_then_defined(bars, name):
    x = market_features(*bars, spec=(name,))[:, 0]
    L = lookback((name,))
    assert np.isnan(x[:L]).all() and np.isfinite(x[L:]).all()


@pytest.mark.parametrize("name", ALL_FEATURES)
def test_causal_and_window_exact(bars, name):
    full = market_features(*bars, spec=(name,))[:, 0]
    L = lookback((name,))
    for t in range(L, 1500, 131):
        window = market_features(*(a[t - L:t + 1] for a in bars), spec=(name,))[-1, 0]
        assert window == full[t]                       # bit for bit: batched and bar-by-bar agree
        future_changed = [a.copy() for a in bars]
        for a in future_changed:
            a[t + 1:] *= 3.0
        assert market_features(*future_changed, spec=(name,))[t, 0] == full[t]


def test_bad_input():
    ones = np.ones(10)
    with pytest.raises(ValueError, match="unknown feature"):
        market_features(ones, ones, ones, ones, ones, spec=("ret_1", "nope"))
    with pytest.raises(ValueError, match="same length"):
        market_features(ones, ones, ones, ones[:5], ones)
    with pytest.raises(ValueError, match="positive"):
        market_features(ones, ones, ones, -ones, ones)
