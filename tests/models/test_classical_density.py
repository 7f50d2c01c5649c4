"""The classical density baselines against known truths: the analytic log-likelihood of a known Gaussian, scipy's
densities, scikit-learn's ``score_samples``, the true number of mixture components; files round-trip exactly."""
import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture

from btdensity.models.classical_density import GaussianMixtureModel, GaussianModel

D = 3
MEAN = np.array([1.0, -2.0, 0.5])
SD = np.array([2.0, 0.01, 1.0])       # scales 200x apart: the standardisation and its log-Jacobian matter
CORR = np.array([[1.0, 0.6, -0.3], [0.6, 1.0, 0.2], [-0.3, 0.2, 1.0]])
COV = SD[:, None] * CORR * SD[None, :]

#: three well-separated components in 2-D (the second feature 100x smaller than the first)
MIX_WEIGHTS = np.array([0.5, 0.3, 0.2])
MIX_MEANS = np.array([[-6.0, 0.0], [6.0, 0.0], [0.0, 0.08]])
MIX_COVS = np.array([[[1.0, 0.003], [0.003, 1e-4]], [[0.5, 0.0], [0.0, 2e-4]], [[2.0, -0.005], [-0.005, 5e-5]]])

MODELS = {"gaussian": lambda d, seed=0: GaussianModel(d, seed=seed),
          "mixture": lambda d, seed=0: GaussianMixtureModel(d, max_components=4, seed=seed)}


def mixture_rows(n, rng):
    k = rng.choice(3, size=n, p=MIX_WEIGHTS)
    return np.stack([rng.multivariate_normal(MIX_MEANS[j], MIX_COVS[j]) for j in k])


def true_mixture_log_prob(X):
    comps = np.stack([multivariate_normal(MIX_MEANS[j], MIX_COVS[j]).logpdf(X) for j in range(3)], axis=1)
    return np.log(np.exp(comps) @ MIX_WEIGHTS)


@pytest.fixture(scope="module")
def gaussian_rows():
    rng = np.random.default_rng(0)
    return rng.multivariate_normal(MEAN, COV, 20_000), rng.multivariate_normal(MEAN, COV, 200_000)


@pytest.fixture(scope="module")
def mixture():
    rng = np.random.default_rng(1)
    X, X_test = mixture_rows(3000, rng), mixture_rows(20_000, rng)
    return GaussianMixtureModel(2, seed=0).fit(X), X, X_test


def test_gaussian_mean_log_likelihood_equals_the_analytic_value(gaussian_rows):
    """E[log N(x; μ, Σ)] = −d/2 (1 + log 2π) − ½ log det Σ. On fresh rows the fitted model's mean falls short of
    it by KL(truth ‖ fit) ≈ k / (2 n_fit) (k = d + d(d+1)/2 = 9 parameters: 2.3e-4 nats) and scatters by the
    sampling error of a mean of m rows: −log p = const + χ²_d / 2 has variance d/2, so sd = √(d / 2m) = 0.0027.
    Tolerance: 4 sd + 2 KL = 0.0115 nats (0.0038 per dimension)."""
    X, X_test = gaussian_rows
    model = GaussianModel(D).fit(X)
    analytic = -0.5 * D * (1.0 + math.log(2 * math.pi)) - 0.5 * np.linalg.slogdet(COV)[1]
    k = D + D * (D + 1) // 2
    tol = 4 * math.sqrt(D / (2 * X_test.shape[0])) + 2 * k / (2 * X.shape[0])
    gap = model.log_prob(X_test).mean() - analytic
    assert abs(gap) < tol, (gap, tol)
    # in sample the identity is exact for the maximum-likelihood fit (mean squared Mahalanobis distance = d),
    # up to the ridge (1e-6 of each variance): ~d * 1e-6 nats
    in_sample = -0.5 * D * (1.0 + math.log(2 * math.pi)) - 0.5 * np.linalg.slogdet(model.covariances_[0])[1]
    assert model.log_prob(X).mean() == pytest.approx(in_sample, abs=1e-5)
    assert (np.abs(model.means_[0] - MEAN) < 4 * SD / math.sqrt(X.shape[0])).all()


def test_gaussian_rows_equal_scipy_with_the_fitted_mean_and_covariance(gaussian_rows):
    X, X_test = gaussian_rows
    model = GaussianModel(D).fit(X[:500])
    mean, cov = model.means_[0], model.covariances_[0]
    np.testing.assert_allclose(mean, X[:500].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(X[:500].T, bias=True) + 1e-6 * np.diag(X[:500].var(axis=0)), rtol=1e-10)
    np.testing.assert_allclose(model.log_prob(X_test[:2000]), multivariate_normal(mean, cov).logpdf(X_test[:2000]),
                               rtol=1e-12, atol=1e-11)
    np.testing.assert_array_equal(model.energy(X_test[:10]), -model.log_prob(X_test[:10]))


def test_mixture_picks_the_true_number_of_components_by_bic(mixture):
    model, _, _ = mixture
    assert model.n_components_ == 3
    bic = model.bic_
    assert sorted(bic) == list(range(1, 9)) and min(bic, key=bic.get) == 3
    np.testing.assert_allclose(np.sort(model.weights_), np.sort(MIX_WEIGHTS), atol=0.04)


def test_mixture_held_out_log_likelihood_is_the_true_densitys(mixture):
    """On 20,000 fresh rows the fitted mixture's mean log-likelihood falls short of the true density's by
    KL(truth ‖ fit) ≈ k / (2 n_fit) = 17 / 6000 = 0.003 nats; the paired difference's sampling error is ~1e-3.
    Tolerance 0.02 nats; a missing log-Jacobian (log 0.01 per row) or an unnormalised density would be far out."""
    model, _, X_test = mixture
    gap = model.log_prob(X_test).mean() - true_mixture_log_prob(X_test).mean()
    assert -0.02 < gap < 0.005, gap


def test_mixture_log_prob_is_score_samples(mixture):
    model, X, X_test = mixture
    Z = model.scaler.transform(X, dtype=np.float64)
    gm = GaussianMixture(3, covariance_type="full", reg_covar=1e-6, max_iter=200, random_state=0).fit(Z)
    expected = gm.score_samples(model.scaler.transform(X_test[:2000], dtype=np.float64)) + model.scaler.log_det
    np.testing.assert_allclose(model.log_prob(X_test[:2000]), expected, rtol=1e-12, atol=1e-11)


def test_a_one_component_mixture_is_the_gaussian(gaussian_rows):
    X, X_test = gaussian_rows
    one = GaussianMixtureModel(D, max_components=1).fit(X[:1000])
    np.testing.assert_allclose(one.log_prob(X_test[:1000]), GaussianModel(D).fit(X[:1000]).log_prob(X_test[:1000]),
                               rtol=1e-10)


@pytest.mark.parametrize("name", MODELS)
def test_save_load_round_trip_is_exact(name, gaussian_rows, tmp_path):
    X, X_test = gaussian_rows
    model = MODELS[name](D).fit(X[:800], X_val=X[800:1000])
    path = tmp_path / "model.pt"                         # the model cache's suffix: the file keeps its name
    model.save(path, meta={"key": "abc", "version": "9"})
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
    loaded = type(model).load(path)
    assert loaded.meta_ == {"key": "abc", "version": "9"} and loaded.get_config() == model.get_config()
    assert loaded.history_ == model.history_ and "val_logp" in model.history_[-1]
    np.testing.assert_array_equal(loaded.log_prob(X_test[:3000]), model.log_prob(X_test[:3000]))
    assert loaded.double() is loaded
    assert json.loads(path.read_text())["class"] == type(model).__name__   # JSON: loading runs no code


@pytest.mark.parametrize("name", MODELS)
def test_files_of_another_kind_are_refused(name, tmp_path):
    other = GaussianModel if name == "mixture" else GaussianMixtureModel
    model = other(2).fit(np.random.default_rng(0).normal(size=(100, 2)))
    model.save(tmp_path / "other.pt")
    torch.save({"format": 1}, tmp_path / "torch.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    cls = type(MODELS[name](2))
    with pytest.raises(ValueError, match=f"holds a {other.__name__}, not a {cls.__name__}"):
        cls.load(tmp_path / "other.pt")
    for bad in ("torch.pt", "junk.pt"):
        with pytest.raises(ValueError):
            cls.load(tmp_path / bad)


@pytest.mark.parametrize("name", MODELS)
def test_deterministic_for_a_seed(name, mixture):
    _, X, X_test = mixture
    a, b = MODELS[name](2, seed=3).fit(X), MODELS[name](2, seed=3).fit(X)
    np.testing.assert_array_equal(a.log_prob(X_test[:500]), b.log_prob(X_test[:500]))


@pytest.mark.parametrize("name", MODELS)
def test_bad_input_is_named(name):
    model = MODELS[name](2)
    with pytest.raises(RuntimeError, match="not fitted"):
        model.log_prob(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="NaN"):
        model.fit(np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="n_features=2"):
        model.fit(np.zeros((5, 3)))
