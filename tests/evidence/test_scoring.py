"""Scoring rules against known truths: exact expectations, numerical integrals of the CRPS definition, Monte
Carlo, and scipy's densities."""
import numpy as np
import pytest
from scipy import integrate, stats

from btdensity.evidence.scoring import (crps_gaussian, crps_student_t, interval_coverage, log_likelihood_per_dim,
                                        nll_gaussian, nll_student_t, pinball_loss, pit_values)


def _crps_by_integration(cdf, y):
    """CRPS(F, y) = int_{-inf}^{y} F(x)^2 dx + int_{y}^{inf} (1 - F(x))^2 dx (its definition)."""
    left = integrate.quad(lambda x: cdf(x) ** 2, -np.inf, y, epsabs=1e-11, epsrel=1e-10, limit=200)[0]
    right = integrate.quad(lambda x: (1 - cdf(x)) ** 2, y, np.inf, epsabs=1e-11, epsrel=1e-10, limit=200)[0]
    return left + right


def test_log_likelihood_per_dim_hand_values():
    assert log_likelihood_per_dim([-2.0, np.nan, -4.0, -9.0], 2) == (-2.5, -2.0, 3)
    assert log_likelihood_per_dim([-1.0, -np.inf], 1).mean == -np.inf   # an impossible outcome is not dropped
    with pytest.raises(ValueError, match="n_dims"):
        log_likelihood_per_dim([-1.0], 0)


def test_log_likelihood_per_dim_of_exact_gaussian_density():
    """3-D standard normal outcomes scored by their true density: E log p / d = -(log(2 pi) + 1) / 2, and the
    median of log p is -(3 log(2 pi) + median of chi2(3)) / 2."""
    z = np.random.default_rng(0).normal(size=(100_000, 3))
    logp = stats.norm.logpdf(z).sum(axis=1)
    mean, median, n = log_likelihood_per_dim(logp, 3)
    assert n == 100_000
    assert mean == pytest.approx(-0.5 * (np.log(2 * np.pi) + 1), abs=0.005)
    assert median == pytest.approx(-(3 * np.log(2 * np.pi) + stats.chi2(3).median()) / 6, abs=0.005)


def test_pinball_hand_values_and_orientation():
    # tau = 0.9: under-forecast by 1 costs 0.9, over-forecast by 1 costs 0.1
    assert pinball_loss([1.0, 1.0, np.nan], [0.0, 2.0, 5.0], 0.9, per_bar=True) == pytest.approx([0.9, 0.1, np.nan],
                                                                                                  nan_ok=True)
    assert pinball_loss([1.0, 1.0], [0.0, 2.0], 0.9) == pytest.approx(0.5)
    # two quantiles a bar: each bar's loss is the mean over them
    # bar 0: y = 1, q = (0, 2): (0.1 * 1 + 0.1 * 1) / 2; bar 1: y = 3, q = (1, 1): (0.1 * 2 + 0.9 * 2) / 2
    q = np.array([[0.0, 2.0], [1.0, 1.0]])
    assert pinball_loss([1.0, 3.0], q, [0.1, 0.9], per_bar=True) == pytest.approx([0.1, 1.0])
    with pytest.raises(ValueError, match="columns"):
        pinball_loss([1.0], [[0.0, 1.0]], [0.5])
    with pytest.raises(ValueError, match="tau"):
        pinball_loss([1.0], [0.0], 1.0)


@pytest.mark.parametrize("tau", [0.05, 0.5, 0.9])
def test_pinball_expectation_is_minimal_at_the_true_quantile(tau):
    """For Y ~ N(0, 1): E L_tau(Y, q) = q Phi(q) + phi(q) - tau q, which is phi(z_tau) at the quantile z_tau and
    larger anywhere else."""
    y = np.random.default_rng(1).normal(size=200_000)
    for q in (stats.norm.ppf(tau) - 0.3, stats.norm.ppf(tau), stats.norm.ppf(tau) + 0.3):
        exact = q * stats.norm.cdf(q) + stats.norm.pdf(q) - tau * q
        assert pinball_loss(y, np.full_like(y, q), tau) == pytest.approx(exact, abs=0.004)
    assert (pinball_loss(y, np.full_like(y, stats.norm.ppf(tau)), tau)
            < min(pinball_loss(y, np.full_like(y, stats.norm.ppf(tau) + s), tau) for s in (-0.3, 0.3)))


def test_interval_coverage():
    y, lower, upper = [0.0, 2.0, 1.0, np.nan], [-1.0, -1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]
    assert interval_coverage(y, lower, upper) == pytest.approx(2 / 3)   # the end points count as inside
    assert interval_coverage([0.0, 2.0], [-1.0, -1.0], [1.0, 1.0], per_bar=True).tolist() == [1.0, 0.0]
    y = np.random.default_rng(2).normal(size=50_000)
    half = stats.norm.ppf(0.95)
    assert interval_coverage(y, np.full_like(y, -half), np.full_like(y, half)) == pytest.approx(0.9, abs=0.005)
    with pytest.raises(ValueError, match="lower > upper"):
        interval_coverage([0.0], [1.0], [-1.0])


@pytest.mark.parametrize("y", [-3.0, -0.4, 0.0, 1.7])
def test_crps_gaussian_matches_integral_of_its_definition(y):
    mu, sigma = 0.3, 1.6
    truth = _crps_by_integration(lambda x: stats.norm.cdf(x, mu, sigma), y)
    assert crps_gaussian(y, mu, sigma) == pytest.approx(truth, rel=1e-7)


@pytest.mark.parametrize("df", [1.5, 3.0, 30.0])
@pytest.mark.parametrize("y", [-4.0, 0.2, 2.5])
def test_crps_student_t_matches_integral_of_its_definition(df, y):
    mu, scale = -0.5, 0.7
    truth = _crps_by_integration(lambda x: stats.t.cdf(x, df, mu, scale), y)
    assert crps_student_t(y, mu, scale, df) == pytest.approx(truth, rel=1e-6)


def test_crps_student_t_matches_monte_carlo_energy_form():
    """CRPS = E|X - y| - E|X - X'| / 2 with X, X' independent draws of the forecast."""
    rng = np.random.default_rng(3)
    df, mu, scale, y = 4.0, 0.2, 1.3, 1.1
    x, x2 = (mu + scale * rng.standard_t(df, size=(2, 1_000_000)))
    mc = np.mean(np.abs(x - y)) - 0.5 * np.mean(np.abs(x - x2))
    assert crps_student_t(y, mu, scale, df) == pytest.approx(mc, abs=0.005)


def test_crps_forms_agree_and_relate_to_pinball():
    # a t with huge df is the Gaussian
    y = np.linspace(-3, 3, 13)
    assert crps_student_t(y, 0.0, 1.0, 1e7, per_bar=True) == pytest.approx(crps_gaussian(y, 0.0, 1.0, per_bar=True),
                                                                          abs=1e-6)
    # CRPS(F, y) = 2 int_0^1 L_tau(y, F^{-1}(tau)) d tau, the pinball losses of all quantiles (midpoint rule)
    tau = (np.arange(20_000) + 0.5) / 20_000
    for value in (-1.2, 0.4):
        quantiles = stats.t.ppf(tau, 5.0, 0.1, 0.8)[None, :]
        crps = crps_student_t(value, 0.1, 0.8, 5.0)
        assert 2 * pinball_loss([value], quantiles, tau) == pytest.approx(crps, rel=1e-4)


def test_crps_rejects_bad_parameters():
    with pytest.raises(ValueError, match="df must be"):
        crps_student_t(0.0, 0.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="sigma must be positive"):
        crps_gaussian([0.0, 1.0], 0.0, [1.0, 0.0])


def test_nll_matches_scipy_densities():
    rng = np.random.default_rng(4)
    y, mu = rng.normal(size=50), rng.normal(size=50)
    sigma, df = rng.uniform(0.2, 3.0, size=50), rng.uniform(0.5, 40.0, size=50)
    assert nll_gaussian(y, mu, sigma, per_bar=True) == pytest.approx(-stats.norm.logpdf(y, mu, sigma), rel=1e-12)
    assert nll_student_t(y, mu, sigma, df, per_bar=True) == pytest.approx(-stats.t.logpdf(y, df, mu, sigma), rel=1e-10)
    assert nll_student_t(y, mu, sigma, 3.0) == pytest.approx(-np.mean(stats.t.logpdf(y, 3.0, mu, sigma)), rel=1e-12)


def test_pit_values_uniform_only_for_the_right_forecast():
    rng = np.random.default_rng(5)
    mu, sigma = rng.normal(size=5000), rng.uniform(0.5, 2.0, size=5000)
    y = mu + sigma * rng.normal(size=5000)
    y[:10] = np.nan                                     # the future of the last bars is unknown
    u = pit_values(y, lambda v: stats.norm.cdf(v, mu, sigma))
    assert u.size == 4990
    assert u == pytest.approx(pit_values(y, stats.norm.cdf(y, mu, sigma)))   # callable or values: the same
    assert stats.kstest(u, "uniform").pvalue > 0.01
    too_sure = pit_values(y, stats.norm.cdf(y, mu, 0.5 * sigma))          # intervals too narrow: U-shaped PIT
    assert stats.kstest(too_sure, "uniform").pvalue < 1e-6
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pit_values([0.0], [1.5])
