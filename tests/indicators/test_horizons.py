"""BNNHorizons against known truths: its intervals cover at their level at every horizon on a simulated GARCH(1,1)-t
market; its labels are the forward log returns over each horizon (brute force); the longest horizon sets the
embargo (a fit reads no bar past ``T_k - 1 - embargo``, shown by shocking the bars after it); its lines are named
after the horizons asked for. The walk-forward contract (truncation invariance, mode parity, no look-ahead, cache,
parallel fits) is in test_contract_forecasts.py."""
import doctest
import importlib.util
from pathlib import Path

import backtrader as bt
import numpy as np
import pytest

from btdensity.feeds import DataFrameFeed, synthetic_market
from btdensity.indicators import BNNHorizons, horizons
from btdensity.indicators.features import RISK_FEATURES, lookback
from btdensity.indicators.walkforward import FitCache


def _load(name):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parent / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: the GARCH-t simulator and its parameters, and OHLCV bars of given close-to-close log returns
classical = _load("test_classical_risk")
simulate_garch_t, GARCH, bars = classical.simulate_garch_t, classical.TRUTH, classical.ohlcv


def run(df, runonce=True, **makers):
    """A backtest that only holds the indicators ``makers`` make (attributes of the returned strategy)."""
    class Holder(bt.Strategy):
        def __init__(self):
            for name, make in makers.items():
                setattr(self, name, make(self.data))

    cerebro = bt.Cerebro(stdstats=False, runonce=runonce)
    cerebro.adddata(DataFrameFeed(dataname=df))
    cerebro.addstrategy(Holder)
    return cerebro.run()[0]


def lines(ind):
    return {alias: np.asarray(ind.lines[i].array, dtype=float) for i, alias in enumerate(ind.lines.getlinealiases())}


TINY = dict(model_kwargs={"hidden": (8,)}, fit_kwargs={"epochs": 6}, n_samples=16, n_jobs=1)


def test_intervals_cover_at_their_level_at_every_horizon_on_a_garch_t_market():
    r, _ = simulate_garch_t(6000, **GARCH, seed=3)
    df = bars(r)
    FitCache.forget()
    ind = run(df, h=lambda d: BNNHorizons(d, train_bars=2000, retrain_every=1500, cache_dir=None, n_jobs=1,
                                          model_kwargs={"hidden": (16,)}, fit_kwargs={"epochs": 40})).h
    assert ind.horizons == (1, 4, 24) and ind.n_fits == 3
    got = lines(ind)
    close = df["close"].to_numpy()
    widths = []
    for h in ind.horizons:
        t = np.arange(ind.spec.first_fit, len(close) - h)      # served bars whose h-bar return is known
        realised = np.log(close[t + h] / close[t])
        lower, upper = got[f"lower_h{h}"][t], got[f"upper_h{h}"][t]
        assert np.all(lower < got[f"mean_h{h}"][t]) and np.all(got[f"mean_h{h}"][t] < upper)
        # measured on six paths (seeds 0-5): 89.4-91.2 % (1 bar), 88.6-92.1 % (4), 86.3-91.3 % (24: overlapping
        # 24-bar returns, about 160 independent ones); this path 90.8 / 92.1 / 90.5 %
        assert abs(np.mean((realised >= lower) & (realised <= upper)) - 0.9) <= 0.05, h
        widths.append(np.median(upper - lower))
    assert widths[0] < widths[1] < widths[2]                    # the spread of a sum of returns grows with h


def test_lines_are_named_after_the_horizons():
    assert BNNHorizons.line_names() == ("mean_h1", "lower_h1", "upper_h1", "mean_h4", "lower_h4", "upper_h4",
                                        "mean_h24", "lower_h24", "upper_h24")
    six = BNNHorizons.for_horizons((1, 6))
    assert six is BNNHorizons.for_horizons([1, 6]) and issubclass(six, BNNHorizons) and six.__name__ == "BNNHorizons"
    assert six.lines.getlinealiases() == ("mean_h1", "lower_h1", "upper_h1", "mean_h6", "lower_h6", "upper_h6")
    df = synthetic_market(400, seed=2)
    strat = run(df, a=lambda d: BNNHorizons(d, train_bars=100, **TINY),
                b=lambda d: BNNHorizons(d, horizons=(1, 6), train_bars=100, **TINY))
    assert type(strat.a).lines.getlinealiases() == BNNHorizons.line_names()
    assert type(strat.b) is six and strat.b.mean_h6[0] == lines(strat.b)["mean_h6"][len(df) - 1]


def test_doctests():
    assert doctest.testmod(horizons).failed == 0


def test_labels_are_the_forward_returns_and_the_longest_horizon_sets_the_embargo():
    df = synthetic_market(400, seed=2)
    ind = run(df, h=lambda d: BNNHorizons(d, horizons=(2, 5, 9), train_bars=100, embargo=3, cache_dir=None,
                                          **TINY)).h
    assert (ind.spec.horizon, ind.spec.embargo) == (9, 3)
    assert ind.spec.first_fit == lookback(RISK_FEATURES) + 100 + 9 + 3
    close = df["close"].to_numpy()
    y = ind.labels(close)
    for j, h in enumerate((2, 5, 9)):
        for t in (0, 100, len(close) - h - 1):
            assert y[t, j] == pytest.approx(np.log(close[t + h] / close[t]), rel=1e-12)
        assert np.isnan(y[len(close) - h:, j]).all() and np.isfinite(y[:len(close) - h, j]).all()


def shocked_after(df, t):
    shocked = df.copy()
    shocked.iloc[t + 1:, :4] *= 10.0
    return shocked


def test_fit_reads_bars_up_to_its_embargo_only(tmp_path):
    """Fit 1 at T_1 trains on rows t with t + 24 + 3 <= T_1 - 1: shocking the bars after T_1 - 1 - 3 leaves fits 0
    and 1 as they were (read back from the cache); shocking one bar earlier changes fit 1 (its last row's 24-bar label
    reads that bar). A fit that used the 1- or 4-bar horizon for its embargo would read 23 or 20 bars more."""
    df = synthetic_market(720, seed=11)
    params = dict(train_bars=240, retrain_every=200, embargo=3, cache_dir=tmp_path, val_fraction=0.05, **TINY)
    FitCache.forget()
    ind = run(df, h=lambda d: BNNHorizons(d, **params)).h
    assert ind.n_fits == 3
    last = ind.spec.fit_bar(1) - 1 - 3
    for after, kept in ((last, 2), (last - 1, 1)):
        shocked = run(shocked_after(df, after), h=lambda d: BNNHorizons(d, **params)).h
        assert (shocked.n_fits, shocked.cache.hits) == (3 - kept, kept), f"shocked after bar {after}"


@pytest.mark.parametrize("kwargs, message", [
    ({"horizons": (4, 1)}, "horizons must be increasing positive whole numbers"),
    ({"horizons": ()}, "horizons must be increasing"),
    ({"horizons": (0, 4)}, "horizons must be increasing"),
    ({"horizons": 24}, "horizons must be increasing"),
    ({"horizon": 5}, r"BNNHorizons\(horizon=5\): give the horizons as horizons="),
    ({"level": 1.5}, r"BNNHorizons\(level=1.5\): level must be in \(0, 1\)"),
    ({"n_samples": 1}, "need at least 2 posterior draws"),
])
def test_bad_parameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        run(synthetic_market(300, seed=1), h=lambda d: BNNHorizons(d, train_bars=100, cache_dir=None, **kwargs))
