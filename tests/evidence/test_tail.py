"""The tail family: FZ0 loss by hand, historical simulation's causality and values, GARCH's VaR / ES read off its
lines against the t law, and a whole backtest of lines drawn from a known law (the true lines beat biased ones)."""
import doctest
import importlib

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from btdensity.evidence.tail import HISTORICAL, fz0_loss, garch_tail, historical_tail, score_tail, tail_lineup
from btdensity.labels import forward_log_returns


def test_fz0_loss_by_hand_and_doctests():
    # y = -0.03 below v = -0.02: 0.01 / (0.05 * 0.025) + 0.8 + log 0.025 - 1
    assert fz0_loss([-0.03], [-0.02], [-0.025], 0.05)[0] == pytest.approx(8 + 0.8 + np.log(0.025) - 1)
    assert np.isnan(fz0_loss([0.0], [-0.02], [0.01], 0.05)[0])          # a shortfall that is a gain: not scored
    assert doctest.testmod(importlib.import_module("btdensity.evidence.tail")).failed == 0


def test_historical_simulation_reads_only_known_returns():
    close = 100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, 300)))
    var, cvar = historical_tail(close, horizon=2, prob=0.1, history=50)
    known = forward_log_returns(close, 2)
    t = 120                                     # returns ending at bar t or before: those starting at <= t - 2
    sample = np.sort(known[t - 2 - 49:t - 1])
    assert var[t] == sample[4] and cvar[t] == pytest.approx(sample[:5].mean())
    assert np.isnan(var[:51]).all() and np.isfinite(var[51:]).all()   # R[0 … 49] known at bar 51
    changed = close.copy()
    changed[t + 1:] *= 3.0
    np.testing.assert_array_equal(historical_tail(changed, 2, 0.1, 50)[0][:t + 1], var[:t + 1])


def test_garch_tail_is_the_t_law_of_its_lines():
    mean, std, df, level = np.array([0.001]), np.array([0.02]), 6.0, 0.9
    half = stats.t.ppf(0.95, df) * np.sqrt((df - 2) / df) * std
    lines = pd.DataFrame({"G.mean": mean, "G.std": std, "G.lower": mean - half, "G.upper": mean + half})
    var, es = garch_tail(lines, "G", level, 0.01)
    scale = std * np.sqrt((df - 2) / df)
    law = stats.t(df, loc=mean[0], scale=scale[0])
    assert var[0] == pytest.approx(law.ppf(0.01), rel=1e-4)
    assert es[0] == pytest.approx(law.expect(lambda v: v, ub=law.ppf(0.01)) / 0.01, rel=1e-4)
    short_var, _ = garch_tail(lines, "G", level, 0.01, sign=-1.0)      # the law of -R
    assert short_var[0] == pytest.approx(-law.ppf(0.99), rel=1e-4)


def test_true_lines_pass_the_backtests_and_beat_biased_ones():
    n = 6000
    rng = np.random.default_rng(1)
    sigma = 0.01 * np.exp(0.5 * np.sin(np.arange(n) / 200))           # known, time-varying scale
    r = sigma * rng.standard_normal(n)
    close = 100 * np.exp(np.cumsum(np.r_[0.0, r[:-1]]))              # r[t] is the return from bar t to t + 1
    q, es = stats.norm.ppf(0.05), -stats.norm.pdf(stats.norm.ppf(0.05)) / 0.05
    lines = pd.DataFrame({"True.var": sigma * q, "True.cvar": sigma * es, "True.var_short": -sigma * q,
                          "True.cvar_short": -sigma * es, "Wide.var": 1.5 * sigma * q, "Wide.cvar": 1.5 * sigma * es})
    lines.iloc[:2500] = np.nan                                          # served from bar 2500 on
    section = score_tail(lines, close, {"True": 0.95, "Wide": 0.95}, garch=None, history=1000)
    rows = {r["indicator"]: r for r in section.rows}
    assert abs(rows["True"]["exceedance"] - 0.05) < 0.01 and rows["True"]["kupiec_p"] > 0.01
    assert rows["Wide"]["exceedance"] < 0.02 and rows["Wide"]["kupiec_p"] < 1e-6
    assert rows["True"]["shortfall_ratio"] == pytest.approx(1.0, abs=0.1)
    assert rows["True"]["bars"] == rows[HISTORICAL]["bars"] == n - 2500 - 1
    verdicts = {(c.model, c.baseline, c.metric.split(",")[0]): c.verdict for c in section.comparisons}
    assert verdicts[("True", HISTORICAL, "FZ0 loss")] == "better"    # historical simulation ignores the changing scale
    short = score_tail(lines, close, {"True": 0.95}, garch=None, history=1000, short=True)
    assert abs(short.rows[0]["exceedance"] - 0.05) < 0.01


def test_lineup_runs_each_level_and_garch():
    assert tail_lineup(levels=(0.95, 0.99)) == [
        ("TailRisk", {"horizon": 1, "level": 0.95, "model": "flow"}),
        ("TailRisk", {"horizon": 1, "level": 0.99, "model": "flow"}),
        ("GarchForecast", {"horizon": 1, "level": 0.9})]
