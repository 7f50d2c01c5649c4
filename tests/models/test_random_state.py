"""A fit takes its randomness from its seed alone: it leaves the caller's random state (torch, numpy,
``random``) as it found it, and two fits with one seed agree however that state was disturbed between them."""
import pickle
import random

import numpy as np
import pytest
import torch

from btdensity.models import BayesianNN, EnergyModel, GaussianRBM, JointEnergyClassifier, RealNVP, ScoreModel

FIT = {"epochs": 2}
# (model for a seed, what it outputs): tiny sizes; the cases cover each way a fit draws from torch's global RNG
# (initial weights, noise in losses, replay-buffer negatives, PCD chains, Pyro guides and NUTS).
MODELS = {
    "EnergyModel-dsm": (lambda s: EnergyModel(3, hidden=(8,), seed=s), lambda m, X: m.energy(X)),
    "EnergyModel-cd": (lambda s: EnergyModel(3, hidden=(8,), method="cd", buffer_size=64, cd_steps=2, seed=s),
                       lambda m, X: m.energy(X)),
    "JointEnergyClassifier": (lambda s: JointEnergyClassifier(3, 2, hidden=(8,), buffer_size=64, sgld_steps=2,
                                                              seed=s), lambda m, X: m.predict_proba(X)),
    "GaussianRBM-pcd": (lambda s: GaussianRBM(3, n_hidden=4, method="pcd", n_chains=16, seed=s),
                        lambda m, X: m.free_energy(X)),
    "RealNVP": (lambda s: RealNVP(3, n_layers=2, hidden=8, seed=s), lambda m, X: m.log_prob(X)),
    "ScoreModel": (lambda s: ScoreModel(3, hidden=8, n_blocks=1, seed=s), lambda m, X: m.score(X)),
    "BayesianNN": (lambda s: BayesianNN(3, hidden=(8,), kl_warmup=1, n_draws=10, seed=s),
                   lambda m, X: np.column_stack(m.predict(X, n_samples=10)[:2])),
    "BayesianNN-nuts": (lambda s: BayesianNN(3, hidden=(2,), guide="nuts", n_draws=4, nuts_warmup=4,
                                             nuts_max_tree_depth=2, seed=s),
                        lambda m, X: np.column_stack(m.predict(X, n_samples=4)[:2])),
}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(120, 3))
    return X, (X[:, 0] > 0).astype(int), X[:, 0] - 0.5 * X[:, 1] ** 2


def _fit_and_evaluate(name, seed, data):
    X, labels, target = data
    make, evaluate = MODELS[name]
    model = make(seed)
    if name == "JointEnergyClassifier":
        model.fit(X, labels, **FIT)
    elif name.startswith("BayesianNN"):
        model.fit(X, target, **FIT)
    else:
        model.fit(X, **FIT)
    return model, evaluate(model, X)


def _global_state():
    return {"torch": torch.get_rng_state().numpy().tobytes(), "numpy": pickle.dumps(np.random.get_state()),
            "random": random.getstate()}


def _assert_same(state, before, what):
    for key, value in before.items():
        assert state[key] == value, f"{what} changed the global {key} random state"


@pytest.mark.parametrize("name", list(MODELS))
def test_fit_and_load_leave_the_global_random_state_alone(name, data, tmp_path):
    torch.manual_seed(1234)
    np.random.seed(1234)
    random.seed(1234)
    before = _global_state()
    model, _ = _fit_and_evaluate(name, 0, data)
    _assert_same(_global_state(), before, "building, fitting and evaluating")
    model.save(tmp_path / "m.pt")
    type(model).load(tmp_path / "m.pt")
    _assert_same(_global_state(), before, "save and load")


@pytest.mark.parametrize("name", list(MODELS))
def test_same_seed_same_fit_whatever_the_global_random_state(name, data):
    torch.manual_seed(123)
    np.random.seed(123)
    _, first = _fit_and_evaluate(name, 7, data)
    torch.rand(5)
    np.random.rand(5)
    random.random()
    _, second = _fit_and_evaluate(name, 7, data)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, _fit_and_evaluate(name, 8, data)[1])  # ... and the seed matters
