"""GarchT against known truths: parameters recovered from a simulated GARCH(1,1)-t path, the forecast equal to the
variance recursion written out, the Student-t interval's level, save/load to the bit, determinism."""
import json

import numpy as np
import pytest
from scipy import stats

from btdensity.models.empirical import EmpiricalSample
from btdensity.models.garch import GarchT

#: hourly-like: unconditional variance omega / (1 - alpha - beta) = 1e-4 (1 % a bar), persistence 0.98
TRUTH = dict(omega=2e-6, alpha=0.08, beta=0.90, nu=6.0, mu=1e-4)


def simulate_garch_t(n, omega, alpha, beta, nu, mu, seed, burn=500):
    """``n`` returns of GARCH(1,1) with unit-variance Student-t(nu) errors, after ``burn`` bars from the
    unconditional variance; also each return's true conditional variance (known the bar before)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_t(nu, n + burn) * np.sqrt((nu - 2) / nu)
    r, var = np.empty(n + burn), np.empty(n + burn)
    v = omega / (1 - alpha - beta)
    for t in range(n + burn):
        var[t] = v
        r[t] = mu + np.sqrt(v) * z[t]
        v = omega + alpha * (r[t] - mu) ** 2 + beta * v
    return r[burn:], var[burn:]


@pytest.fixture(scope="module")
def long_path():
    return simulate_garch_t(20_000, **TRUTH, seed=7)


@pytest.fixture(scope="module")
def fitted(long_path):
    return GarchT().fit(long_path[0])


def test_recovers_the_parameters(fitted):
    # Tolerances are 4 standard deviations of the estimates over 40 simulated paths of this length (measured:
    # alpha 0.0042, beta 0.0065, nu 0.25, mu 5.3e-5, omega 12 %, persistence 0.0038, unconditional variance 7 %)
    p = fitted.params_
    assert fitted.converged_ and fitted.n_obs_ == 20_000
    assert abs(p["alpha"] - TRUTH["alpha"]) < 0.017
    assert abs(p["beta"] - TRUTH["beta"]) < 0.026
    assert abs(p["nu"] - TRUTH["nu"]) < 1.0
    assert abs(p["mu"] - TRUTH["mu"]) < 2.2e-4
    assert abs(p["omega"] / TRUTH["omega"] - 1) < 0.5
    assert abs(p["alpha"] + p["beta"] - 0.98) < 0.015
    assert abs(p["omega"] / (1 - p["alpha"] - p["beta"]) / 1e-4 - 1) < 0.3


def test_parameters_are_in_the_units_of_the_returns(long_path, fitted):
    """Returns 100 times larger: the same alpha, beta, nu (the internal scaling makes the data arch sees the same
    but for rounding, which the optimiser's tolerance turns into ~1e-6), mu 100 times and omega 10,000 times larger."""
    big = GarchT().fit(100 * long_path[0][:4000]).params_
    small = GarchT().fit(long_path[0][:4000]).params_
    for name, factor in (("alpha", 1), ("beta", 1), ("nu", 1), ("mu", 100), ("omega", 1e4)):
        assert big[name] == pytest.approx(factor * small[name], rel=1e-4), name


def test_forecast_is_the_recursion_written_out(fitted, long_path):
    p, r = fitted.params_, long_path[0]
    rows = np.stack([r[i:i + 300] for i in (0, 5000, 12_345)])
    for row, got in zip(rows, fitted.one_step_variance(rows)):
        v = fitted.var0_
        for e in row:
            v = p["omega"] + p["alpha"] * (e - p["mu"]) ** 2 + p["beta"] * v
        assert got == pytest.approx(v, rel=1e-12)
    mean, var = fitted.forecast(rows, horizon=4)
    steps = [fitted.one_step_variance(rows)]
    for _ in range(3):
        steps.append(p["omega"] + (p["alpha"] + p["beta"]) * steps[-1])
    np.testing.assert_allclose(var, np.sum(steps, axis=0), rtol=1e-14)
    np.testing.assert_array_equal(mean, np.full(3, 4 * p["mu"]))
    np.testing.assert_array_equal(fitted.forecast(rows[0])[1], fitted.one_step_variance(rows[:1]))


def test_a_row_gives_the_same_number_in_any_batch(fitted, long_path):
    rows = np.lib.stride_tricks.sliding_window_view(long_path[0][:2000], 500)
    batch = fitted.one_step_variance(rows)
    for i in (0, 7, 800, len(rows) - 1):
        assert fitted.one_step_variance(rows[i])[0] == batch[i]
        assert fitted.one_step_variance(rows[i:i + 3])[0] == batch[i]


def test_long_memory_forgets_the_start(fitted, long_path):
    """The recursion started ``memory`` bars back differs from one over the whole history by ~beta^memory."""
    r = long_path[0][:3000]
    whole = fitted.one_step_variance(r)[0]
    assert fitted.one_step_variance(r[-500:])[0] == pytest.approx(whole, rel=1e-15 + 10 * fitted.truncation_weight(500))
    assert fitted.truncation_weight(500) < 1e-20


@pytest.mark.parametrize("level", [0.5, 0.9, 0.99])
def test_quantile_factor_is_the_unit_variance_student_t_interval(fitted, level):
    nu = fitted.nu_
    q = fitted.quantile_factor(level)
    z = q / np.sqrt((nu - 2) / nu)              # back on the standard t scale
    assert stats.t.cdf(z, nu) - stats.t.cdf(-z, nu) == pytest.approx(level, abs=1e-12)


def test_heavy_tails_narrow_the_centre_and_widen_the_tails(fitted):
    assert fitted.quantile_factor(0.5) < stats.norm.ppf(0.75) and fitted.quantile_factor(0.99) > stats.norm.ppf(0.995)


def test_save_load_round_trip_to_the_bit(fitted, tmp_path, long_path):
    path = tmp_path / "g.pt"
    fitted.save(path, meta={"key": "k1", "version": "v"})
    assert [p.name for p in tmp_path.iterdir()] == ["g.pt"]       # written atomically: no temporary left
    loaded = GarchT.load(path)
    assert loaded.params_ == fitted.params_ and loaded.var0_ == fitted.var0_ and loaded.loglik_ == fitted.loglik_
    assert loaded.meta_ == {"key": "k1", "version": "v"} and loaded.double() is loaded
    rows = np.stack([long_path[0][:200], long_path[0][200:400]])
    np.testing.assert_array_equal(loaded.forecast(rows, 3)[1], fitted.forecast(rows, 3)[1])
    EmpiricalSample().fit([1.0, 2.0]).save(tmp_path / "e.pt")
    with pytest.raises(ValueError, match="holds a EmpiricalSample, not a GarchT"):
        GarchT.load(tmp_path / "e.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x80\x02 not json")
    with pytest.raises(ValueError, match="not a btdensity JSON checkpoint"):
        GarchT.load(tmp_path / "junk.pt")
    assert json.loads(path.read_text())["state"]["alpha"] == fitted.alpha_


def test_deterministic_and_loglik_in_return_units(long_path):
    r = long_path[0][:3000]
    a, b = GarchT().fit(r), GarchT().fit(r.copy())
    assert a.params_ == b.params_ and a.loglik_ == b.loglik_
    # the log-likelihood of r under the fitted parameters, computed here from the t density
    p = a.params_
    var = np.empty(r.size)
    v = a.var0_
    for t in range(r.size):
        var[t] = v
        v = p["omega"] + p["alpha"] * (r[t] - p["mu"]) ** 2 + p["beta"] * v
    scale = np.sqrt(var * (p["nu"] - 2) / p["nu"])
    ll = stats.t.logpdf((r - p["mu"]) / scale, p["nu"]).sum() - np.log(scale).sum()
    assert a.loglik_ == pytest.approx(ll, abs=1.0)    # arch starts its recursion from a backcast, not var0 (0.14 here)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="at least 20 finite returns"):
        GarchT().fit(np.ones(10))
    with pytest.raises(ValueError, match="vary"):
        GarchT().fit(np.zeros(100))
    with pytest.raises(RuntimeError, match="not fitted"):
        GarchT().forecast(np.zeros((1, 5)))
    with pytest.raises(ValueError, match="horizon"):
        GarchT().fit(np.random.default_rng(0).standard_normal(100)).forecast(np.zeros(5), horizon=0)
