"""The scorecard: each family's figures against known truths on scripted lines, and one small end-to-end run whose
page and JSON say honestly where a model loses."""
import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from btdensity.evidence.detection import auroc
from btdensity.evidence.families import score_densities, score_directions, score_gates, true_regimes
from btdensity.evidence.lineup import gate_inputs
from btdensity.evidence.forecasts import TRUTH, Predictive, predictive, score_forecasts, truth_law, unit_t_quantile
from btdensity.feeds import synthetic_market

N = 3000


def market(n=N, seed=0, vol=None):
    """Close prices from i.i.d. (or given-volatility) log returns; ``forward[t]`` is the return from t to t + 1."""
    rng = np.random.default_rng(seed)
    vol = np.full(n, 0.01) if vol is None else vol
    r = vol * rng.standard_normal(n)
    close = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(r[:-1])]))
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    return close, r, index


def test_density_comparison_prefers_the_true_density():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, 2))
    true_logp = stats.norm.logpdf(x).sum(axis=1)
    wide_logp = stats.norm.logpdf(x, scale=2.0).sum(axis=1)          # a worse density of the same rows
    lines = pd.DataFrame({"M.logp": true_logp, "B.logp": wide_logp})
    lines.iloc[:100] = np.nan                                           # warm-up: no values yet
    section = score_densities(lines, 2, ["M"], ["B"])
    rows = {r["indicator"]: r for r in section.rows}
    assert rows["M"]["bars"] == N - 100
    assert rows["M"]["mean_loglik_per_dim"] == pytest.approx(-0.5 * (1 + np.log(2 * np.pi)), abs=0.03)
    [c] = section.comparisons
    assert c.verdict == "better" and c.diff == pytest.approx(np.log(2.0) - 0.375, abs=0.03)   # KL per dim
    assert c.lower < c.diff < c.upper


def test_identical_scores_are_no_different():
    rng = np.random.default_rng(2)
    logp = rng.normal(size=N)
    section = score_densities(pd.DataFrame({"M.logp": logp, "B.logp": logp}), 1, ["M"], ["B"])
    c = section.comparisons[0]
    assert c.verdict == "no different" and c.diff == 0.0 and c.lower == c.upper == 0.0


def test_gate_scores_rank_the_large_moves_they_see_coming():
    vol = np.where(np.arange(N) % 500 < 50, 0.05, 0.01)               # bursts of five times the volatility
    close, _, _ = market(vol=vol)
    ahead = pd.Series(vol).shift(-12).bfill().to_numpy()             # knows the volatility 12 bars ahead
    noise = np.random.default_rng(3).normal(size=N)
    lines = pd.DataFrame({"M.gate": 1.0, "B.gate": 1.0}, index=range(N))
    section = score_gates(lines, close, {"M": ahead + 1e-4 * noise, "B": noise}, {"M": (noise > 1.64) * 1.0},
                          ["M"], ["B"], horizon=24, shares=(0.05,), alpha=0.05)
    auc = {r["indicator"]: r["auroc"] for r in section.rows if "auroc" in r}
    assert auc["M"] > 0.8 and 0.4 < auc["B"] < 0.6
    [c] = section.comparisons
    assert c.verdict == "better" and c.metric.startswith("AUROC")
    closed = [r for r in section.rows if "closed_share" in r][0]
    assert closed["closed_share"] == pytest.approx(np.mean(noise > 1.64))


def test_energy_is_scored_by_its_zscore_not_its_window_dependent_raw_value():
    """Two windows whose energies differ by an arbitrary constant: the raw energy ranks the windows, not the bars;
    the z-score (what the gate reads) ranks the bars."""
    rng = np.random.default_rng(0)
    unusual = rng.normal(size=400)
    offset = np.r_[np.zeros(200), np.full(200, 50.0)]          # the second window's energies sit 50 higher
    lines = pd.DataFrame({"Energy.energy": unusual * 3.0 + offset, "Energy.zscore": unusual})
    scores, _ = gate_inputs(lines, 0.05)
    np.testing.assert_array_equal(scores["Energy"], unusual)
    events = unusual > np.quantile(unusual, 0.9)
    assert auroc(scores["Energy"], events) == 1.0 and auroc(lines["Energy.energy"].to_numpy(), events) < 0.8


def test_volatility_gate_is_scored_by_its_volatility_not_its_window_relative_pvalue():
    """A calm window and a wild one, each gate's p-value taken against its own window: the p-value ranks the bars
    within a window, the volatility across both; the largest moves come in the wild window."""
    rng = np.random.default_rng(1)
    vol = np.r_[np.exp(rng.normal(-5.0, 0.3, 300)), np.exp(rng.normal(-3.5, 0.3, 300))]
    pvalue = np.r_[[np.mean(vol[w] >= v) for w in (slice(0, 300), slice(300, 600)) for v in vol[w]]]
    lines = pd.DataFrame({"RealizedVolGate.pvalue": pvalue, "RealizedVolGate.energy": vol})
    scores, _ = gate_inputs(lines, 0.05)
    np.testing.assert_array_equal(scores["RealizedVolGate"], vol)
    events = vol * np.abs(rng.standard_t(4, size=600)) > np.quantile(vol, 0.9)
    level, relative = auroc(scores["RealizedVolGate"], events), auroc(-pvalue, events)   # 0.85, 0.65
    assert level > 0.8 and relative < level - 0.15


def test_forecast_lines_give_back_the_law_and_the_true_law_wins():
    sig = np.exp(np.random.default_rng(4).normal(-4.6, 0.4, N))
    close, r, index = market(vol=sig)
    q = unit_t_quantile(0.95, np.inf)
    lines = pd.DataFrame({"M.mean": 0.0, "M.std": sig, "M.lower": -q * sig, "M.upper": q * sig,
                          "B.mean": 0.0, "B.std": sig.mean(), "B.lower": -q * sig.mean(), "B.upper": q * sig.mean()},
                         index=index)
    law = predictive(lines, "M", 0.9)
    assert np.isinf(law.df).all() and np.allclose(law.quantile(0.05), -q * sig)
    t5 = unit_t_quantile(0.95, 5.0)                                   # a t(5) interval: df read off the lines
    t_lines = lines.assign(**{"M.lower": -t5 * sig, "M.upper": t5 * sig})
    assert np.nanmedian(predictive(t_lines, "M", 0.9).df) == pytest.approx(5.0, rel=1e-3)
    section = score_forecasts(lines, close, {"M": 0.9}, {"B": 0.9})
    rows = {row["indicator"]: row for row in section.rows}
    assert rows["M"]["coverage_0.9"] == pytest.approx(0.9, abs=0.02)
    assert rows["M"]["var0.99_exceed"] == pytest.approx(0.01, abs=0.006)
    assert {c.metric: c.verdict for c in section.comparisons} == {"pinball 5 % / 95 %": "better", "CRPS": "better",
                                                                  "NLL": "better"}


def test_the_data_own_law_is_a_reference_row_with_each_model_share_of_its_margin():
    sig = np.exp(np.random.default_rng(6).normal(-4.6, 0.4, N))
    close, r, index = market(vol=sig)
    q = unit_t_quantile(0.95, np.inf)
    lawless = (np.arange(N) >= 1000) & (np.arange(N) < 1100)            # bars the truth has no law for
    half = np.sqrt(sig * sig.mean()) * np.where(lawless, 10.0, 1.0)     # the model: halfway to the truth (elsewhere)
    lines = pd.DataFrame({"M.mean": 0.0, "M.std": half, "M.lower": -q * half, "M.upper": q * half,
                          "B.mean": 0.0, "B.std": sig.mean(), "B.lower": -q * sig.mean(), "B.upper": q * sig.mean()},
                         index=index)
    lines.iloc[:200, 4:] = np.nan                                        # the baseline's warm-up
    truth = Predictive(np.where(lawless, np.nan, 0.0), sig, np.full(N, np.inf))
    section = score_forecasts(lines, close, {"M": 0.9}, {"B": 0.9}, truth=truth)
    rows = {row["indicator"]: row for row in section.rows}
    assert rows["B"]["bars"] == N - 201 and rows[TRUTH]["bars"] == N - 301   # the bars the baseline serves and it has
    assert rows[TRUTH]["coverage_0.9"] == pytest.approx(0.9, abs=0.02)
    assert TRUTH not in {c.model for c in section.comparisons} | {c.baseline for c in section.comparisons}
    y, keep = r[:-1], (np.arange(N - 1) >= 200) & ~lawless[:-1]

    def pinball(std):
        lo, hi = -q * std[:-1][keep], q * std[:-1][keep]
        return np.mean(np.maximum(0.05 * (y[keep] - lo), -0.95 * (y[keep] - lo))) + \
            np.mean(np.maximum(0.95 * (y[keep] - hi), -0.05 * (y[keep] - hi)))

    base = pinball(np.full(N, sig.mean()))
    [note] = section.notes
    expected = f"pinball 5 % / 95 % truth {pinball(sig) / base - 1:+.1%}, M {pinball(half) / base - 1:+.1%}"
    assert expected in note and pinball(sig) < pinball(half) < base
    assert score_forecasts(lines, close, {"M": 0.9}, {"B": 0.9}).notes == []


def test_the_synthetic_market_carries_its_law_for_one_bar_ahead():
    df = synthetic_market(2000, seed=3)
    law = truth_law(df)
    calm = ~df["anomaly"].to_numpy()[1:]                               # an anomaly's move has no law
    assert (~calm).sum() > 3 and np.isnan(law.mean[:-1][~calm]).all() and np.isnan(law.mean[-1])
    np.testing.assert_array_equal(law.mean[:-1][calm], df["drift"].to_numpy()[1:][calm])
    np.testing.assert_array_equal(law.std[:-1][calm], df["sigma"].to_numpy()[1:][calm])
    y = np.log(df["close"].to_numpy()[1:] / df["close"].to_numpy()[:-1])
    inside = (y >= law.quantile(0.05)[:-1]) & (y <= law.quantile(0.95)[:-1])
    assert inside[calm].mean() == pytest.approx(0.9, abs=0.015)
    assert truth_law(df, horizon=2) is None and truth_law(df[["open", "high", "low", "close", "volume"]]) is None


def test_a_perfect_direction_beats_a_coin():
    close, r, _ = market()
    noise = np.random.default_rng(5).normal(size=N)
    lines = pd.DataFrame({"M.direction": r, "B.direction": noise})
    section = score_directions(lines, close, ["M"], ["B"], horizon=1)
    rows = {row["indicator"]: row for row in section.rows}
    assert rows["M"]["rank_ic"] == pytest.approx(1.0) and rows["M"]["sign_agreement"] == 1.0
    assert abs(rows["B"]["rank_ic"]) < 4 * rows["B"]["ic_se"]
    assert section.comparisons[0].verdict == "better"


def test_true_regimes_use_only_labels_known_before_the_bar():
    close, _, _ = market(n=1200)
    truth = true_regimes(close, horizon=24, train_bars=300, step=24)
    later = close.copy()
    later[900:] *= np.exp(np.linspace(0, 3, 300))                     # a different future after bar 900
    other = true_regimes(later, horizon=24, train_bars=300, step=24)
    assert np.isnan(truth[:325]).all() and np.isfinite(truth[400:1150]).all()
    np.testing.assert_array_equal(truth[:876], other[:876])           # labels of bars whose future is unchanged


@pytest.fixture(scope="module")
def small_card(tmp_path_factory):
    from btdensity import synthetic_market
    from btdensity.evidence.page import write_scorecard
    from btdensity.evidence.scorecard import ScoreConfig, scorecard
    from btdensity.indicators import WalkForwardSettings

    cache = tmp_path_factory.mktemp("models")
    wf = WalkForwardSettings(train_bars=500, retrain_every=900, cache_dir=str(cache), fit_kwargs={"epochs": 4})
    card = scorecard(synthetic_market(2200, seed=3), ScoreConfig(walk_forward=wf))
    out = tmp_path_factory.mktemp("scorecard")
    return card, write_scorecard(card, out)


def test_scorecard_end_to_end_writes_every_comparison(small_card):
    card, paths = small_card
    doc = json.loads(paths["json"].read_text())
    pairs = {(c["family"], c["model"], c["baseline"]) for c in doc["comparisons"]}
    assert {("density", "LogDensity", "MixtureDensity"), ("forecast", "BNNUncertainty", "GarchForecast"),
            ("forecast", "BNNUncertainty", "HarForecast"), ("direction", "ScoreDirection", "MomentumDirection"), ("regime", "Regime", "PersistenceRegime"),
            ("gate", "Energy", "RealizedVolGate")} <= pairs
    assert all(c["verdict"] in ("better", "no different", "worse") for c in doc["comparisons"])
    assert doc["families"]["gate"]["indicators"] and doc["families"]["forecast"]["indicators"]
    page = paths["html"].read_text()
    for c in card.comparisons:                          # the page states every verdict, losses included
        assert f">{c.verdict}" in page
    assert page.count("<img") >= 3 and "lower is better" in page
    # the settings say how each model was trained: 500-bar windows unless an indicator expands by default
    assert "walk-forward: 500 training bars (or every bar so far, where the indicator expands by default)" in page
    assert "warm-started where the indicator is by default" in page


def test_anomaly_detection_is_scored_on_the_synthetic_ground_truth(small_card):
    card, _ = small_card
    rows = [r for r in card.sections["gate"].rows if "detected_share" in r]
    assert {r["indicator"] for r in rows} >= {"LogDensity", "RealizedVolGate"}
    assert all(0.0 <= r["detected_share"] <= 1.0 for r in rows)
