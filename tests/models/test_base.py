"""BaseModel and its parts: input checks, standardisation, early stopping by deep copy, atomic checkpoints."""
import numpy as np
import pytest
import torch
from torch import nn

from btdensity.models.base import BaseModel
from btdensity.models.checks import check_array
from btdensity.models.standardizer import Standardizer
from btdensity.models.training import EarlyStopping


class LinearGaussian(BaseModel):
    """Smallest real model: a linear regression trained by the shared loop (known truth: y = 2x - 1)."""

    def __init__(self, n_features, seed=0, device=None):
        super().__init__(n_features, seed=seed, device=device)

    def _build(self):
        return nn.Linear(self.n_features, 1)

    def _loss(self, batch):
        x, y = batch
        return ((self.module(x) - y) ** 2).mean()

    def fit(self, X, y, **kw):
        return self._fit_arrays([X, np.asarray(y, np.float32)[:, None]], None, kw)

    def predict(self, X):
        return self._to_numpy(self._batched(self.module, self._prepare(X)))[:, 0]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(3.0, 5.0, size=(400, 1))
    return X, 2.0 * X[:, 0] - 1.0 + 0.01 * rng.normal(size=400)


def test_learns_known_truth_and_restores_best(data):
    X, y = data
    m = LinearGaussian(1).fit(X, y, epochs=300, lr=0.05, patience=30)
    np.testing.assert_allclose(m.predict([[0.0], [1.0]]), [-1.0, 1.0], atol=0.02)
    best = min(h["val_loss"] for h in m.history_)
    assert m.history_[m.best_epoch_]["val_loss"] == best


def test_save_load_identical_and_seeded(tmp_path, data):
    X, y = data
    a = LinearGaussian(1, seed=3).fit(X, y, epochs=20)
    a.save(tmp_path / "a.pt")
    b = LinearGaussian.load(tmp_path / "a.pt")
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    np.testing.assert_array_equal(a.predict(X), LinearGaussian(1, seed=3).fit(X, y, epochs=20).predict(X))
    assert not np.array_equal(a.predict(X), LinearGaussian(1, seed=4).fit(X, y, epochs=20).predict(X))


def test_failed_save_keeps_last_good_checkpoint(tmp_path, data, monkeypatch):
    X, y = data
    m = LinearGaussian(1).fit(X, y, epochs=5)
    path = tmp_path / "m.pt"
    m.save(path)
    good = path.read_bytes()

    def half_written(obj, f):
        with open(f, "wb") as fh:
            fh.write(good[:100])
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", half_written)
    with pytest.raises(RuntimeError, match="disk full"):
        m.save(path)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_load_rejects_other_files(tmp_path):
    torch.save({"something": 1}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a btdensity checkpoint"):
        LinearGaussian.load(tmp_path / "x.pt")


@pytest.mark.parametrize("X, message", [
    (np.zeros(5), "2-D array"), (np.zeros((5, 2)), "has 2 features; this model was built for n_features=1"),
    (np.array([[1.0], [np.nan]]), "NaN or infinite values in 1 row"), ([["a"]], "numeric"),
])
def test_check_array_names_the_problem(X, message):
    with pytest.raises(ValueError, match=message):
        check_array(X, n_features=1)


def test_unfitted_and_bad_fit_arguments(data):
    with pytest.raises(RuntimeError, match="not fitted"):
        LinearGaussian(1).predict([[1.0]])
    with pytest.raises(ValueError, match="unknown fit argument"):
        LinearGaussian(1).fit(*data, epocks=3)
    with pytest.raises(ValueError, match="n_features"):
        LinearGaussian(0)


def test_standardizer_log_det_and_constant_feature():
    X = np.c_[np.random.default_rng(1).normal(2, 4, 1000), np.full(1000, 7.0)]
    s = Standardizer().fit(X)
    Z = s.transform(X)
    np.testing.assert_allclose(Z[:, 0].std(), 1, rtol=1e-5)
    assert (Z[:, 1] == 0).all() and s.scale[1] == 1.0
    assert s.log_det == pytest.approx(-np.log(X[:, 0].std()))
    np.testing.assert_allclose(s.inverse(Z), X, rtol=1e-5)


def test_early_stopping_keeps_a_deep_copy():
    state = {"w": torch.zeros(2)}
    stopper = EarlyStopping(patience=1)
    stopper.step(1.0, 0, lambda: state)
    state["w"] += 5.0  # training goes on mutating the live weights in place
    assert stopper.best_state["w"].tolist() == [0.0, 0.0]
    assert not stopper.step(2.0, 1, lambda: state) and stopper.step(3.0, 2, lambda: state)


class Wider(LinearGaussian):
    """Another architecture (a hidden layer): its parameters do not match LinearGaussian's."""

    def _build(self):
        return nn.Sequential(nn.Linear(self.n_features, 4), nn.Linear(4, 1))


def test_warm_start_starts_from_the_previous_weights(data):
    X, y = data
    previous = LinearGaussian(1, seed=3).fit(X, y, epochs=300, lr=0.05, patience=30)
    weights = {k: v.clone() for k, v in previous.module.state_dict().items()}
    # one tiny step from the fitted weights stays at the truth; from the seed's weights it is far off (the same
    # seed: the same validation split, so the same standardisation the weights were fitted in)
    warm = LinearGaussian(1, seed=3).warm_start(previous).fit(X, y, epochs=1, lr=1e-6)
    cold = LinearGaussian(1, seed=3).fit(X, y, epochs=1, lr=1e-6)
    assert warm.warm_started_ and not cold.warm_started_
    np.testing.assert_allclose(warm.predict([[0.0], [1.0]]), [-1.0, 1.0], atol=0.05)
    assert np.abs(cold.predict([[0.0], [1.0]]) - [-1.0, 1.0]).max() > 0.5
    assert all(torch.equal(weights[k], v) for k, v in previous.module.state_dict().items())   # left as it was
    again = LinearGaussian(1, seed=3).warm_start(previous).fit(X, y, epochs=1, lr=1e-6)
    np.testing.assert_array_equal(again.predict(X), warm.predict(X))                          # deterministic


def test_warm_start_from_another_architecture_or_nothing_is_a_cold_fit(data):
    X, y = data
    cold = LinearGaussian(1, seed=2).fit(X, y, epochs=3)
    other = Wider(1).fit(X, y, epochs=2)
    for previous in (other, LinearGaussian(1), None):       # other shapes, unfitted, none
        m = LinearGaussian(1, seed=2).warm_start(previous).fit(X, y, epochs=3)
        assert not m.warm_started_
        np.testing.assert_array_equal(m.predict(X), cold.predict(X))
    m = LinearGaussian(1, seed=2).warm_start(cold)
    m.fit(X, y, epochs=3)
    assert m.warm_started_ and not m.fit(X, y, epochs=3).warm_started_   # the weights serve one fit only


def test_warm_fit_kwargs_scale_epochs_and_patience():
    from btdensity.models.training import warm_fit_kwargs

    assert warm_fit_kwargs({"epochs": 40, "patience": 8, "lr": 2e-3}, {}, 0.25) == {"epochs": 10, "patience": 2,
                                                                                      "lr": 2e-3}
    assert warm_fit_kwargs({}, {"epochs": 3, "patience": 0}, 0.1) == {"epochs": 1, "patience": 0}
    assert warm_fit_kwargs({}, {}, 0.5) == {"epochs": 100, "patience": 10}     # FitSettings' own defaults
    with pytest.raises(ValueError, match="share"):
        warm_fit_kwargs({}, {}, 0.0)
