"""The walk-forward schedule obeys DESIGN's rules; the model cache never uses a damaged file."""
import warnings

import numpy as np
import pytest

from btdensity.indicators.walkforward import FitCache, WalkForwardSpec, forward_log_returns
from btdensity.models import EnergyModel


@pytest.mark.parametrize("horizon, embargo, expanding", [(0, 0, False), (1, 0, False), (24, 5, False), (3, 2, True)])
def test_training_rows_never_reach_the_bars_they_serve(horizon, embargo, expanding):
    spec = WalkForwardSpec(first_row=48, train_bars=300, retrain_every=70, horizon=horizon, embargo=embargo,
                           expanding=expanding)
    n = 2000
    served = []
    for k in range(spec.fit_index(n - 1) + 1):
        fit_rows, val_rows = spec.training_rows(k)
        bars = spec.served(k, n)
        rows = list(fit_rows) + list(val_rows)
        assert rows == list(range(rows[0], rows[-1] + 1))           # contiguous, time order, val is the tail
        assert rows[0] >= spec.first_row                            # features defined
        assert rows[-1] + horizon + embargo <= bars.start - 1       # labels known before the first served bar
        assert len(rows) == (300 if not expanding else rows[-1] - spec.first_row + 1)
        assert len(val_rows) == round(len(rows) * spec.val_fraction)
        served.extend(bars)
    assert served == list(range(spec.first_fit, n))                 # every bar from T_0 on, once
    assert spec.fit_index(spec.first_fit - 1) == -1 and spec.first_fit == 48 + 300 + horizon + embargo


def test_forward_log_returns():
    close = np.array([100.0, 110.0, 99.0, 120.0])
    np.testing.assert_allclose(forward_log_returns(close, 2), [np.log(0.99), np.log(120 / 110), np.nan, np.nan])


def test_damaged_cache_file_is_refitted_not_used(tmp_path):
    X = np.random.default_rng(0).normal(size=(200, 3))
    cache = FitCache(tmp_path)
    key = cache.key({"test": "damaged"}, X)
    fit = lambda: EnergyModel(3, hidden=(8,)).fit(X, epochs=2)  # noqa: E731
    model, _ = cache.get_or_fit(key, "E", EnergyModel.load, fit, lambda m: None)
    path = next(tmp_path.iterdir())
    good = model.energy(X)
    FitCache.forget()
    path.write_bytes(path.read_bytes()[:100])                       # truncated by a crash of another writer
    again = FitCache(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                              # torch's own warnings do not leak out
        model2, _ = again.get_or_fit(key, "E", EnergyModel.load, fit, lambda m: None)
    assert again.fits == 1 and again.hits == 0
    np.testing.assert_array_equal(model2.energy(X), good)           # refitted deterministically
    FitCache.forget()
    third = FitCache(tmp_path)
    third.get_or_fit(key, "E", EnergyModel.load, fit, lambda m: None)
    assert third.hits == 1 and third.fits == 0                       # the rewritten file is whole again


def test_a_file_of_another_key_or_version_is_refitted_with_one_warning(tmp_path, caplog):
    """A valid checkpoint copied over another key's file used to be loaded as if it were that key's model."""
    rng = np.random.default_rng(0)
    X1, X2 = rng.normal(size=(200, 3)), rng.normal(2.0, 1.0, size=(200, 3))
    cache = FitCache(tmp_path)
    fit1 = lambda: EnergyModel(3, hidden=(8,)).fit(X1, epochs=2)  # noqa: E731
    fit2 = lambda: EnergyModel(3, hidden=(8,)).fit(X2, epochs=2)  # noqa: E731
    key1, key2 = cache.key({"w": 1}, X1), cache.key({"w": 2}, X2)
    m1, _ = cache.get_or_fit(key1, "E", EnergyModel.load, fit1, lambda m: None)
    m2, _ = cache.get_or_fit(key2, "E", EnergyModel.load, fit2, lambda m: None)
    right = m2.energy(X2)
    path1, path2 = tmp_path / f"E-{key1}.pt", tmp_path / f"E-{key2}.pt"
    path2.write_bytes(path1.read_bytes())                            # the model of key 1 under key 2's name
    FitCache.forget()
    caplog.set_level("WARNING", logger="btdensity.indicators.walkforward")
    again = FitCache(tmp_path)
    model, _ = again.get_or_fit(key2, "E", EnergyModel.load, fit2, lambda m: None)
    assert again.fits == 1 and again.hits == 0
    np.testing.assert_array_equal(model.energy(X2), right)
    [record] = caplog.records
    assert str(path2) in record.getMessage() and f"key {key1}" in record.getMessage()
    assert "\n" not in record.getMessage()

    FitCache.forget()
    caplog.clear()
    newer = FitCache(tmp_path, _version="99.0")                    # a file another version of btdensity wrote
    newer.get_or_fit(key2, "E", EnergyModel.load, fit2, lambda m: None)
    assert newer.fits == 1 and "version 0." in caplog.records[0].getMessage()


def test_bad_spec_is_named():
    with pytest.raises(ValueError, match="train_bars"):
        WalkForwardSpec(first_row=0, train_bars=3)
    with pytest.raises(ValueError, match="retrain_every"):
        WalkForwardSpec(first_row=0, retrain_every=0)
