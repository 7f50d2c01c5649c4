"""ScoreModel against a 2-D Gaussian mixture whose blurred densities, scores and posterior means are analytic."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from btdensity.models.score import ScoreModel

WEIGHTS = np.array([0.6, 0.4])
MEANS = np.array([[-2.0, 0.0], [2.0, 1.0]])
STD = 0.5  # isotropic component standard deviation
SIGMA_MIN = 0.1


def draw(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    k = rng.choice(2, size=n, p=WEIGHTS)
    return MEANS[k] + STD * rng.normal(size=(n, 2)), k


def mixture(X: np.ndarray, noise_var: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log-density, score and component responsibilities of the mixture blurred by N(0, diag(noise_var))."""
    var = STD**2 + np.broadcast_to(noise_var, (2,))
    d = X[:, None, :] - MEANS[None]
    log_comp = np.log(WEIGHTS) - 0.5 * (d**2 / var).sum(-1) - 0.5 * np.log(2 * np.pi * var).sum()
    log_p = np.logaddexp.reduce(log_comp, axis=1)
    resp = np.exp(log_comp - log_p[:, None])
    return log_p, -(resp[:, :, None] * d / var).sum(1), resp


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return draw(6000, 0)[0], draw(2000, 1)[0]


@pytest.fixture(scope="module")
def model(data) -> ScoreModel:
    return ScoreModel(2, sigma_min=SIGMA_MIN, sigma_max=3.0, hidden=64, n_blocks=2, seed=0).fit(
        data[0], epochs=80, patience=20)


def raw_noise_var(model: ScoreModel, sigma: float) -> np.ndarray:
    """Noise of scale ``sigma`` in standardised units, as a per-feature variance in raw units."""
    return (sigma * model.scaler.scale) ** 2


def test_score_matches_the_analytic_score_at_the_smallest_noise_level(model, data):
    X_test = data[1]
    _, truth, _ = mixture(X_test, raw_noise_var(model, SIGMA_MIN))
    est = model.score(X_test)
    # test rows are draws from the data density: the error is density-weighted
    assert np.linalg.norm(est - truth) / np.linalg.norm(truth) <= 0.25
    np.testing.assert_array_equal(model.conditional_score(X_test, [1]), est[:, [1]])
    np.testing.assert_array_equal(model.conditional_score(X_test, 0), est[:, [0]])


def test_denoise_matches_the_posterior_mean(model, data):
    sigma = 0.5
    clean = data[1]
    noise_var = raw_noise_var(model, sigma)
    noisy = clean + np.sqrt(noise_var) * np.random.default_rng(7).normal(size=clean.shape)
    # analytic E[x | x̃]: per component μ + V(V + N)⁻¹(x̃ − μ), weighted by the blurred responsibilities
    _, _, resp = mixture(noisy, noise_var)
    shrink = STD**2 / (STD**2 + noise_var)
    posterior = (resp[:, :, None] * (MEANS[None] + shrink * (noisy[:, None, :] - MEANS[None]))).sum(1)
    est = model.denoise(noisy, sigma=sigma)
    assert np.linalg.norm(est - posterior) <= 0.2 * np.linalg.norm(noisy - posterior)
    assert np.mean((est - clean) ** 2) < 0.6 * np.mean((noisy - clean) ** 2)


def test_annealed_langevin_samples_match_the_mixture(model):
    S = model.sample(4000)
    k = np.linalg.norm(S[:, None, :] - MEANS[None], axis=-1).argmin(axis=1)
    np.testing.assert_allclose(np.bincount(k, minlength=2) / len(k), WEIGHTS, atol=0.05)
    for j in range(2):
        np.testing.assert_allclose(S[k == j].mean(axis=0), MEANS[j], atol=0.1)
        # spread of each component: within 20 % of the true standard deviation
        np.testing.assert_allclose(S[k == j].std(axis=0), STD, rtol=0.2)


def test_log_prob_ranks_rows_like_the_true_density(model, data):
    X_test = data[1]
    est = model.log_prob(X_test)
    truth = mixture(X_test)[0]
    assert spearmanr(est, truth).statistic >= 0.9
    np.testing.assert_allclose(model.energy(X_test[:20]), -est[:20], rtol=1e-6)
    # far outside the data the density is lower than at every training-like row
    assert model.log_prob(np.array([[8.0, -6.0]]))[0] < est.min()


def test_sliced_score_matching_learns_a_gaussian_score():
    mean, cov = np.array([1.0, -2.0]), np.array([[1.0, 0.8], [0.8, 2.0]])
    rng = np.random.default_rng(3)
    X = rng.multivariate_normal(mean, cov, size=3000)
    X_test = rng.multivariate_normal(mean, cov, size=1000)
    m = ScoreModel(2, method="ssm", sigma_min=SIGMA_MIN, hidden=32, n_blocks=1, seed=1).fit(
        X, epochs=60, batch_size=256)
    blurred = cov + np.diag(raw_noise_var(m, SIGMA_MIN))
    truth = -(X_test - mean) @ np.linalg.inv(blurred)
    assert np.linalg.norm(m.score(X_test) - truth) / np.linalg.norm(truth) <= 0.25


def test_save_load_and_seed_determinism(tmp_path, data):
    X = data[0][:400]
    kwargs = dict(hidden=16, n_blocks=1, langevin_steps=5, path_nodes=4)
    a = ScoreModel(2, seed=5, **kwargs).fit(X, epochs=3)
    b = ScoreModel(2, seed=5, **kwargs).fit(X, epochs=3)
    for fn in ("score", "log_prob", "denoise"):
        np.testing.assert_array_equal(getattr(a, fn)(X), getattr(b, fn)(X))
    np.testing.assert_array_equal(a.sample(30), b.sample(30))
    a.save(tmp_path / "score.pt")
    c = ScoreModel.load(tmp_path / "score.pt")
    for fn in ("score", "log_prob", "denoise"):
        np.testing.assert_array_equal(getattr(a, fn)(X), getattr(c, fn)(X))
    np.testing.assert_array_equal(a.sample(30), c.sample(30))
    other = ScoreModel(2, seed=6, **kwargs).fit(X, epochs=3)
    assert not np.allclose(a.score(X), other.score(X))


def test_bad_inputs_raise_value_errors(model):
    with pytest.raises(ValueError, match="sigma_min"):
        ScoreModel(2, sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(ValueError, match="n_noise_levels"):
        ScoreModel(2, n_noise_levels=1)
    with pytest.raises(ValueError, match="method"):
        ScoreModel(2, method="mle")
    with pytest.raises(ValueError, match="step_ratio"):
        ScoreModel(2, step_ratio=2.0)
    with pytest.raises(ValueError, match="NaN"):
        model.score([[np.inf, 0.0]])
    with pytest.raises(ValueError, match="3 features"):
        model.log_prob(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="out of range"):
        model.conditional_score(np.zeros((1, 2)), [2])
    with pytest.raises(ValueError, match="dims"):
        model.conditional_score(np.zeros((1, 2)), [])
    with pytest.raises(ValueError, match="sigma must lie"):
        model.denoise(np.zeros((1, 2)), sigma=10.0)
    with pytest.raises(ValueError, match="n must be"):
        model.sample(-1)
