"""BayesianNN against known truths: heteroscedastic synthetic regression with a known noise std."""
import numpy as np
import pyro
import pytest
import torch

from btdensity.models.bnn import BayesianNN, Prediction
from btdensity.models.calibration import central_quantile, interval_coverage

LEVELS = (0.5, 0.8, 0.95)
FIT = {"epochs": 100, "batch_size": 250, "lr": 0.03, "patience": 20}


def truth(x):
    """Mean and noise std of the synthetic regression (the noise std rises fivefold across the range)."""
    return np.sin(1.5 * x) + 0.5 * x, 0.1 + 0.4 / (1 + np.exp(-2 * x))


def sample(rng, n, lo=-3.0, hi=3.0):
    x = rng.uniform(lo, hi, size=n)
    mean, std = truth(x)
    return x[:, None], mean + std * rng.normal(size=n), std


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(42)
    return {"train": sample(rng, 1000), "val": sample(rng, 500), "test": sample(rng, 4000)}


@pytest.fixture(scope="module", params=["normal", "lowrank", "laplace"])
def fitted(request, data):
    (X, y, _), (Xv, yv, _) = data["train"], data["val"]
    model = BayesianNN(1, hidden=(16, 16), guide=request.param, kl_warmup=20, seed=0)
    return model.fit(X, y, X_val=Xv, y_val=yv, **FIT)


def test_recalibrated_intervals_cover_held_out_data(fitted, data):
    X, y, _ = data["test"]
    pred = fitted.predict(X)
    coverage = interval_coverage(y, pred.mean, pred.std, LEVELS, df=fitted.df)
    for level in LEVELS:
        assert abs(coverage[level] - level) <= 0.04, (fitted.guide, coverage)
    # the interval predict() reports is the one whose coverage was measured
    lower, upper = fitted.predict(X, level=0.8)[4:]
    assert np.mean((y >= lower) & (y <= upper)) == pytest.approx(coverage[0.8], abs=1e-9)


def test_aleatoric_std_tracks_true_noise(fitted, data):
    X, _, noise_std = data["test"]
    pred = fitted.predict(X)
    assert np.corrcoef(pred.aleatoric, noise_std)[0, 1] >= 0.8
    np.testing.assert_allclose(pred.std ** 2, pred.epistemic ** 2 + pred.aleatoric ** 2, rtol=1e-9)
    mean, _ = truth(X[:, 0])
    assert np.sqrt(np.mean((pred.mean - mean) ** 2)) < 0.5 * noise_std.mean()  # the mean is learnt too


def test_epistemic_grows_far_outside_training_range(fitted, data):
    inside = fitted.predict(data["test"][0]).epistemic.mean()
    far = np.concatenate([np.linspace(-12, -9, 50), np.linspace(9, 12, 50)])[:, None]
    assert fitted.predict(far).epistemic.mean() >= 3 * inside


def test_save_load_gives_identical_predictions(fitted, data, tmp_path):
    X = data["test"][0][:200]
    path = tmp_path / f"bnn_{fitted.guide}.pt"
    fitted.save(path)
    loaded = BayesianNN.load(path)
    for a, b in zip(fitted.predict(X, level=0.8), loaded.predict(X, level=0.8)):
        np.testing.assert_array_equal(a, b)
    assert loaded.variance_scale_ == fitted.variance_scale_ != 1.0


def test_fitted_shape_is_light_tailed_on_normal_noise_and_survives_save_load(data, tmp_path):
    """The regression's noise is normal: with ``fit_df`` a network trained with t3 noise reports a near-normal
    predictive (15 or more degrees of freedom), whose intervals cover; the fitted shape is in the checkpoint."""
    (X, y, _), (Xv, yv, _) = data["train"], data["val"]
    model = BayesianNN(1, hidden=(16, 16), likelihood="studentt", df=3.0, fit_df=True, kl_warmup=20, seed=0)
    model.fit(X, y, X_val=Xv, y_val=yv, **FIT)
    assert model.df >= 15.0 and model.net.df == 3.0
    Xt, yt, _ = data["test"]
    pred = model.predict(Xt)
    coverage = interval_coverage(yt, pred.mean, pred.std, LEVELS, df=model.df)
    assert all(abs(coverage[level] - level) <= 0.04 for level in LEVELS), coverage
    model.save(tmp_path / "fit_df.pt")
    loaded = BayesianNN.load(tmp_path / "fit_df.pt")
    assert loaded.df == model.df
    np.testing.assert_array_equal(loaded.predict(Xt[:50]).upper, model.predict(Xt[:50]).upper)
    with pytest.raises(ValueError, match="fit_df=True fits the Student-t shape"):
        BayesianNN(1, fit_df=True)


def test_predict_is_deterministic_and_row_independent(fitted, data):
    X = data["test"][0][:50]
    batch = fitted.predict(X, n_samples=40)
    single = np.array([fitted.predict(X[i:i + 1], n_samples=40).mean[0] for i in range(5)])
    np.testing.assert_allclose(single, batch.mean[:5], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(fitted.predict(X, n_samples=40).std, batch.std)


def test_models_do_not_share_parameters(data, tmp_path):
    (X, y, _), (Xv, yv, _) = data["train"], data["val"]
    Xq = data["test"][0][:100]
    store_before = dict(pyro.get_param_store().items())
    fit = dict(FIT, epochs=15, batch_size=500)
    a = BayesianNN(1, hidden=(8,), kl_warmup=5, seed=1).fit(X, y, Xv, yv, **fit)
    a_pred = a.predict(Xq)
    a_params = {k: v.clone() for k, v in a.module.state_dict().items()}
    b = BayesianNN(1, hidden=(8,), kl_warmup=5, seed=1).fit(X, -3 * y, Xv, -3 * yv, **fit)
    # same architecture, hence the same Pyro site names: B trained on other data, A is untouched
    assert np.corrcoef(a_pred.mean, b.predict(Xq).mean)[0, 1] < -0.9
    for k, v in a.module.state_dict().items():
        assert torch.equal(v, a_params[k]), k
    np.testing.assert_array_equal(a.predict(Xq).mean, a_pred.mean)
    a.save(tmp_path / "a.pt")  # redraws from A's guide parameters
    np.testing.assert_array_equal(BayesianNN.load(tmp_path / "a.pt").predict(Xq).mean, a_pred.mean)
    # refitting A's config after B reproduces A exactly, and Pyro's global store is left as it was
    again = BayesianNN(1, hidden=(8,), kl_warmup=5, seed=1).fit(X, y, Xv, yv, **fit)
    np.testing.assert_array_equal(again.predict(Xq).mean, a_pred.mean)
    assert dict(pyro.get_param_store().items()).keys() == store_before.keys()


def test_nuts_on_a_tiny_network(tmp_path):
    rng = np.random.default_rng(7)
    x = rng.uniform(-2, 2, size=(80, 1))
    noise = 0.1 + 0.1 * (x[:, 0] + 2)
    y = 0.8 * x[:, 0] + noise * rng.normal(size=80)
    model = BayesianNN(1, hidden=(3,), guide="nuts", n_draws=30, nuts_warmup=30, nuts_max_tree_depth=4)
    model.fit(x, y, val_fraction=0.0)
    grid = np.linspace(-1.8, 1.8, 13)[:, None]
    pred = model.predict(grid, n_samples=30)
    # the yardstick is the data's own sampling error: least squares of the (true, linear) model on the same
    # rows misses the truth by ~0.11 here; a posterior mean that learned nothing (zero) misses it by ~0.9
    ols = np.polyval(np.polyfit(x[:, 0], y, 1), grid[:, 0])
    ols_rmse = np.sqrt(np.mean((ols - 0.8 * grid[:, 0]) ** 2))
    assert np.sqrt(np.mean((pred.mean - 0.8 * grid[:, 0]) ** 2)) <= 1.5 * ols_rmse
    assert np.corrcoef(pred.aleatoric, 0.1 + 0.1 * (grid[:, 0] + 2))[0, 1] >= 0.8
    assert (pred.epistemic > 0).all()
    model.save(tmp_path / "nuts.pt")
    np.testing.assert_array_equal(BayesianNN.load(tmp_path / "nuts.pt").predict(grid, n_samples=30).std, pred.std)


def test_studentt_several_outputs():
    """Two horizons whose noise differs by a factor 3: shapes, the noise ratio, t-quantile intervals."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-2, 2, size=(800, 2))
    noise = rng.standard_t(5, size=(800, 2)) * np.sqrt(3 / 5) * np.array([0.1, 0.3])
    y = np.column_stack([x[:, 0], x[:, 0] - x[:, 1]]) + noise
    model = BayesianNN(2, hidden=(16,), likelihood="studentt", df=5.0, n_outputs=2, kl_warmup=10)
    model.fit(x, y, **dict(FIT, epochs=60))
    pred = model.predict(x[:300], level=0.9)
    assert isinstance(pred, Prediction) and all(a.shape == (300, 2) for a in pred)
    ratio = pred.aleatoric[:, 1].mean() / pred.aleatoric[:, 0].mean()
    assert 2.4 < ratio < 3.6
    np.testing.assert_allclose(pred.upper - pred.mean, central_quantile(0.9, 5.0) * pred.std, rtol=1e-9)


@pytest.mark.parametrize("kwargs, message", [
    ({"hidden": (16, 0)}, "hidden"),
    ({"likelihood": "cauchy"}, "likelihood"),
    ({"guide": "svgd"}, "guide"),
    ({"prior_scale": -1.0}, "prior_scale"),
    ({"n_outputs": 0}, "n_outputs"),
    ({"likelihood": "studentt", "df": 2.0}, "df"),
    ({"activation": "sigmoid"}, "activation"),
    ({"n_draws": 1}, "n_draws"),
])
def test_bad_config_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BayesianNN(1, **kwargs)


@pytest.fixture(scope="module")
def small(data):
    X, y, _ = data["train"]
    return BayesianNN(1, hidden=(4,), kl_warmup=2).fit(X[:200], y[:200], epochs=5, batch_size=200)


@pytest.mark.parametrize("call, message", [
    (lambda m: m.predict([[np.nan]]), "X contains NaN"),
    (lambda m: m.predict(np.zeros((3, 2))), "n_features=1"),
    (lambda m: m.predict(np.zeros((3, 1)), level=1.5), "level must be in"),
    (lambda m: m.predict(np.zeros((3, 1)), n_samples=101), "n_samples"),
    (lambda m: m.fit(np.zeros((5, 1)), np.zeros(4)), "y has 4 rows but X has 5"),
    (lambda m: m.fit(np.zeros((5, 1)), np.zeros(5), X_val=np.zeros((2, 1))), "X_val and y_val"),
    (lambda m: m.fit(np.zeros((5, 1)), np.zeros(5), epochs=2), "must exceed kl_warmup"),
    (lambda m: m.fit(np.zeros((5, 1)), np.zeros(5), momentum=0.9), "unknown fit argument"),
    (lambda m: m.recalibrate(np.zeros((5, 1)), np.zeros((5, 2))), "n_outputs=1"),
])
def test_bad_inputs_raise(small, call, message):
    with pytest.raises(ValueError, match=message):
        call(small)


def test_unfitted_model_refuses_to_predict():
    with pytest.raises(RuntimeError, match="not fitted"):
        BayesianNN(1).predict(np.zeros((1, 1)))
