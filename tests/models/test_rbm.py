"""GaussianRBM against brute force (free energy, log Z) and the exact held-out log-likelihood."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from btdensity.models.rbm import GaussianRBM

MEANS = np.array([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]])
SCALES = np.array([0.5, 0.6, 0.4])


def draw(n: int, seed: int) -> np.ndarray:
    """A 2-D mixture of three isotropic Gaussians: far from one Gaussian, within reach of a small RBM."""
    rng = np.random.default_rng(seed)
    k = rng.integers(3, size=n)
    return MEANS[k] + SCALES[k, None] * rng.normal(size=(n, 2))


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return draw(1000, 0), draw(1000, 1)


@pytest.fixture(scope="module")
def trained(data) -> dict[str, GaussianRBM]:
    X, _ = data
    return {m: GaussianRBM(2, n_hidden=8, method=m, seed=0).fit(X, epochs=30) for m in ("cd", "pcd")}


def brute_force_free_energy(model: GaussianRBM, X: np.ndarray) -> np.ndarray:
    """−log Σ_h exp(−E(v, h)) by enumerating every hidden state, in numpy float64."""
    p = {k: v.detach().double().numpy() for k, v in model.module.state_dict().items()}
    sigma = np.exp(p["log_sigma"])
    v = (X - model.scaler.mean) / model.scaler.scale
    H = np.array(list(itertools.product([0.0, 1.0], repeat=model.n_hidden)))
    joint = (0.5 * (((v - p["b"]) / sigma) ** 2).sum(1)[:, None] - (H @ p["c"])[None, :]
             - (v / sigma) @ p["W"] @ H.T)                       # E(v, h): rows × hidden states
    m = (-joint).max(1)
    free = -(m + np.log(np.exp(-joint - m[:, None]).sum(1)))
    return free - model.scaler.log_det


@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_free_energy_equals_brute_force(trained, data, method):
    model = trained[method]
    X = data[1][:200]
    np.testing.assert_allclose(model.free_energy(X), brute_force_free_energy(model, X), atol=1e-5, rtol=1e-6)
    np.testing.assert_array_equal(model.energy(X), model.free_energy(X))


def test_exact_log_prob_integrates_to_one(trained):
    model = trained["cd"]
    grid = np.linspace(-7.0, 7.0, 201)
    xx, yy = np.meshgrid(grid, grid)
    mass = np.exp(model.log_prob(np.c_[xx.ravel(), yy.ravel()])).sum() * (grid[1] - grid[0]) ** 2
    assert mass == pytest.approx(1.0, abs=5e-3)


@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_training_raises_held_out_log_likelihood(trained, data, method):
    X, X_test = data
    # The same initial weights, with an optimiser step too small to move them: the untrained model.
    untrained = GaussianRBM(2, n_hidden=8, method=method, seed=0).fit(X, epochs=1, lr=1e-12)
    before, after = untrained.log_prob(X_test).mean(), trained[method].log_prob(X_test).mean()
    assert after > before + 0.3, (before, after)
    # ... and beats the best single Gaussian (the data are a three-component mixture).
    gauss = (-0.5 * ((X_test - X.mean(0)) / X.std(0)) ** 2 - np.log(np.sqrt(2 * np.pi) * X.std(0))).sum(1).mean()
    assert after > gauss + 0.2, (gauss, after)


def test_gibbs_samples_match_the_data_moments(trained, data):
    X, _ = data
    S = trained["cd"].sample(2000, n_steps=200)
    assert S.shape == (2000, 2)
    np.testing.assert_allclose(S.mean(0), X.mean(0), atol=0.3)
    np.testing.assert_allclose(S.std(0), X.std(0), rtol=0.15)


def test_transform_gives_hidden_probabilities(trained, data):
    model = trained["cd"]
    P = model.transform(data[1][:50])
    p = {k: v.detach().double().numpy() for k, v in model.module.state_dict().items()}
    v = (data[1][:50] - model.scaler.mean) / model.scaler.scale
    expected = 1.0 / (1.0 + np.exp(-(p["c"] + (v / np.exp(p["log_sigma"])) @ p["W"])))
    assert P.shape == (50, 8)
    np.testing.assert_allclose(P, expected, atol=1e-6)


@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_save_load_and_seed_determinism(method, data, tmp_path):
    X = data[0][:200]
    a = GaussianRBM(2, n_hidden=4, method=method, seed=3).fit(X, epochs=2)
    b = GaussianRBM(2, n_hidden=4, method=method, seed=3).fit(X, epochs=2)
    c = GaussianRBM(2, n_hidden=4, method=method, seed=4).fit(X, epochs=2)
    np.testing.assert_array_equal(a.free_energy(X), b.free_energy(X))
    assert not np.allclose(a.free_energy(X), c.free_energy(X))
    np.testing.assert_array_equal(a.sample(5, n_steps=10), b.sample(5, n_steps=10))
    a.save(tmp_path / "rbm.pt")
    loaded = GaussianRBM.load(tmp_path / "rbm.pt")
    np.testing.assert_array_equal(loaded.free_energy(X), a.free_energy(X))
    np.testing.assert_array_equal(loaded.transform(X), a.transform(X))
    np.testing.assert_array_equal(loaded.sample(5, n_steps=10), a.sample(5, n_steps=10))
    assert loaded.log_partition() == a.log_partition()


def test_bad_input_raises_value_error_naming_the_problem(trained):
    model = trained["cd"]
    with pytest.raises(ValueError, match="method"):
        GaussianRBM(2, method="gibbs")
    with pytest.raises(ValueError, match="n_hidden"):
        GaussianRBM(2, n_hidden=0)
    with pytest.raises(ValueError, match="2-D"):
        model.free_energy(np.zeros(2))
    with pytest.raises(ValueError, match="n_features=2"):
        model.transform(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        model.energy(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="n_hidden=21"):
        big = GaussianRBM(2, n_hidden=21).fit(draw(100, 2), epochs=1)
        big.log_prob(draw(3, 3))
