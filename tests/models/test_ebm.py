"""EnergyModel against known truths: an analytic 2-D mixture density, N(0, 1)'s score, market anomalies."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal, rankdata, spearmanr

from btdensity.feeds import synthetic_market
from btdensity.models.ebm import METHODS, EnergyModel

MEANS = np.array([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]])
COVS = [np.array([[0.5, 0.2], [0.2, 0.3]]), np.array([[0.3, -0.1], [-0.1, 0.6]]), np.eye(2) * 0.25]
WEIGHTS = np.array([0.4, 0.35, 0.25])
MIN_SPEARMAN = {"dsm": 0.95, "ssm": 0.95, "nce": 0.9, "cd": 0.8}
SMALL = dict(hidden=(32, 32))
FIT = dict(epochs=50, batch_size=256)


def draw_mixture(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    comp = rng.choice(len(WEIGHTS), size=n, p=WEIGHTS)
    chol = np.stack([np.linalg.cholesky(c) for c in COVS])
    return MEANS[comp] + np.einsum("nij,nj->ni", chol[comp], rng.normal(size=(n, 2)))


def mixture_log_density(X: np.ndarray) -> np.ndarray:
    return np.log(sum(w * multivariate_normal(m, c).pdf(X) for w, m, c in zip(WEIGHTS, MEANS, COVS)))


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) identity."""
    ranks = rankdata(scores)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def bar_features(df) -> np.ndarray:
    """Causal features that show anomalies: return, log-volume and bar range against the past 24 bars."""
    ret = np.log(df.close).diff()
    vol = ret.rolling(24).std().shift(1)
    log_volume = np.log(df.volume)
    volume_z = (log_volume - log_volume.rolling(24).mean().shift(1)) / log_volume.rolling(24).std().shift(1)
    bar_range = np.log(df.high / df.low) / vol
    return np.column_stack([ret / vol, volume_z, bar_range])


@pytest.fixture(scope="module")
def mixture_models() -> tuple[dict[str, EnergyModel], np.ndarray]:
    X = draw_mixture(3000, seed=0)
    return {m: EnergyModel(2, method=m, seed=0, **SMALL).fit(X, **FIT) for m in METHODS}, X


@pytest.mark.parametrize("method", METHODS)
def test_energy_ranks_like_true_log_density(mixture_models, method):
    models, _ = mixture_models
    X_test = draw_mixture(1000, seed=1)
    rho = spearmanr(-models[method].energy(X_test), mixture_log_density(X_test))[0]
    assert rho >= MIN_SPEARMAN[method], f"{method}: Spearman {rho:.3f}"


def test_nce_energy_is_a_normalised_negative_log_density(mixture_models):
    """NCE learns log Z: exp(−energy) integrates to ≈ 1 over the raw input space and matches the mean log p."""
    model = mixture_models[0]["nce"]
    grid = np.linspace(-6.0, 6.0, 161)
    xx, yy = np.meshgrid(grid, grid)
    mass = np.exp(-model.energy(np.c_[xx.ravel(), yy.ravel()])).sum() * (grid[1] - grid[0]) ** 2
    assert mass == pytest.approx(1.0, abs=0.1)
    X_test = draw_mixture(1000, seed=2)
    assert -model.energy(X_test).mean() == pytest.approx(mixture_log_density(X_test).mean(), abs=0.2)


def test_langevin_samples_follow_the_mixture(mixture_models):
    models, X = mixture_models
    S = models["dsm"].sample(400, n_steps=300, step_size=0.01)
    assert S.shape == (400, 2) and np.isfinite(S).all()
    np.testing.assert_allclose(S.mean(0), X.mean(0), atol=0.35)
    np.testing.assert_allclose(S.std(0), X.std(0), rtol=0.2)
    # Nearly all samples sit where the true density is substantial, not between the modes.
    assert np.mean(mixture_log_density(S) > np.quantile(mixture_log_density(X), 0.02)) > 0.85


def test_dsm_score_has_the_right_sign_and_scale():
    """On N(0, 1) the true score is −x: the learned score's slope is −1 within 15 % (the issue's criterion).

    Two things moved the slope away from −1 (this test once measured −0.885, 3.5 points from failing):
    * DSM at noise σ learns the score of the data convolved with N(0, σ²), slope −1/((1 + σ²)·s²) for
      a sample of standard deviation s: −0.96 at σ = 0.2, a known bias, checked exactly below.
    * Early stopping. DSM's loss depends on a slope error Δ only through ½σ²·Δ² (~1e-4 here) under a
      target −ε/σ with standard deviation 5, so the default 200-row validation split could not tell −0.88
      from −0.96 and restored epoch 2 of 24. A 20,000-row validation set (cheap in 1-D) can.
    Measured with it (data seeds 3-6, model seeds 0-2): slope −0.940 to −0.973, within 3.5 % of the
    σ-smoothed truth.
    """
    rng = np.random.default_rng(3)
    x, x_val = rng.normal(size=(1000, 1)), rng.normal(size=(20000, 1))
    sigma = 0.2
    model = EnergyModel(1, hidden=(16,), sigma=sigma, seed=0).fit(x, X_val=x_val, epochs=40, batch_size=128)
    grid = np.linspace(-2.0, 2.0, 41)[:, None]
    slope = np.polyfit(grid[:, 0], model.score(grid)[:, 0], 1)[0]
    assert slope == pytest.approx(-1.0, rel=0.15)
    smoothed = -1.0 / ((1.0 + sigma**2) * model.scaler.scale[0] ** 2)  # sigma is in standardised units
    assert slope == pytest.approx(smoothed, rel=0.07)
    # energy's finite-difference derivative agrees with score (the same sign convention)
    fd = (model.energy(grid + 1e-2) - model.energy(grid - 1e-2)) / 2e-2
    np.testing.assert_allclose(-fd, model.score(grid)[:, 0], atol=0.05)


def test_dsm_learns_a_non_gaussian_score():
    """The Gaussian base term starts at N(0, 1)'s answer; a bimodal density's score must be learned.

    Truth: the score of ½N(−2, ½²) + ½N(2, ½²) smoothed by DSM's noise (σ = 0.2 standardised units).
    """
    rng = np.random.default_rng(3)
    x = (np.where(rng.random(2000) < 0.5, -2.0, 2.0) + 0.5 * rng.normal(size=2000))[:, None]
    model = EnergyModel(1, hidden=(32, 32), seed=0).fit(x, epochs=40, batch_size=128)
    var = 0.25 + (0.2 * model.scaler.scale[0]) ** 2
    g = np.linspace(-3.0, 3.0, 61)
    w_left, w_right = np.exp(-(g + 2) ** 2 / (2 * var)), np.exp(-(g - 2) ** 2 / (2 * var))
    true = -(w_left * (g + 2) + w_right * (g - 2)) / (w_left + w_right) / var
    learned = model.score(g[:, None])[:, 0]
    assert np.corrcoef(learned, true)[0, 1] > 0.9
    assert np.sqrt(np.mean((learned - true) ** 2)) < 0.4 * np.sqrt(np.mean(true ** 2))


def test_energy_flags_market_anomalies():
    df = synthetic_market(5000, seed=4, anomaly_rate=0.01)
    feats = bar_features(df)
    ok = np.isfinite(feats).all(1)
    anomaly = df.anomaly.to_numpy()
    train = ok & ~anomaly & (np.arange(len(df)) < 3000)
    test = ok & (np.arange(len(df)) >= 3000)
    model = EnergyModel(3, hidden=(32, 32), seed=0).fit(feats[train], epochs=30, batch_size=128)
    assert anomaly[test].sum() >= 10
    score = auroc(model.energy(feats[test]), anomaly[test])
    assert score >= 0.9, f"AUROC {score:.3f}"


@pytest.mark.parametrize("method", METHODS)
def test_save_load_and_seed_determinism(method, tmp_path):
    X = draw_mixture(200, seed=5)
    fit = dict(epochs=2, batch_size=64)
    a = EnergyModel(2, hidden=(8,), method=method, seed=7, buffer_size=256, cd_steps=5).fit(X, **fit)
    b = EnergyModel(2, hidden=(8,), method=method, seed=7, buffer_size=256, cd_steps=5).fit(X, **fit)
    c = EnergyModel(2, hidden=(8,), method=method, seed=8, buffer_size=256, cd_steps=5).fit(X, **fit)
    np.testing.assert_array_equal(a.energy(X), b.energy(X))
    assert not np.allclose(a.energy(X), c.energy(X))
    np.testing.assert_array_equal(a.sample(5, n_steps=10), b.sample(5, n_steps=10))
    a.save(tmp_path / "m.pt")
    loaded = EnergyModel.load(tmp_path / "m.pt")
    assert loaded.get_config() == a.get_config()
    np.testing.assert_array_equal(loaded.energy(X), a.energy(X))
    np.testing.assert_array_equal(loaded.sample(5, n_steps=10), a.sample(5, n_steps=10))


def test_bad_input_raises_value_error_naming_the_problem():
    X = draw_mixture(100, seed=6)
    with pytest.raises(ValueError, match="method"):
        EnergyModel(2, method="mle")
    with pytest.raises(ValueError, match="hidden"):
        EnergyModel(2, hidden=())
    with pytest.raises(ValueError, match="sigma"):
        EnergyModel(2, sigma=0.0)
    model = EnergyModel(2, hidden=(4,))
    with pytest.raises(ValueError, match="2-D"):
        model.fit(X[:, 0])
    with pytest.raises(ValueError, match="n_features=2"):
        model.fit(np.c_[X, X])
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit(bad)
    with pytest.raises(RuntimeError, match="not fitted"):
        model.energy(X)
    model.fit(X, epochs=1)
    with pytest.raises(ValueError, match="n_features=2"):
        model.energy(X[:, :1])
    with pytest.raises(ValueError, match="NaN"):
        model.energy(bad)
    with pytest.raises(ValueError, match="X_val"):
        EnergyModel(2, hidden=(4,)).fit(X, X_val=X[:, :1], epochs=1)
    with pytest.raises(ValueError, match="unknown fit argument"):
        EnergyModel(2, hidden=(4,)).fit(X, epoch=1)


def test_energy_is_batched_without_autograd(mixture_models):
    model = mixture_models[0]["dsm"]
    X = draw_mixture(20_000, seed=7)
    e = model.energy(X)
    assert e.shape == (20_000,) and e.dtype == np.float64
    np.testing.assert_allclose(e[:100], model.energy(X[:100]), rtol=1e-6, atol=1e-6)
    with torch.no_grad():  # no autograd needed: works under no_grad too
        np.testing.assert_allclose(model.energy(X[:100]), e[:100], rtol=1e-6, atol=1e-6)
