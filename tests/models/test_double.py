"""``BaseModel.double()``: every model evaluates in float64 on request, gives its float32 values to float32
precision, and a row's value no longer depends on the batch it is computed in."""
import numpy as np
import pytest
import torch

from btdensity.models import BayesianNN, EnergyModel, GaussianRBM, JointEnergyClassifier, RealNVP, ScoreModel

FIT = {"epochs": 3}
MODELS = {
    "EnergyModel": (lambda: EnergyModel(4, hidden=(16, 16)), lambda m, X: m.energy(X)),
    "GaussianRBM": (lambda: GaussianRBM(4, n_hidden=6), lambda m, X: m.free_energy(X)),
    "RealNVP": (lambda: RealNVP(4, n_layers=2, hidden=16), lambda m, X: m.log_prob(X)),
    "ScoreModel": (lambda: ScoreModel(4, hidden=16, n_blocks=1), lambda m, X: m.score(X)),
    "JointEnergyClassifier": (lambda: JointEnergyClassifier(4, n_classes=2, hidden=(16,)),
                              lambda m, X: np.column_stack([m.predict_proba(X), m.energy(X)])),
    "BayesianNN": (lambda: BayesianNN(4, hidden=(8,), kl_warmup=1),
                   lambda m, X: np.column_stack(m.predict(X, n_samples=16)[:3])),
}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    X = rng.standard_t(5, size=(300, 4)) * [1.0, 2.0, 0.5, 3.0] + [0.0, 1.0, -2.0, 5.0]
    y = (X[:, 0] > 0).astype(int)
    return X, y


def _fit(name, X, y, model=None):
    model = MODELS[name][0]() if model is None else model
    if name == "JointEnergyClassifier":
        return model.fit(X, y, **FIT)
    if name == "BayesianNN":
        return model.fit(X, 0.5 * X[:, 0] + 0.1 * X[:, 1] ** 2, **FIT)
    return model.fit(X, **FIT)


@pytest.mark.parametrize("name", list(MODELS))
def test_float64_evaluation_matches_float32_and_is_batch_independent(name, data, tmp_path):
    X, y = data
    model = _fit(name, X, y)
    evaluate = MODELS[name][1]
    single = evaluate(model, X)
    assert model.dtype == torch.float32
    assert model.double() is model and model.dtype == torch.float64
    double = evaluate(model, X)
    scale = np.abs(single).max(axis=0) + 1e-3
    assert np.abs(double - single).max(axis=0).max() / scale.min() < 1e-4   # the same model
    assert not np.array_equal(double, single)                               # ... now in float64
    one_by_one = np.concatenate([evaluate(model, X[i:i + 1]) for i in range(20)])
    np.testing.assert_allclose(one_by_one, double[:20], rtol=1e-12, atol=1e-12)
    model.save(tmp_path / "m.pt")                       # a checkpoint loads as float32, as it was trained
    loaded = type(model).load(tmp_path / "m.pt")
    assert loaded.dtype == torch.float32
    np.testing.assert_allclose(evaluate(loaded, X), single, rtol=1e-6, atol=1e-6)
    assert _fit(name, X, y, model).dtype == torch.float32 and np.array_equal(evaluate(model, X), single)
