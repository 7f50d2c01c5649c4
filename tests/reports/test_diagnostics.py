"""The model diagnostics page: exact shares, decile assignment, interval reliability, score skill and anomaly
detection against known truths, a self-contained HTML page, and write_report's use of it."""
import base64
import json
import math
import re
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from btdensity.feeds import synthetic_market
from btdensity.reports import DIAGNOSTIC_KEYS, diagnostic_figures, write_diagnostics, write_report
from btdensity.reports.diagnostics import PANELS
from btdensity.evidence.detection import anomaly_windows, auroc, detection_latency, precision_at_k
from btdensity.reports.diagnostics_stats import (RELIABILITY_LEVELS, anomaly_detection, anomaly_scores, bnn_reliability,
                                                 decile_table, entry_bars, reliability, score_skill)
from btdensity.runner import BacktestConfig, backtest

PNG = b"\x89PNG\r\n\x1a\n"


def _index(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2024-03-01", periods=n, freq="1h", tz="UTC")


# ------------------------------------------------------------------ headline figures
def test_figures_are_the_exact_shares():
    idx = _index(10)
    positions = pd.Series([0, 1, 1, 0, -2, 0, 0, 0, 3, 0], index=idx, dtype=float)
    gate = [np.nan, np.nan, 1, 0, 1, 1, 0, 0, 1, 1]        # 8 bars defined, 3 closed
    lines = pd.DataFrame({"LogDensity.gate": gate, "LogDensity.logp": np.arange(10.0)}, index=idx)
    figures = diagnostic_figures(lines, positions)
    assert figures == {"time_in_market": pytest.approx(0.4), "gate_closed_share": pytest.approx(3 / 8),
                       "in_distribution_share": pytest.approx(5 / 8)}
    assert set(figures) <= set(DIAGNOSTIC_KEYS)
    sma_only = pd.DataFrame({"SimpleMovingAverage.sma": np.arange(10.0)}, index=idx)
    assert diagnostic_figures(sma_only, positions) == {"time_in_market": pytest.approx(0.4)}


def test_figures_reject_lines_without_utc_times():
    naive = pd.DataFrame({"LogDensity.gate": [1.0, 0.0]}, index=pd.date_range("2024-01-01", periods=2, freq="h"))
    with pytest.raises(ValueError, match="UTC"):
        diagnostic_figures(naive, pd.Series([0.0, 1.0], index=naive.index))


# ------------------------------------------------------------------ log-density deciles
@pytest.fixture(scope="module")
def decile_case():
    n_warm, n = 10, 110
    idx = _index(n)
    logp = np.full(n, np.nan)
    logp[n_warm:] = (np.arange(100) * 37) % 100          # a permutation of 0..99: decile = value // 10 + 1
    rng = np.random.default_rng(3)
    steps = rng.normal(0, 0.01, n)
    close = 100 * np.exp(np.cumsum(steps))
    prices = pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 1.0}, index=idx)
    naive = idx.tz_localize(None)
    opens = [naive[20],                                   # fill at bar 20's open: decided at bar 19 (logp 33)
             naive[20] + pd.Timedelta("30min"),           # fill inside bar 20: decided at bar 20 (logp 70)
             naive[5], naive[0]]                          # decided in the warm-up / before the first bar
    pnls = [5.0, -3.0, 100.0, 50.0]
    for j in rng.integers(11, n, 40):                     # 40 more at random bars, some of them off the hour
        opens.append(naive[j] + pd.Timedelta(minutes=int(rng.choice([0, 15]))))
        pnls.append(float(np.round(rng.normal(0, 10), 2)) if rng.random() > 0.1 else 0.0)
    trades = pd.DataFrame({"open": opens, "close": [o + pd.Timedelta("3h") for o in opens], "pnl": pnls,
                           "pnlcomm": pnls})
    lines = pd.DataFrame({"LogDensity.logp": logp}, index=idx)
    return lines, trades, prices, logp, steps, decile_table(lines, trades, prices)


def test_entry_bar_is_the_last_bar_strictly_before_the_fill(decile_case):
    lines, trades, *_ = decile_case
    bars = entry_bars(lines.index, trades["open"])
    assert list(bars[:4]) == [19, 20, 4, -1]
    fills = trades["open"].dt.tz_localize("UTC")
    brute = [max((j for j, t in enumerate(lines.index) if t < f), default=-1) for f in fills]
    assert list(bars) == brute


def test_trades_land_in_the_right_decile(decile_case):
    lines, trades, _, logp, _, table = decile_case
    assert list(table.index) == list(range(1, 11))
    assert list(table["bars"]) == [10] * 10
    np.testing.assert_allclose(table["logp_from"].iloc[1:], 9.9 * np.arange(1, 10))
    assert table.attrs["unassigned"] == 2                  # the warm-up trade and the one before the first bar
    # brute force: the decile of each trade's decision bar, by value // 10 + 1
    fills = trades["open"].dt.tz_localize("UTC")
    expected = {d: [] for d in range(1, 11)}
    for fill, pnl in zip(fills, trades["pnlcomm"]):
        j = max((j for j, t in enumerate(lines.index) if t < fill), default=-1)
        if j >= 0 and np.isfinite(logp[j]):
            expected[int(logp[j]) // 10 + 1].append(pnl)
    assert 5.0 in expected[4] and -3.0 in expected[8]      # bar 19 has logp 33, bar 20 logp 70
    for d, pnls in expected.items():
        assert table.loc[d, "trades"] == len(pnls)
        assert table.loc[d, "pnl"] == pytest.approx(sum(pnls))
        if pnls:
            assert table.loc[d, "hit_rate"] == pytest.approx(np.mean(np.array(pnls) > 0))
        else:
            assert math.isnan(table.loc[d, "hit_rate"])
    assert table["trades"].sum() + table.attrs["unassigned"] == len(trades)


def test_bar_level_next_return_by_decile(decile_case):
    _, _, _, logp, steps, table = decile_case
    for d in range(1, 11):
        rows = [j for j in range(len(logp) - 1) if np.isfinite(logp[j]) and int(logp[j]) // 10 + 1 == d]
        assert table.loc[d, "mean_next_return"] == pytest.approx(np.mean(steps[np.array(rows) + 1]))


def test_no_log_density_no_decile_table():
    idx = _index(5)
    lines = pd.DataFrame({"Energy.energy": np.arange(5.0)}, index=idx)
    assert decile_table(lines, pd.DataFrame({"open": [], "pnlcomm": []})) is None


# ------------------------------------------------------------------ reliability
def _forecasts(n: int, seed: int):
    rng = np.random.default_rng(seed)
    mean = rng.normal(0, 0.01, n)
    std = 0.01 * np.exp(rng.normal(0, 0.4, n))           # heteroscedastic: each bar has its own std
    return mean, std, mean + std * rng.standard_normal(n)


def test_true_forecast_is_calibrated_and_overconfident_one_is_not():
    mean, std, realised = _forecasts(20_000, 0)
    table = reliability(mean, std, realised)
    assert list(table["nominal"]) == list(RELIABILITY_LEVELS) and (table["n"] == 20_000).all()
    np.testing.assert_allclose(table["observed"], table["nominal"], atol=0.015)
    narrow = reliability(mean, std / 2, realised)
    truth = [2 * NormalDist().cdf(NormalDist().inv_cdf(0.5 + p / 2) / 2) - 1 for p in RELIABILITY_LEVELS]
    np.testing.assert_allclose(narrow["observed"], truth, atol=0.015)
    assert (narrow["observed"] < narrow["nominal"] - 0.1)[narrow["nominal"] >= 0.4].all()


def test_reliability_skips_undefined_rows_and_checks_lengths():
    table = reliability([0.0, np.nan, 0.0, 0.0], [1.0, 1.0, 0.0, 1.0], [0.1, 0.0, 0.0, 3.0], levels=(0.5, 0.9))
    assert list(table["n"]) == [2, 2] and list(table["observed"]) == [0.5, 0.5]
    with pytest.raises(ValueError, match="one length"):
        reliability([0.0], [1.0, 1.0], [0.0])


@pytest.mark.parametrize("horizon", [1, 3])
def test_bnn_reliability_reads_the_horizon(horizon):
    """A random walk with N(0, s²) steps: the true forecast of the h-bar log return is N(0, h s²)."""
    n, s = 12_000, 0.01
    rng = np.random.default_rng(horizon)
    idx = _index(n)
    close = 100 * np.exp(np.cumsum(rng.normal(0, s, n)))
    prices = pd.DataFrame({"close": close}, index=idx)
    std = s * math.sqrt(horizon)
    z90 = NormalDist().inv_cdf(0.95)
    lines = pd.DataFrame({"BNNUncertainty.mean": 0.0, "BNNUncertainty.epistemic": 0.6 * std,
                          "BNNUncertainty.aleatoric": 0.8 * std, "BNNUncertainty.lower": -z90 * std,
                          "BNNUncertainty.upper": z90 * std}, index=idx)
    table, coverage = bnn_reliability(lines, prices, horizon=horizon)
    assert table["n"].iloc[0] == n - horizon
    np.testing.assert_allclose(table["observed"], table["nominal"], atol=0.025)
    assert coverage == pytest.approx(0.9, abs=0.015)
    if horizon > 1:                                        # scored at the wrong horizon, the intervals are too wide
        wrong, _ = bnn_reliability(lines, prices, horizon=1)
        assert (wrong["observed"] > wrong["nominal"] + 0.05)[wrong["nominal"].between(0.3, 0.8)].all()
    figures = diagnostic_figures(lines, pd.Series(0.0, index=idx), prices, horizon=horizon, level=0.9)
    assert figures["bnn_coverage"] == coverage and figures["bnn_level"] == 0.9


# ------------------------------------------------------------------ score skill
def _random_walk(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    return pd.DataFrame({"close": close}, index=_index(n)), close


@pytest.mark.parametrize("horizon", [1, 4])
def test_a_perfect_direction_has_full_skill_at_its_horizon_only(horizon):
    prices, close = _random_walk(3000, horizon)
    forward = np.full(3000, np.nan)
    forward[:-horizon] = np.log(close[horizon:] / close[:-horizon])
    lines = pd.DataFrame({"ScoreDirection.direction": forward}, index=prices.index)
    table = score_skill(lines, prices, horizon=horizon)
    assert table.attrs["n"] == 3000 - horizon and table["bars"].sum() == 3000 - horizon
    assert table.attrs["sign_agreement"] == 1.0 and table.attrs["rank_correlation"] == pytest.approx(1.0)
    assert np.all(np.diff(table["mean_forward_return"]) > 0)
    assert table.loc[1, "up_share"] == 0.0 and table.loc[10, "up_share"] == 1.0
    reversed_ = score_skill(-lines, prices, horizon=horizon)
    assert reversed_.attrs["sign_agreement"] == 0.0 and reversed_.attrs["rank_correlation"] == pytest.approx(-1.0)
    if horizon > 1:   # scored over the wrong horizon, the same forecast is only partly right
        assert 0.6 < score_skill(lines, prices, horizon=1).attrs["sign_agreement"] < 0.9


def test_score_skill_counts_match_brute_force():
    prices, close = _random_walk(500, 9)
    rng = np.random.default_rng(3)
    direction = rng.normal(size=500)
    direction[:50] = np.nan
    direction[60] = 0.0                                     # no sign: left out of the agreement
    lines = pd.DataFrame({"ScoreDirection.direction": direction}, index=prices.index)
    table = score_skill(lines, prices)
    nxt = np.log(close[1:] / close[:-1])
    rows = [j for j in range(499) if np.isfinite(direction[j])]
    signed = [j for j in rows if direction[j] != 0 and nxt[j] != 0]
    agree = np.mean([np.sign(direction[j]) == np.sign(nxt[j]) for j in signed])
    assert table.attrs["n"] == len(rows) == 449 and table.attrs["sign_agreement"] == pytest.approx(agree)
    top = [j for j in rows if direction[j] >= table.loc[10, "direction_from"]]
    assert table.loc[10, "bars"] == len(top)
    assert table.loc[10, "mean_forward_return"] == pytest.approx(np.mean(nxt[top]))
    assert table.loc[10, "up_share"] == pytest.approx(np.mean(nxt[top] > 0))
    assert abs(table.attrs["rank_correlation"]) < 0.15      # independent of the returns: no skill
    assert score_skill(lines.rename(columns=lambda c: "X." + c), prices) is None


# ------------------------------------------------------------------ anomaly detection
#: ground-truth anomaly windows [start, end): one in the 50-bar warm-up (not scored), five after it
WINDOWS = [(20, 22), (100, 103), (200, 201), (300, 302), (400, 404), (500, 501)]


@pytest.fixture(scope="module")
def anomaly_case():
    """Scripted lines over 600 bars with NaN in the first 50. ``LatentRegime.distance``: 10 on the second bar of
    each window (outside the single-bar windows 200 and 500: missed), 0 on the other anomaly bars, in (0.01, 1)
    elsewhere. ``LogDensity.gate``: closed on bars 100-102, 300, 150 and 250 (fewer closed bars than anomaly bars)."""
    n = 600
    rng = np.random.default_rng(5)
    truth = np.zeros(n)
    for a, b in WINDOWS:
        truth[a:b] = 1.0
    distance = np.where(truth > 0, 0.0, rng.uniform(0.01, 1.0, n))
    distance[[a + 1 for a, _ in WINDOWS]] = 10.0
    gate = np.ones(n)
    gate[[100, 101, 102, 300, 150, 250]] = 0.0
    lines = pd.DataFrame({"LatentRegime.distance": distance, "LatentRegime.regime": rng.integers(0, 3, n) * 1.0,
                          "LogDensity.gate": gate, "LogDensity.logp": rng.normal(0, 1, n) - 3 * truth,
                          "LogDensity.pvalue": rng.uniform(0, 1, n) * np.where(truth > 0, 0.2, 1.0),
                          "Energy.zscore": rng.normal(0, 1, n) + 2 * truth, "Energy_2.energy": rng.normal(0, 1, n),
                          "ScoreDirection.direction": rng.normal(0, 1, n)}, index=_index(n))
    lines.iloc[:50] = np.nan
    prices = pd.DataFrame({"close": 100.0 + np.arange(n), "anomaly": truth > 0}, index=lines.index)
    return lines, prices, truth


def test_anomaly_scores_are_the_energy_and_density_lines_oriented_high_when_unusual(anomaly_case):
    lines, _, _ = anomaly_case
    scores = anomaly_scores(lines)
    assert list(scores) == ["LatentRegime.distance", "LogDensity.gate", "LogDensity.logp", "LogDensity.pvalue",
                            "Energy.zscore", "Energy_2.energy"]
    written = {c: w for c, (w, _) in scores.items()}
    assert written["LogDensity.logp"] == "−logp" and written["LogDensity.pvalue"] == "1 − pvalue"
    np.testing.assert_array_equal(scores["LogDensity.logp"][1], -lines["LogDensity.logp"].to_numpy())
    np.testing.assert_array_equal(scores["LogDensity.gate"][1], 1 - lines["LogDensity.gate"].to_numpy())
    np.testing.assert_array_equal(scores["Energy.zscore"][1], lines["Energy.zscore"].to_numpy())


def test_anomaly_metrics_are_evidence_detection_on_the_same_arrays(anomaly_case):
    lines, _, truth = anomaly_case
    table = anomaly_detection(lines, truth)
    assert list(table.index) == list(anomaly_scores(lines))
    windows = anomaly_windows(truth > 0)
    assert windows == WINDOWS
    for column, (_, score) in anomaly_scores(lines).items():
        row = table.loc[column]
        known = np.isfinite(score)
        k = int(truth[known].sum())
        assert row["anomaly_bars"] == k == 11 and row["bars"] == 550
        assert row["auroc"] == auroc(score, truth)
        assert row["precision_at_k"] == precision_at_k(score, truth, k)
        cut = np.sort(score[known])[::-1][k - 1]                     # the precision@K cut: the K-th highest score
        alarm = np.where(known, score >= cut if cut > score[known].min() else score > cut, np.nan)
        found = detection_latency(alarm, windows)
        assert row["windows"] == found.n_scored == 5                 # the warm-up's window has no score
        assert row["detected_share"] == found.detected_share
        assert row["false_alarm_rate"] == found.false_alarm_rate
        assert row["median_latency"] == pytest.approx(found.median_latency, nan_ok=True)
        detected = found.latency[found.scored & np.isfinite(found.latency)]
        assert row["mean_latency"] == pytest.approx(detected.mean() if detected.size else math.nan, nan_ok=True)
    # by hand: the distance finds windows 100, 300 and 400 one bar in and misses the single-bar ones
    d = table.loc["LatentRegime.distance"]
    assert (d["detected_share"], d["median_latency"], d["mean_latency"]) == (0.6, 1.0, 1.0)
    assert d["precision_at_k"] == pytest.approx(3 / 11)              # 5 bumps (3 in windows) + 6 noise bars
    assert d["auroc"] == pytest.approx(3 * (537 + 0.5 * 2) / (11 * 539))   # 3 anomalies above all but 2 ties
    # the gate: its 6 closed bars (4 anomalies) are the alarm; windows 100 and 300 at once, the others missed
    g = table.loc["LogDensity.gate"]
    assert (g["detected_share"], g["median_latency"], g["mean_latency"]) == (0.4, 0.0, 0.0)
    assert g["false_alarm_rate"] == pytest.approx(2 / 539)
    assert g["precision_at_k"] == pytest.approx((4 + 5 * 7 / 544) / 11)   # 5 places at the share of the 0 ties


def test_anomaly_panel_shows_the_table_and_says_when_there_is_no_truth(anomaly_case, tmp_path):
    lines, prices, truth = anomaly_case
    kwargs = dict(lines=lines, trades=pd.DataFrame(columns=["open", "pnlcomm"]),
                  positions=pd.Series(0.0, index=lines.index), title="t")
    html = write_diagnostics(tmp_path, prices=prices, **kwargs).read_text()
    section = html[html.index("<h2>Anomaly detection</h2>"):].split("</section>")[0]
    table = anomaly_detection(lines, truth)
    for column, row in table.iterrows():
        assert f"<tr><th>{column}</th><td>{row['score']}</td><td>550</td><td>11</td><td>{row['auroc']:.4g}</td>" \
               f"<td>{row['precision_at_k']:.4g}</td><td>5</td><td>{row['detected_share']:.1%}</td>" in section
    assert "ScoreDirection" not in section and "LatentRegime.regime" not in section
    # (pages with lines that draw no figure: quicker)
    no_truth = write_diagnostics(tmp_path / "no_truth", prices=prices.drop(columns="anomaly"),
                                 **{**kwargs, "lines": lines[["LatentRegime.distance"]]}).read_text()
    section = no_truth[no_truth.index("<h2>Anomaly detection</h2>"):].split("</section>")[0]
    assert "No ground-truth anomalies" in section and "<table>" not in section
    assert anomaly_detection(lines, np.zeros(len(lines))) is None                       # no anomaly bar: no row
    html = write_diagnostics(tmp_path / "no_lines", prices=prices,
                             **{**kwargs, "lines": lines[["LatentRegime.regime"]]}).read_text()
    section = html[html.index("<h2>Anomaly detection</h2>"):].split("</section>")[0]
    assert "No energy or density values" in section and "<table>" not in section


# ------------------------------------------------------------------ the page
def _model_lines(prices: pd.DataFrame) -> pd.DataFrame:
    """Hand-made lines of all five model indicators on the bars of ``prices`` (NaN during a 100-bar warm-up)."""
    n = len(prices)
    rng = np.random.default_rng(7)
    ret = np.log(prices["close"]).diff().fillna(0).to_numpy()
    unusual = np.abs(ret) / ret.std()
    gate = (unusual < 2.0).astype(float)
    std = np.full(n, ret.std())
    lines = pd.DataFrame({
        "Energy.energy": unusual ** 2, "Energy.zscore": unusual, "Energy.pvalue": np.exp(-unusual),
        "LogDensity.logp": -unusual ** 2, "LogDensity.pvalue": np.exp(-unusual), "LogDensity.gate": gate,
        "BNNUncertainty.mean": 0.0, "BNNUncertainty.epistemic": 0.3 * std, "BNNUncertainty.aleatoric": std,
        "BNNUncertainty.lower": -1.7 * std, "BNNUncertainty.upper": 1.7 * std,
        "Regime.regime": np.repeat(np.arange(n // 50 + 1) % 4, 50)[:n].astype(float),
        "Regime.confidence": rng.uniform(0.3, 0.9, n), "Regime.energy": unusual,
        "ScoreDirection.direction": np.r_[ret[1:], 0.0] + rng.normal(0, ret.std(), n),   # a skilled forecast
        "ScoreDirection.strength": rng.uniform(0, 2, n),
    }, index=prices.index)
    lines.iloc[:100] = np.nan
    return lines


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    prices = synthetic_market(600, seed=4)
    lines = _model_lines(prices)
    positions = pd.Series(np.where(np.arange(600) % 30 < 12, 1.0, 0.0), index=prices.index)
    naive = prices.index.tz_localize(None)
    trades = pd.DataFrame({"open": naive[130:590:30], "close": naive[141:600:30],
                           "pnlcomm": np.linspace(-20, 25, 16), "pnl": np.linspace(-19, 26, 16)})
    out = tmp_path_factory.mktemp("diag")
    path = write_diagnostics(out, prices=prices, lines=lines, trades=trades, positions=positions, title="unit <test>",
                             horizon=1, level=0.9, alpha=0.05)
    only_density = write_diagnostics(out / "partial", prices=prices, lines=lines.filter(like="LogDensity."),
                                     trades=trades, positions=positions, title="partial")
    return lines, path.read_text(), only_density.read_text()


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)]


def test_page_has_six_panels_and_inline_images(page):
    lines, html, _ = page
    for heading in PANELS:
        assert f"<h2>{heading}</h2>" in html
    images = _images(html)
    assert len(images) == 6 and all(img.startswith(PNG) and len(img) > 5_000 for img in images)
    assert "unit &lt;test&gt;" in html                         # the title is escaped
    closed = (lines["LogDensity.gate"].dropna() == 0).mean()
    assert f"<td>{closed:.1%}</td>" in html and f"<td>{1 - closed:.1%}</td>" in html
    assert "values in this run" not in html
    skill = score_skill(lines, synthetic_market(600, seed=4))
    assert skill.attrs["sign_agreement"] > 0.6                 # the hand-made forecast is a skilled one
    assert f"<td>{skill.attrs['sign_agreement']:.1%}</td>" in html


def test_page_is_self_contained(page):
    _, html, partial = page
    for doc in (html, partial):
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", doc)
        assert "<script" not in doc and "<link" not in doc and "@import" not in doc


def test_missing_indicators_say_so(page):
    _, _, partial = page
    for heading in PANELS:
        assert f"<h2>{heading}</h2>" in partial
    assert "No BNNUncertainty values" in partial and "No Regime values" in partial
    assert "No ScoreDirection values" in partial
    assert len(_images(partial)) == 3                           # density, deciles, time in distribution


# ------------------------------------------------------------------ write_report
def test_sma_cross_report_has_no_page(tmp_path):
    res = backtest(synthetic_market(400, seed=1), BacktestConfig("sma_cross"))
    summary = write_report(res, tmp_path, plot=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json", "tearsheet.html"]
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert summary["time_in_market"] == pytest.approx((res.positions != 0).mean()) == pytest.approx(summary["exposure"])
    assert "gate_closed_share" not in summary and "bnn_coverage" not in summary


@pytest.fixture(scope="module")
def model_report(tmp_path_factory):
    cache = tmp_path_factory.mktemp("models")
    res = backtest(synthetic_market(900), BacktestConfig("density_gated", walk_forward={
        "train_bars": 240, "retrain_every": 300, "cache_dir": str(cache), "fit_kwargs": {"epochs": 3}}))
    out = tmp_path_factory.mktemp("model_report")
    summary = write_report(res, out, title="density_gated", plot=False)
    return res, {p.stem: p for p in out.iterdir()}, summary


def test_model_report_writes_the_page_and_the_figures(model_report):
    res, paths, summary = model_report
    html = paths["diagnostics"].read_text()
    assert all(f"<h2>{h}</h2>" in html for h in PANELS) and len(_images(html)) == 6
    lines = res.lines
    gate = lines["LogDensity.gate"].dropna()
    assert summary["gate_closed_share"] == pytest.approx((gate == 0).mean())
    assert summary["in_distribution_share"] == pytest.approx(1 - summary["gate_closed_share"])
    assert summary["time_in_market"] == pytest.approx((res.positions != 0).mean())
    assert summary["bnn_level"] == 0.9 and 0.5 < summary["bnn_coverage"] <= 1.0
    for key in DIAGNOSTIC_KEYS:
        assert math.isfinite(summary[key]), key
    table = decile_table(lines, res.trades)
    assert table["trades"].sum() + table.attrs["unassigned"] == summary["n_trades"]
    # the synthetic market's ground truth reaches the page: its anomaly detection scores the run's density lines
    truth = synthetic_market(900)["anomaly"].to_numpy(dtype=float)
    np.testing.assert_array_equal(res.prices["anomaly"].to_numpy(), truth)
    detection = anomaly_detection(lines, truth)
    assert {"LogDensity.logp", "LogDensity.pvalue", "LogDensity.gate"} <= set(detection.index)
    section = html[html.index("<h2>Anomaly detection</h2>"):].split("</section>")[0]
    assert f"<td>{detection.loc['LogDensity.logp', 'auroc']:.4g}</td>" in section


@pytest.mark.parametrize("days", [0.05, 0.5, 2, 3, 10, 45, 100, 400, 1000, 1400, 1640, 1650, 1660, 1700, 1800, 3000, 8000])
def test_date_axis_picks_an_interval_for_any_span(days):
    """matplotlib warned 'AutoDateLocator was unable to pick an appropriate interval' on spans near 4.5 years."""
    import warnings

    from btdensity.reports.diagnostics_figures import _date_axis, _pyplot

    plt = _pyplot()
    start = pd.Timestamp("2018-01-01")
    fig, ax = plt.subplots()
    ax.plot([start, start + pd.Timedelta(days=days)], [0.0, 1.0])
    _date_axis(ax)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.canvas.draw()
    plt.close(fig)
    assert [str(w.message) for w in caught] == []


def test_the_evidence_panel_shows_the_scorecard_verdicts_of_this_strategy_or_how_to_get_them(tmp_path):
    prices = synthetic_market(600, seed=4)
    lines = _model_lines(prices)
    kwargs = dict(prices=prices, lines=lines, trades=pd.DataFrame(columns=["open", "pnlcomm"]),
                  positions=pd.Series(0.0, index=prices.index), title="t")
    html = write_diagnostics(tmp_path, **kwargs).read_text()
    assert "No scorecard in this folder" in html and "run_backtest.py score" in html
    verdicts = [{"model": "LogDensity", "baseline": "MixtureDensity", "metric": "log-likelihood per dim",
                 "model_value": 0.1, "baseline_value": 0.2, "diff": -0.1, "verdict": "worse"},
                {"model": "Unused", "baseline": "X", "metric": "m", "model_value": 1.0, "baseline_value": 1.0,
                 "diff": 0.0, "verdict": "better"}]
    (tmp_path / "scorecard.json").write_text(json.dumps({"comparisons": verdicts}))
    html = write_diagnostics(tmp_path, **kwargs).read_text()
    assert "MixtureDensity" in html and ">worse<" in html and "Unused" not in html
