"""MultiTaskBNN: a shared body, one head per asset, learns two assets whose return scales depend on one shared state
in opposite ways (predicted std against the truth); save / load round trip; one-line errors."""
import numpy as np
import pytest

from btdensity.models import MultiTaskBNN


def truth_scales(s):
    """Asset A's return std rises with the shared state s, asset B's falls: 0.01 x (0.5 ± 0.4 s)."""
    return 0.01 * np.column_stack([0.5 + 0.4 * s, 0.5 - 0.4 * s])


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    n = 1200
    s = rng.uniform(-1.0, 1.0, n)
    X = np.column_stack([s, rng.normal(size=(n, 2))])          # the shared state and two features of no use
    Y = truth_scales(s) * rng.normal(size=(n, 2))
    model = MultiTaskBNN(3, n_tasks=2, hidden=(16,), head_hidden=(8,), likelihood="gaussian", kl_warmup=5, seed=0)
    model.fit(X[:900], Y[:900], X_val=X[900:], y_val=Y[900:], epochs=40, batch_size=300, lr=1e-2, patience=8)
    return model


def test_predicted_std_follows_each_assets_truth(fitted):
    grid = np.linspace(-0.8, 0.8, 9)
    pred = fitted.predict(np.column_stack([grid, np.zeros((9, 2))]), n_samples=100)
    truth = truth_scales(grid)
    assert pred.std.shape == (9, 2) and pred.mean.shape == (9, 2)
    # measured: at most 10 % from the truth; the truth's ratio of the two assets runs from 0.22 to 4.5
    np.testing.assert_allclose(pred.std, truth, rtol=0.2)
    assert (np.diff(pred.std[:, 0]) > 0).all() and (np.diff(pred.std[:, 1]) < 0).all()
    np.testing.assert_allclose(pred.mean, 0.0, atol=0.002)       # no predictable mean: within 0.2 std of 0
    np.testing.assert_allclose(pred.std ** 2, pred.epistemic ** 2 + pred.aleatoric ** 2, rtol=1e-12)
    assert (pred.lower < pred.mean).all() and (pred.mean < pred.upper).all()
    scales = fitted.variance_scale_
    assert scales.shape == (2,) and np.all((scales > 0.5) & (scales < 2))


def test_save_load_round_trip(fitted, tmp_path):
    X = np.random.default_rng(1).normal(size=(50, 3))
    path = tmp_path / "mt.pt"
    fitted.save(path, meta={"key": "k1"})
    loaded = MultiTaskBNN.load(path)
    assert loaded.get_config() == fitted.get_config() and loaded.meta_ == {"key": "k1"}
    np.testing.assert_array_equal(loaded.variance_scale_, fitted.variance_scale_)
    for a, b in zip(loaded.predict(X, n_samples=32), fitted.predict(X, n_samples=32)):
        np.testing.assert_array_equal(a, b)


def test_errors_name_the_bad_input():
    with pytest.raises(ValueError, match="n_tasks must be a positive integer; got 0"):
        MultiTaskBNN(3, n_tasks=0)
    with pytest.raises(ValueError, match="head_hidden"):
        MultiTaskBNN(3, head_hidden=(0,))
    with pytest.raises(ValueError, match="guide must be one of"):
        MultiTaskBNN(3, guide="nuts")
    with pytest.raises(ValueError, match="y has 1 outputs; this model was built for n_outputs=2"):
        MultiTaskBNN(3, kl_warmup=1).fit(np.zeros((10, 3)), np.zeros(10), epochs=2)
