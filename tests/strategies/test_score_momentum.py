"""``score_momentum`` on scripted ScoreDirection lines (no fitting): the consistency gate holds entries back until
``consistency`` reaches ``min_consistency`` (off by default: the same trades as before), and inverse score-variance
sizing gives exactly ``target × scale × min(median / score_var, var_cap) / var_cap`` at entry and resizes a held
position through the overlay's band and minimum holding time."""
import numpy as np
import pandas as pd
import pytest

from btdensity.evidence.replay import replay_indicator
from btdensity.indicators.score_direction import direction_consistency
from btdensity.runner import BacktestConfig, backtest

N = 480
NAN = float("nan")
LINES = ("direction", "strength", "consistency", "score_var")


def market():
    """Hourly bars whose close moves by ±0.4 % alternately: a constant volatility, so the overlay's scale is ~1."""
    close = 100.0 * np.exp(0.004 * (np.arange(N) % 2))
    opens = np.r_[close[0], close[:-1]]
    idx = pd.date_range("2024-01-01", periods=N, freq="1h", tz="UTC")
    return pd.DataFrame({"open": opens, "high": np.maximum(opens, close) * 1.001,
                         "low": np.minimum(opens, close) * 0.999, "close": close, "volume": 1e6}, index=idx)


def script(**columns):
    """ScoreDirection's lines, NaN on the first 50 bars; ``columns``: line -> [(start, stop, value), ...]."""
    values = {"direction": 0.0, "strength": 0.0, "consistency": 0.5, "score_var": 1.0}
    out = np.column_stack([np.full(N, values[name]) for name in LINES])
    for name, spans in columns.items():
        for start, stop, value in spans:
            out[start:stop, LINES.index(name)] = value
    out[:50] = NAN
    return out


def run(values, lines=LINES, **params):
    swap = {"ScoreDirection": (replay_indicator("ScoreDirection", lines), values)}
    return backtest(market(), BacktestConfig("score_momentum", commission=0.001,
                                             params={"signal_hold": 0, "replace": swap, **params}))


def decisions(res):
    pos = res.positions.to_numpy()
    return [int(d) for d in np.flatnonzero(np.diff(pos) != 0)]


GATED = script(direction=[(250, N, 1.0)], strength=[(250, N, 2.0), (350, 351, 0.4)],
               consistency=[(300, 301, 0.6), (301, 350, 0.3), (351, 400, 0.55), (400, 401, NAN), (401, N, 0.9)])


def test_the_consistency_gate_holds_entries_back():
    # 250-299: consistency 0.5 < 0.6; 300: exactly 0.6 enters; 301-349 below it, but a held position stays; 350:
    # strength 0.4 < exit_strength leaves; 351-399: 0.55 keeps it out, 400: NaN too; 401: 0.9 enters
    res = run(GATED, min_consistency=0.6, band=1.0)
    assert decisions(res) == [300, 350, 401]
    # off (the default 0): in at 250 when the direction turns up, out at 350, in again at 351
    assert decisions(run(GATED, band=1.0)) == [250, 350, 351]


def test_the_default_ignores_the_new_lines():
    """With the gate and the sizing off, an indicator with only direction and strength trades the same."""
    old = run(GATED[:, :2], lines=LINES[:2], band=1.0)
    new = run(GATED, band=1.0)
    assert decisions(old) == decisions(new) == [250, 350, 351]
    pd.testing.assert_series_equal(old.values, new.values)


def test_a_direction_line_alone_gets_the_consistency_from_its_history():
    """A baseline in ScoreDirection's place (direction and strength lines only): the gate reads the consistency
    computed from its direction line (direction_consistency over consistency_bars)."""
    d = script(direction=[(250, 262, 1.0), (262, 268, -1.0), (268, N, 1.0)], strength=[(250, N, 2.0)])[:, :2]
    c = direction_consistency(d[:, 0], 24)[:, 0]
    # the share of the last 24 directions that are up reaches 0.75 at 273: 250-261 and 268-273, 18 of 24
    first = int(np.argmax((c >= 0.75) & (d[:, 0] > 0)))
    assert first == 273 and c[272] == pytest.approx(17 / 24) and c[261] == 0.5
    res = run(d, lines=LINES[:2], min_consistency=0.75, band=1.0)
    assert decisions(res) == [273]
    assert decisions(run(d, lines=LINES[:2], band=1.0)) == [250, 262, 268]


VARIED = script(direction=[(300, N, 1.0)], strength=[(300, N, 2.0), (320, 321, 0.4), (360, 361, 0.4)],
                score_var=[(300, 301, 0.25), (340, 341, 2.0), (400, N, 0.5)])


def test_inverse_variance_sizing_at_entry_and_on_resizes():
    df = market()
    res = run(VARIED, var_sizing=True, var_window=100, band=0.2)
    # the median of the last 100 score_var values is 1 until bar 448. Entry at 300 (var 0.25: 1 / 0.25 = 4, capped
    # at 2: factor 1, the full target); out at 320; in at 321 (var 1: factor 1/2); at 340 var 2 asks for 1/4, a
    # move of 0.24 > band, but 19 bars after the trade (min_hold 24): kept; out at 360, in at 361 (1/2); from 400
    # var 0.5: factor 1, resized at once (39 bars after); at 449 half the window is 0.5, the median 0.75: factor
    # 0.75; from 450 the median is 0.5: factor 1/2, resized 24 bars after 449, at 473
    assert decisions(res) == [300, 320, 321, 360, 361, 400, 449, 473]
    s, pos = res.strategy, res.positions.to_numpy()
    scale, value, close = np.asarray(s.risk.scale.array)[:N], res.values.to_numpy(), df["close"].to_numpy()
    assert np.allclose(scale[300:], 1.0, atol=1e-9)
    for d, factor in ((300, 1.0), (321, 0.5), (361, 0.5), (400, 1.0), (449, 0.75), (473, 0.5)):
        assert pos[d + 1] == pytest.approx(0.95 * scale[d] * factor * value[d] / close[d], rel=1e-9), d
    # without the sizing: the full target at each entry, never resized
    plain = run(VARIED, band=0.2)
    assert decisions(plain) == [300, 320, 321, 360, 361]


def test_the_median_is_trailing_and_the_cap_binds():
    """Entry at 341 on a variance of 2 after a window of ones: factor min(1 / 2, 2) / 2 = 0.25; var_cap=1: the full
    target at or below the median, 1 / 2 of it at twice the median."""
    df = market()
    v = script(direction=[(341, N, 1.0)], strength=[(341, N, 2.0)], score_var=[(341, N, 2.0)])
    for cap, factor in ((2.0, 0.25), (1.0, 0.5), (4.0, 0.125)):
        res = run(v, var_sizing=True, var_window=100, var_cap=cap, band=1.0)
        pos, value, close = res.positions.to_numpy(), res.values.to_numpy(), df["close"].to_numpy()
        scale = np.asarray(res.strategy.risk.scale.array)[:N]
        assert decisions(res) == [341]
        assert pos[342] == pytest.approx(0.95 * scale[341] * factor * value[341] / close[341], rel=1e-9), cap


def test_a_direction_line_alone_gets_the_variance_sizing_from_its_history():
    """Without consistency / score_var lines, var_sizing reads the variance of the direction line's last
    consistency_bars values: the same trades and sizes as with the lines direction_consistency computes."""
    rng = np.random.default_rng(3)
    d = np.abs(rng.normal(1.0, 0.5, N)) * (1 + 3 * (np.arange(N) >= 420))     # up, 4 times as large from 420
    values = script(strength=[(300, N, 2.0), (330, 331, 0.4), (380, 381, 0.4)])
    values[:, 0] = np.where(np.arange(N) < 50, NAN, d)
    values[:, 2:] = direction_consistency(values[:, 0], 24)
    with_lines = run(values, var_sizing=True, var_window=100, band=0.1, min_hold=6)
    alone = run(values[:, :2], lines=LINES[:2], var_sizing=True, var_window=100, band=0.1, min_hold=6)
    assert decisions(with_lines) == decisions(alone)
    assert {300, 330, 331, 380, 381} < set(decisions(alone)) and len(decisions(alone)) >= 10   # and resizes
    pd.testing.assert_series_equal(with_lines.positions, alone.positions, rtol=1e-9)


def test_bad_parameters_are_named():
    for params, match in (({"min_consistency": 1.5}, "min_consistency"), ({"var_cap": 0.5}, "var_cap"),
                          ({"var_window": 0}, "var_window")):
        with pytest.raises(ValueError, match=match):
            run(GATED, **params)
