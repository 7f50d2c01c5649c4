"""market_features: known values, causality, exact agreement of full and trailing-window computation, and finite,
defined values on degenerate bars (flat stretches, zero volume, high == low, tiny and huge prices)."""
import numpy as np
import pytest

from btdensity.feeds import synthetic_market
from btdensity.indicators.features import (ALL_FEATURES, SCALE_FLOOR, SEASONAL_FEATURES, Z_BOUND, lookback,
                                           market_features)

#: the features of the bars' prices and volumes (the seasonal ones read time stamps: tested at the end)
PRICE_FEATURES = tuple(name for name in ALL_FEATURES if name not in SEASONAL_FEATURES)


@pytest.fixture(scope="module")
def bars():
    df = synthetic_market(1500, seed=4)
    return [df[k].to_numpy() for k in ("open", "high", "low", "close", "volume")]


def test_known_values(bars):
    o, h, l, c, v = bars
    X = market_features(o, h, l, c, v, spec=PRICE_FEATURES)
    col = dict(zip(PRICE_FEATURES, X.T))
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


@pytest.mark.parametrize("name", PRICE_FEATURES)
def test_nan_exactly_until_lookback_then_defined(bars, name):
    x = market_features(*bars, spec=(name,))[:, 0]
    L = lookback((name,))
    assert np.isnan(x[:L]).all() and np.isfinite(x[L:]).all()


@pytest.mark.parametrize("name", PRICE_FEATURES)
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
    with pytest.raises(ValueError, match="positive"):
        market_features(ones, 0 * ones, ones, ones, ones)      # log(high / low) needs a positive high too


# ---------------------------------------------------------------- degenerate bars: flat markets, zero volume
FLAT_SPANS = ((200, 60), (600, 180), (1000, 60))        # (first bar, bars): flat hours of a minute market


def with_flat_hours(df, spans=FLAT_SPANS):
    """``df`` with each span flat: open = high = low = close = the close before it, zero volume."""
    df = df.copy()
    for start, length in spans:
        df.iloc[start:start + length, :4] = df["close"].iloc[start - 1]
        df.iloc[start:start + length, 4] = 0.0
    return df


def ohlcv(df, scale=1.0):
    return [df[k].to_numpy() * (scale if k != "volume" else 1.0) for k in ("open", "high", "low", "close", "volume")]


def flat_then_spike(n=300, spike=150, price=7.0, jump=0.01):
    """Constant bars (zero volume, high == low) with one move at bar ``spike``; flat at the new price after it."""
    c = np.where(np.arange(n) < spike, price, price * np.exp(jump))
    h, l, v = c.copy(), c.copy(), np.zeros(n)
    h[spike], l[spike], v[spike] = c[spike] * 1.002, price, 50.0
    return [c.copy(), h, l, c, v]


def tick_rounded():
    """Close-only bars (open = high = low = close) rounded to a coarse tick: long runs of one price."""
    c = np.round(synthetic_market(1500, freq="1min", seed=2)["close"].to_numpy() / 25.0) * 25.0
    return [c, c, c, c, np.full(c.size, 3.0)]


DEGENERATE = {
    "flat_hours": lambda: ohlcv(with_flat_hours(synthetic_market(1500, freq="1min", seed=4))),
    "constant_for_hours": lambda: [np.full(1500, 42.5)] * 4 + [np.zeros(1500)],
    "constant_volume": lambda: [np.full(600, 42.5)] * 4 + [np.full(600, 12.0)],
    "zero_volume": lambda: ohlcv(synthetic_market(1500, freq="1min", seed=4).assign(volume=0.0)),
    "high_eq_low_eq_open_eq_close": tick_rounded,
    "spike_after_flat": flat_then_spike,
    "tiny_prices": lambda: ohlcv(with_flat_hours(synthetic_market(1500, freq="1min", seed=4)), 1e-8 / 2e4),
    "huge_prices": lambda: ohlcv(with_flat_hours(synthetic_market(1500, freq="1min", seed=4)), 1e8 / 2e4),
}


@pytest.mark.parametrize("case", DEGENERATE)
def test_every_feature_finite_on_degenerate_bars(case):
    bars = DEGENERATE[case]()
    X = market_features(*bars, spec=PRICE_FEATURES)
    for j, name in enumerate(PRICE_FEATURES):
        L = lookback((name,))
        assert np.isnan(X[:L, j]).all(), name
        assert np.isfinite(X[L:, j]).all(), f"{name}: {np.count_nonzero(~np.isfinite(X[L:, j]))} non-finite"


def test_flat_window_values():
    """The degenerate cases as defined in features.py, exactly: a flat window has no return, no volatility, a
    volume like the last 48 and the close in the middle of its range."""
    want = {"ret_1": 0.0, "ret_z": 0.0, "ret_4": 0.0, "ret_24": 0.0, "vol_24": 0.0, "vol_ratio": 0.0,
            "volume_z": 0.0, "range_z": 0.0, "range_pos": 0.5, "rsi_14": 0.5,
            **dict.fromkeys(("lvol_1", "lvol_6", "lvol_24", "lvol_48", "lvol_168", "lpark_6", "lpark_24", "lpark_168",
                             "lgk_24"), np.log(SCALE_FLOOR))}
    L = lookback(PRICE_FEATURES)
    for price in (1e-8, 42.5, 1e8):
        X = market_features(*[np.full(200, price)] * 4, np.zeros(200), spec=PRICE_FEATURES)
        got = {name: set(X[L:, j].tolist()) for j, name in enumerate(PRICE_FEATURES)}
        assert got == {name: {value} for name, value in want.items()}, price
    # one nonzero volume for 48 bars: volume_z is 0 up to the rounding of the window's mean (a few ulp / 1e-8)
    L = lookback(("volume_z", "vol_ratio"))
    for volume in np.random.default_rng(0).uniform(0.0, 1e4, 50):
        X = market_features(*[np.full(60, 42.5)] * 4, np.full(60, volume), spec=PRICE_FEATURES)
        assert (np.abs(X[L:, PRICE_FEATURES.index("volume_z")]) < 1e-6).all()
        assert (X[L:, PRICE_FEATURES.index("vol_ratio")] == 0.0).all()


def test_first_move_after_a_flat_stretch():
    """A move out of a flat window: its z-scores are the move over SCALE_FLOOR, bounded at Z_BOUND."""
    t = 150
    o, h, l, c, v = flat_then_spike(spike=t)
    col = dict(zip(PRICE_FEATURES, market_features(o, h, l, c, v, spec=PRICE_FEATURES).T))
    r = np.log(c[t]) - np.log(c[t - 1])
    assert SCALE_FLOOR == 1e-8 and Z_BOUND == 1e3
    assert r / SCALE_FLOOR > Z_BOUND and col["ret_z"][t] == Z_BOUND          # extreme, finite, bounded
    assert col["range_z"][t] == Z_BOUND and col["volume_z"][t] == Z_BOUND  # after 48 bars of zero volume
    down = flat_then_spike(spike=t)
    down[3][t] = down[2][t] = down[3][t - 1] * 0.99                           # the same move, downwards
    assert market_features(*down, spec=("ret_z",))[t, 0] == -Z_BOUND
    np.testing.assert_allclose(col["vol_ratio"][t], 0.5 * np.log(8.0))   # std of one move in 6 vs in 48 bars
    assert col["range_pos"][t] == (c[t] - l[t]) / (h[t] - l[t]) and col["rsi_14"][t] == 1.0
    # flat again: the move leaves the 6-bar window first, then the 48-bar one
    assert col["ret_z"][t + 1] == 0.0 and col["range_z"][t + 1] == 0.0
    np.testing.assert_allclose(col["vol_ratio"][t + 6:t + 48], np.log(SCALE_FLOOR * np.sqrt(48.0) / r))
    assert (col["vol_ratio"][t + 48:] == 0.0).all() and (col["range_pos"][t + 24:] == 0.5).all()
    assert (col["rsi_14"][t + 14:] == 0.5).all() and (col["volume_z"][t + 49:] == 0.0).all()


def test_nearly_flat_is_near_exactly_flat():
    """Continuity at the floor: moves far below SCALE_FLOOR give the values of an exactly flat window."""
    flat = flat_then_spike(spike=150)
    wiggle = [a.copy() for a in flat]
    noise = 1.0 + 1e-11 * np.sin(np.arange(300.0))                   # volatility ~1e-11, below the floor
    for a in wiggle[:4]:
        a[:150] *= noise[:150]
    wiggle[1][:150] = np.maximum(wiggle[0], wiggle[3])[:150]
    wiggle[2][:150] = np.minimum(wiggle[0], wiggle[3])[:150]
    L = lookback(PRICE_FEATURES)
    a = market_features(*flat, spec=PRICE_FEATURES)[L:]
    b = market_features(*wiggle, spec=PRICE_FEATURES)[L:]
    assert np.isfinite(a).all() and np.isfinite(b).all()
    cols = [PRICE_FEATURES.index(n) for n in ("ret_z", "vol_ratio", "range_z", "volume_z")]   # the floored ones
    np.testing.assert_allclose(b[:, cols], a[:, cols], rtol=1e-6, atol=1e-2)


@pytest.mark.parametrize("scale", [1e-8 / 2e4, 1e8 / 2e4], ids=["tiny", "huge"])
def test_price_scale_does_not_change_features(scale):
    df = with_flat_hours(synthetic_market(1500, freq="1min", seed=4))
    base = market_features(*ohlcv(df), spec=PRICE_FEATURES)
    scaled = market_features(*ohlcv(df, scale), spec=PRICE_FEATURES)
    assert np.isfinite(scaled[lookback(PRICE_FEATURES):]).all()
    np.testing.assert_allclose(scaled, base, rtol=1e-6, atol=1e-9)


def test_window_exact_on_flat_hours():
    """Truncation invariance stays exact through flat stretches (what the bar-by-bar path relies on)."""
    bars = ohlcv(with_flat_hours(synthetic_market(1500, freq="1min", seed=4)))
    full = market_features(*bars, spec=PRICE_FEATURES)
    L = lookback(PRICE_FEATURES)
    bars_in_and_after_flats = [t for s, n in FLAT_SPANS for t in range(s, s + n + L + 2, 3)]
    for t in bars_in_and_after_flats:
        window = market_features(*(a[t - L:t + 1] for a in bars), spec=PRICE_FEATURES)[-1]
        assert np.isfinite(window).all() and np.array_equal(window, full[t]), t


def test_risk_features_against_hand_computation():
    """HAR log volatilities, Parkinson and Garman-Klass on a scripted window, computed the long way."""
    rng = np.random.default_rng(7)
    n = 400
    c = 50.0 * np.exp(np.cumsum(0.01 * rng.standard_normal(n)))
    o = np.r_[c[0], c[:-1]]
    h = np.maximum(o, c) * (1 + 0.004 * rng.random(n))
    low = np.minimum(o, c) * (1 - 0.004 * rng.random(n))
    spec = ("lvol_1", "lvol_6", "lvol_24", "lvol_168", "lpark_24", "lgk_24", "lpark_6", "lpark_168")
    X = market_features(o, h, low, c, np.ones(n), spec=spec)
    r = np.diff(np.log(c))
    t = 300
    window = lambda k: r[t - k:t]                                                  # noqa: E731  (returns into t)
    assert X[t, 0] == pytest.approx(np.log(abs(r[t - 1])))
    for j, k in ((1, 6), (2, 24), (3, 168)):
        assert X[t, j] == pytest.approx(0.5 * np.log(np.mean(window(k) ** 2)))
    hl, co = np.log(h[t - 23:t + 1] / low[t - 23:t + 1]), np.log(c[t - 23:t + 1] / o[t - 23:t + 1])
    assert X[t, 4] == pytest.approx(0.5 * np.log(np.mean(hl ** 2) / (4 * np.log(2))))
    assert X[t, 5] == pytest.approx(0.5 * np.log(np.mean(0.5 * hl ** 2 - (2 * np.log(2) - 1) * co ** 2)))
    assert np.isnan(X[:168, 3]).all() and np.isfinite(X[168:, 3]).all()
    for j, k in ((6, 6), (7, 168)):                       # the range over the last k bars, the bar t's own included
        hl = np.log(h[t - k + 1:t + 1] / low[t - k + 1:t + 1])
        assert X[t, j] == pytest.approx(0.5 * np.log(np.mean(hl ** 2) / (4 * np.log(2))))
    assert np.isnan(X[:167, 7]).all() and np.isfinite(X[167:, 7]).all()
    assert np.isnan(X[:5, 6]).all() and np.isfinite(X[5:, 6]).all()


def test_seasonal_features_are_the_clock_as_angles():
    import backtrader as bt
    import pandas as pd

    stamps = pd.to_datetime(["2024-01-01 00:00", "2024-01-01 06:00", "2024-01-03 18:00", "2024-01-07 12:00"])
    time = (stamps - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
    ones = np.ones(len(stamps))
    X = market_features(ones, ones, ones, ones, ones, spec=SEASONAL_FEATURES, time=time.to_numpy())
    hours = np.array([0.0, 6.0, 18.0, 12.0])
    week_days = np.array([0.0, 0.25, 2.75, 6.5])              # 2024-01-01 was a Monday
    np.testing.assert_allclose(X[:, 0], np.sin(2 * np.pi * hours / 24), atol=1e-9)
    np.testing.assert_allclose(X[:, 1], np.cos(2 * np.pi * hours / 24), atol=1e-9)
    np.testing.assert_allclose(X[:, 2], np.sin(2 * np.pi * hours / 12), atol=1e-9)
    np.testing.assert_allclose(X[:, 3], np.cos(2 * np.pi * hours / 12), atol=1e-9)
    np.testing.assert_allclose(X[1, 2:4], [0.0, -1.0], atol=1e-9)     # 06:00: half the 12-hour cycle
    np.testing.assert_allclose(X[:, 4], np.sin(2 * np.pi * week_days / 7), atol=1e-9)
    np.testing.assert_allclose(X[:, 5], np.cos(2 * np.pi * week_days / 7), atol=1e-9)
    assert lookback(SEASONAL_FEATURES) == 0
    # the indicators' time stamps: backtrader's day numbers less its number of 1970-01-01
    from btdensity.indicators.base import _UNIX_EPOCH

    assert bt.date2num(stamps[2].to_pydatetime()) - _UNIX_EPOCH == pytest.approx(time[2], abs=1e-9)


def test_seasonal_features_without_time_stamps_are_an_error():
    ones = np.ones(5)
    with pytest.raises(ValueError, match="need the bars' time stamps"):
        market_features(ones, ones, ones, ones, ones, spec=("ret_1", "hour_sin"))
    with pytest.raises(ValueError, match="one stamp per bar"):
        market_features(ones, ones, ones, ones, ones, spec=("hour_sin",), time=np.zeros(4))
