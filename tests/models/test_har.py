"""HarT against a known truth: returns whose log scale is linear in the inputs, with t4 shocks."""
import doctest

import numpy as np
import pytest

from btdensity.models import har
from btdensity.models.har import HarT


def market(rng, n):
    X = rng.normal(size=(n, 2))                          # column 0 moves the scale, column 1 is noise
    sigma = np.exp(-5.0 + 0.6 * X[:, 0])
    return X, sigma * rng.standard_t(4, n) / np.sqrt(2.0), sigma   # unit-variance t4 shocks: std = sigma


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(11)
    X, y, _ = market(rng, 8000)
    return HarT().fit(X[:5600], y[:5600], X[5600:], y[5600:])


def test_std_follows_the_truth_and_the_shape_is_found(fitted):
    X, y, sigma = market(np.random.default_rng(12), 20000)
    std, lower, upper = fitted.predict(X, level=0.9)
    assert 3.0 <= fitted.df_ <= 5.0, fitted.df_
    ratio = std / sigma   # the law is fitted by its quantiles, and a heavy t's std moves with its shape: 10 %
    assert np.median(ratio) == pytest.approx(1.0, abs=0.1)
    assert np.ptp(np.quantile(np.log(ratio), [0.05, 0.95])) < 0.2    # ~one factor across a 10-fold range of sigma
    slope, noise = fitted.regression.coef_[1:, 0]
    assert abs(slope - 0.6) < 0.06 and abs(noise) < 0.06     # the slopes: standard error 0.016
    np.testing.assert_allclose(lower, -upper)
    for level in (0.5, 0.9, 0.98):
        _, lo, up = fitted.predict(X, level=level)
        assert abs(((y >= lo) & (y <= up)).mean() - level) < 0.015, level


def test_save_load_is_bit_exact(fitted, tmp_path):
    fitted.save(tmp_path / "har.json", meta={"k": 1})
    back = HarT.load(tmp_path / "har.json")
    X = np.random.default_rng(13).normal(size=(50, 2))
    for a, b in zip(fitted.predict(X), back.predict(X)):
        np.testing.assert_array_equal(a, b)
    assert back.meta_ == {"k": 1} and back.df_ == fitted.df_


def test_unfitted_and_wrong_width_raise(fitted):
    with pytest.raises(RuntimeError, match="not fitted yet"):
        HarT().predict(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="X must have 2 columns; got 3"):
        fitted.predict(np.zeros((1, 3)))


def test_module_example():
    result = doctest.testmod(har)
    assert result.attempted > 0 and result.failed == 0
