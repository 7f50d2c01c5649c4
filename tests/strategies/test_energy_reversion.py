"""``energy_reversion`` on scripted Energy lines (no fitting): it enters against the move that came with a resolved
spike on exactly the bar ``spike_resolved`` fires, leaves ``hold_bars`` later or on a new spike, stays out after a
blow-off unless ``long_short``, ignores a spike that resolves too late, and sizes like every managed strategy
(target × the overlay's scale of the decision bar, filled at the next open, with fees)."""
import math

import numpy as np
import pandas as pd
import pytest

from btdensity.evidence.replay import replay_indicator
from btdensity.indicators.energy import spike_resolved
from btdensity.runner import BacktestConfig, backtest

N = 560
NAN = float("nan")


def market():
    """Hourly bars: a noisy walk with a crash over bars 250-289, a rally over 360-389 and a slide over 390-409."""
    rng = np.random.default_rng(5)
    r = rng.normal(0.0, 0.003, N)
    r[250:290] -= 0.01
    r[360:390] += 0.01
    r[390:410] -= 0.006
    close = 100.0 * np.exp(np.cumsum(r))
    opens = np.r_[close[0], close[:-1]]
    idx = pd.date_range("2024-01-01", periods=N, freq="1h", tz="UTC")
    return pd.DataFrame({"open": opens, "high": np.maximum(opens, close) * 1.001,
                         "low": np.minimum(opens, close) * 0.999, "close": close, "volume": 1e6}, index=idx)


def z_script():
    z = np.zeros(N)
    z[:50] = NAN
    z[285:292] = [2.0, 3.0, 4.0, 3.5, 2.0, 1.5, 1.2]      # peak 287; back below 1.0 at 292: fires
    z[292] = 0.5
    z[385:390] = [2.6, 3.0, 2.2, 1.5, 0.4]               # peak 386, fires at 389 (after the rally)
    z[405:410] = [2.8, 3.6, 1.8, 1.1, 0.9]               # a new spike at 405 (peak 406), fires at 409
    z[470] = 3.0
    z[471:500] = 1.5                                     # a spike that stays above release 30 bars: never fires
    z[500] = 0.2
    return z


def lines(z, with_signal=True):
    """The Energy lines of the scripted z-score: energy, zscore, pvalue (and regime, spike_resolved)."""
    cols = [z, z, np.where(np.isfinite(z), 0.5, NAN)]
    names = ("energy", "zscore", "pvalue")
    if with_signal:
        cols += [np.where(np.isfinite(z), 1.0, NAN), spike_resolved(z, 2.5, 1.0, 24)]
        names += ("regime", "spike_resolved")
    return replay_indicator("Energy", names), np.column_stack(cols)


def run(df, z, with_signal=True, runonce=True, **params):
    swap = {"Energy": lines(z, with_signal)}
    return backtest(df, BacktestConfig("energy_reversion", commission=0.001, runonce=runonce,
                                       params={"band": 1.0, "replace": swap, **params}))


def decisions(res):
    """``[(decision bar, sign of the new position)]``: the bar before each change of the position."""
    pos = res.positions.to_numpy()
    return [(int(d), int(np.sign(pos[d + 1]))) for d in np.flatnonzero(np.diff(pos) != 0)]


def test_the_scripted_spikes_fire_where_the_test_says():
    z = z_script()
    fired = np.flatnonzero(spike_resolved(z, 2.5, 1.0, 24) == 1.0).tolist()
    assert fired == [292, 389, 409]
    close = market()["close"].to_numpy()
    # the moves from 24 bars before each peak to the peak: a crash, a rally, a slide
    assert [math.log(close[p] / close[p - 24]) < 0 for p in (287, 386, 406)] == [True, False, True]


@pytest.mark.parametrize("runonce", [True, False])
def test_long_after_a_crash_out_after_hold_bars_flat_after_a_blow_off(runonce):
    df = market()
    res = run(df, z_script(), runonce=runonce, hold_bars=48)
    # long decided at 292 (filled at 293), out 48 bars later (340); the rally's resolution (389) would be a short:
    # flat without long_short; the slide's (409) a long, held 48 bars (457); the late resolution at 500: nothing
    assert decisions(res) == [(292, 1), (340, 0), (409, 1), (457, 0)]
    s, pos = res.strategy, res.positions.to_numpy()
    scale, value, close = np.asarray(s.risk.scale.array)[:N], res.values.to_numpy(), df["close"].to_numpy()
    for d in (292, 409):                                 # target × the scale of the decision bar, at its close
        assert 0.2 < scale[d] < 1.0
        assert pos[d + 1] == pytest.approx(0.95 * scale[d] * value[d] / close[d], rel=1e-9)
    assert res.fees_paid > 0


def test_short_after_a_blow_off_and_out_on_a_new_spike():
    df = market()
    res = run(df, z_script(), long_short=True, hold_bars=48)
    # the short of 389 is left at 405, the first bar of a new spike (16 bars in, before hold_bars); the new
    # spike's resolution at 409 goes long; hold_bars=48 ends it at 457
    assert decisions(res) == [(292, 1), (340, 0), (389, -1), (405, 0), (409, 1), (457, 0)]
    scale, pos = np.asarray(res.strategy.risk.scale.array)[:N], res.positions.to_numpy()
    value, close = res.values.to_numpy(), df["close"].to_numpy()
    assert pos[390] == pytest.approx(-0.95 * scale[389] * value[389] / close[389], rel=1e-9)


def test_without_the_signal_line_the_same_trades_from_the_z_score():
    """A baseline in Energy's place has no spike_resolved line: the strategy applies the same rule to its z-score."""
    df, z = market(), z_script()
    with_line = run(df, z, long_short=True, hold_bars=20)
    without = run(df, z, with_signal=False, long_short=True, hold_bars=20)
    assert decisions(with_line) == decisions(without) == [(292, 1), (312, 0), (389, -1), (405, 0), (409, 1),
                                                          (429, 0)]
    pd.testing.assert_series_equal(with_line.values, without.values)


def test_stricter_parameters_skip_the_spikes():
    df, z = market(), z_script()
    # resolve_bars=3: the crash spike (last above 2.5 at 288, back below 1.0 at 292) takes 4 bars
    z_fast = run(df, z, with_signal=False, resolve_bars=3)
    assert [d for d, _ in decisions(z_fast)] == [409, 457]
    # threshold 3.8: only the crash spike (peak 4.0) is a spike
    assert decisions(run(df, z, with_signal=False, threshold=3.8, long_short=True)) == [(292, 1), (340, 0)]


def test_bad_parameters_are_named():
    df = market()
    with pytest.raises(ValueError, match="release must be"):
        run(df, z_script(), release=3.0)
    with pytest.raises(ValueError, match="hold_bars"):
        run(df, z_script(), hold_bars=0)
