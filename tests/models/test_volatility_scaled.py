"""VolatilityScaled against known truths: a return whose log scale is linear in the inputs, and the network it wraps."""
import numpy as np
import pytest

from btdensity.models import BayesianNN, SequenceBNN
from btdensity.models.mixture_bnn import MixtureBNN
from btdensity.models.volatility_scaled import VolatilityScaled, VolatilityScaledSequence

NET = {"hidden": (8,), "kl_warmup": 5, "likelihood": "studentt", "df": 5.0}
FIT = {"epochs": 30, "batch_size": 256, "lr": 0.01, "patience": 10}
SLOPE = 0.8


def market(rng, n):
    """Column 0 moves the log scale (slope ``SLOPE``), column 1 is noise; returns t5 shocks of that scale."""
    X = rng.normal(size=(n, 2))
    sigma = np.exp(-5.0 + SLOPE * X[:, 0])
    return X, sigma * rng.standard_t(5, n) / np.sqrt(5 / 3), sigma


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    return {"train": market(rng, 3000), "val": market(rng, 1000), "test": market(rng, 6000)}


@pytest.fixture(scope="module")
def fitted(data):
    (X, y, _), (Xv, yv, _) = data["train"], data["val"]
    return VolatilityScaled(BayesianNN(2, seed=0, **NET)).fit(X, y, X_val=Xv, y_val=yv, **FIT)


def test_regression_recovers_the_scales_elasticity(fitted):
    """log |y| = log sigma + log |shock|: the slopes of the truth (0.8 and 0), whatever the shock's law."""
    intercept, slope, noise = fitted.coef_[:, 0]
    assert abs(slope - SLOPE) < 0.06, slope
    assert abs(noise) < 0.06, noise


def test_lines_are_the_networks_on_the_scaled_target_times_the_scale(data, fitted):
    (X, y, _), (Xv, yv, _), (Xt, _, _) = data["train"], data["val"], data["test"]
    s, sv = fitted.scale(X)[:, 0], fitted.scale(Xv)[:, 0]
    alone = BayesianNN(2, seed=0, **NET).fit(X, y / s, X_val=Xv, y_val=yv / sv, **FIT)
    wrapped, plain = fitted.predict(Xt[:50], n_samples=32), alone.predict(Xt[:50], n_samples=32)
    st = fitted.scale(Xt[:50])[:, 0]
    for a, b in zip(wrapped, plain):
        np.testing.assert_allclose(a, b * st, rtol=1e-6, atol=0)


def test_interval_follows_the_true_scale_and_covers(data, fitted):
    """Across a 20-fold range of the true scale, the 90 % interval's half-width over the truth's stays near 1 and it
    covers at its level in the calm, middle and volatile thirds alike."""
    X, y, sigma = data["test"]
    pred = fitted.predict(X, n_samples=64, level=0.9)
    truth_half = 1.645 * sigma   # t5 of unit variance: its 90 % half-width is 1.56; a normal's 1.645
    third = np.quantile(X[:, 0], [1 / 3, 2 / 3])
    for part in (X[:, 0] < third[0], (X[:, 0] >= third[0]) & (X[:, 0] < third[1]), X[:, 0] >= third[1]):
        ratio = np.median((pred.upper - pred.lower)[part] / 2 / truth_half[part])
        assert 0.8 < ratio < 1.2, ratio
        inside = ((y >= pred.lower) & (y <= pred.upper))[part].mean()
        assert abs(inside - 0.9) < 0.03, inside


def test_save_load_round_trip_and_a_plain_checkpoint_is_refused(data, fitted, tmp_path):
    Xt = data["test"][0][:20]
    fitted.save(tmp_path / "m.pt", meta={"window": 3})
    back = VolatilityScaled.load(tmp_path / "m.pt")
    assert back.meta_ == {"window": 3} and back.columns == [0, 1]
    for a, b in zip(fitted.predict(Xt, n_samples=16), back.predict(Xt, n_samples=16)):
        np.testing.assert_array_equal(a, b)
    fitted.model.save(tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="without the volatility regression"):
        VolatilityScaled.load(tmp_path / "plain.pt")


def test_scale_of_an_unseen_row_is_clipped_to_the_fitted_range(data, fitted):
    X = data["train"][0]
    far = np.array([[40.0, 0.0], [-40.0, 0.0]])
    fitted_range = np.column_stack([np.ones(len(X)), X]) @ fitted.coef_[:, 0]
    np.testing.assert_allclose(np.log(fitted.scale(far)[:, 0]), [fitted_range.max(), fitted_range.min()])


def test_columns_choose_the_regressors(data):
    (X, y, _), (Xv, yv, _) = data["train"], data["val"]
    model = VolatilityScaled(BayesianNN(2, seed=0, **NET), columns=[0]).fit_scale(X, y)
    assert model.coef_.shape == (2, 1) and abs(model.coef_[1, 0] - SLOPE) < 0.06


@pytest.mark.parametrize("make, message", [
    (lambda: VolatilityScaled(MixtureBNN(2, seed=0), columns=[2]), "columns must be distinct indices"),
    (lambda: VolatilityScaled(BayesianNN(2, seed=0), columns=[0, 0]), "columns must be distinct indices"),
    (lambda: VolatilityScaledSequence(BayesianNN(2, seed=0)), "wraps a SequenceBNN; got BayesianNN"),
])
def test_bad_settings_raise(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_a_flat_target_and_an_unfitted_model_raise(data):
    X = data["train"][0]
    model = VolatilityScaled(BayesianNN(2, seed=0, **NET))
    with pytest.raises(RuntimeError, match="not fitted yet"):
        model.scale(X)
    with pytest.raises(ValueError, match="needs more rows with a non-zero target than coefficients"):
        model.fit_scale(X, np.zeros(len(X)))


def test_sequence_network_reads_the_flattened_rows(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(600, 3 * 2))                    # 3 bars of 2 features, flattened
    y = np.exp(-4.0 + 0.7 * X[:, 4]) * rng.normal(size=600)   # the last bar's first feature moves the scale
    model = VolatilityScaledSequence(SequenceBNN(2, seq_len=3, hidden=4, kl_warmup=2, seed=0), columns=[4, 5])
    model.fit(X[:400], y[:400], X_val=X[400:], y_val=y[400:], epochs=5)
    assert abs(model.coef_[1, 0] - 0.7) < 0.15
    model.save(tmp_path / "s.pt")
    back = VolatilityScaledSequence.load(tmp_path / "s.pt")
    np.testing.assert_array_equal(model.predict(X[:5], n_samples=8).upper, back.predict(X[:5], n_samples=8).upper)


def test_zero_mean_predictive_is_centred_at_zero_and_recalibrated_there():
    """A target with a real drift (0.6 noise standard deviations): the zero-mean predictive reports mean 0, a
    symmetric interval, and its coverage is fitted around 0, not around the network's mean."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3000, 1))
    y = 0.6 + rng.normal(size=3000)
    net = BayesianNN(1, seed=0, hidden=(8,), kl_warmup=5, zero_mean=True)
    net.fit(X[:2000], y[:2000], X_val=X[2000:], y_val=y[2000:], **FIT)
    Xt = rng.normal(size=(20000, 1))
    yt = 0.6 + rng.normal(size=20000)
    pred = net.predict(Xt, n_samples=32, level=0.9)
    assert (pred.mean == 0).all()
    np.testing.assert_allclose(pred.lower, -pred.upper)
    assert abs(((yt >= pred.lower) & (yt <= pred.upper)).mean() - 0.9) < 0.03
    centred = BayesianNN(1, seed=0, hidden=(8,), kl_warmup=5)
    centred.fit(X[:2000], y[:2000], X_val=X[2000:], y_val=y[2000:], **FIT)
    assert abs(float(np.mean(centred.predict(Xt[:100], n_samples=32).mean)) - 0.6) < 0.1   # the drift it sees


def test_zero_mean_mixture_components_are_centred_at_zero():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(400, 1))
    y = 1.0 + 0.5 * X[:, 0] + 0.1 * rng.normal(size=400)
    bnn = MixtureBNN(1, hidden=(8,), kl_warmup=2, likelihood="studentt", zero_mean=True, seed=0).fit(X, y, epochs=5)
    loc, scale = bnn.components(X[:5], n_samples=10)
    np.testing.assert_allclose(loc.mean(axis=1), 0.0, atol=1e-12)
    assert (scale > 0).all()


def test_module_examples():
    import doctest

    from btdensity.models import log_scale, volatility_scaled

    for module in (log_scale, volatility_scaled):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
