"""Calibration utilities against analytic truths: exact distributions, closed forms, numerical integrals."""
import numpy as np
import pytest
from scipy import integrate, stats

from btdensity.models.calibration import (calibration_error, central_quantile, crps, fit_shape_and_scale,
                                          fit_variance_scale, interval_coverage, moved_targets, predictive_nll)

LEVELS = (0.5, 0.8, 0.95)


def _t_draws(rng, n, df, std):
    """Student-t draws scaled so that their standard deviation is ``std``."""
    return rng.standard_t(df, size=n) * std * np.sqrt((df - 2) / df)


@pytest.mark.parametrize("df", [None, 4.0])
def test_coverage_of_exact_forecasts_is_nominal(df):
    rng = np.random.default_rng(0)
    n = 200_000
    mean = rng.normal(size=n)
    std = rng.uniform(0.5, 2.0, size=n)
    noise = rng.normal(size=n) * std if df is None else _t_draws(rng, n, df, std)
    cov = interval_coverage(mean + noise, mean, std, LEVELS, df=df)
    for level in LEVELS:
        assert abs(cov[level] - level) < 0.005


def test_coverage_detects_wrong_tails():
    """Heavy-tailed truth judged as Gaussian with the right variance: the 95 % interval over-covers."""
    rng = np.random.default_rng(1)
    y = _t_draws(rng, 200_000, 3.0, 1.0)
    zeros, ones = np.zeros_like(y), np.ones_like(y)
    truth = stats.t.cdf(1.959964 * np.sqrt(3.0), 3.0) * 2 - 1  # P(|T3| / sqrt(3) <= 1.96)
    assert abs(interval_coverage(y, zeros, ones, [0.95])[0.95] - truth) < 0.002
    assert truth > 0.955


def test_central_quantile_matches_distributions():
    assert central_quantile(0.9) == pytest.approx(stats.norm.ppf(0.95))
    df = 5.0
    assert central_quantile(0.9, df) == pytest.approx(stats.t.ppf(0.95, df) * np.sqrt(3 / 5))


@pytest.mark.parametrize("df", [None, 3.5, 8.0])
@pytest.mark.parametrize("y", [-2.3, 0.1, 1.7])
def test_crps_matches_numerical_integral(df, y):
    mean, std = 0.4, 1.3
    if df is None:
        dist = stats.norm(mean, std)
    else:
        dist = stats.t(df, mean, std * np.sqrt((df - 2) / df))
    left = integrate.quad(lambda x: dist.cdf(x) ** 2, -np.inf, y, limit=200)[0]
    right = integrate.quad(lambda x: (1 - dist.cdf(x)) ** 2, y, np.inf, limit=200)[0]
    assert crps([y], [mean], [std], df=df) == pytest.approx(left + right, rel=1e-6)


def test_calibration_error_zero_when_calibrated_and_analytic_when_not():
    rng = np.random.default_rng(2)
    z = rng.normal(size=400_000)
    zeros, ones = np.zeros_like(z), np.ones_like(z)
    assert calibration_error(z, zeros, ones) < 2e-5
    # std reported twice too large: P(PIT <= p) = Phi(2 Phi^-1(p))
    p = np.arange(1, 20) / 20
    truth = np.mean((p - stats.norm.cdf(2 * stats.norm.ppf(p))) ** 2)
    assert calibration_error(z, zeros, 2 * ones) == pytest.approx(truth, abs=2e-4)


def test_predictive_nll_matches_gaussian_entropy():
    rng = np.random.default_rng(3)
    std = rng.uniform(0.2, 3.0, size=300_000)
    y = rng.normal(size=std.size) * std
    truth = np.mean(0.5 * np.log(2 * np.pi * np.e * std ** 2))
    assert predictive_nll(y, np.zeros_like(y), std) == pytest.approx(truth, abs=0.01)


def test_variance_scale_gaussian_optimum_is_mean_squared_z():
    rng = np.random.default_rng(4)
    y, mean, std = rng.normal(size=5000), rng.normal(size=5000), rng.uniform(0.5, 2, 5000)
    assert fit_variance_scale(y, mean, std) == pytest.approx(np.mean(((y - mean) / std) ** 2), rel=1e-5)


def test_variance_scale_recovers_misspecified_t_spread():
    rng = np.random.default_rng(5)
    df, n = 5.0, 100_000
    std = rng.uniform(0.5, 2.0, size=n)
    y = _t_draws(rng, n, df, 1.5 * std)  # the forecast's std is 1.5 times too small
    c = fit_variance_scale(y, np.zeros(n), std, df=df)
    assert c == pytest.approx(1.5 ** 2, rel=0.03)
    cov = interval_coverage(y, np.zeros(n), std * np.sqrt(c), LEVELS, df=df)
    assert all(abs(cov[lv] - lv) < 0.01 for lv in LEVELS)


def test_coverage_scale_recovers_misspecified_t_spread():
    rng = np.random.default_rng(5)
    df, n = 5.0, 100_000
    std = rng.uniform(0.5, 2.0, size=n)
    y = _t_draws(rng, n, df, 1.5 * std)
    c = fit_variance_scale(y, np.zeros(n), std, df=df, criterion="coverage")
    assert c == pytest.approx(1.5 ** 2, rel=0.03)


def test_coverage_scale_balances_the_intervals_of_a_wrong_shape():
    """Residuals whose std is 0.5 or 1.5 times the forecast's at random (a scale mixture: heavier-tailed than
    the Gaussian forecast): no factor makes every interval right. The NLL factor matches the variance
    (E s² = 1.25) and leaves the inner intervals far too wide; the coverage factor balances the gaps."""
    rng = np.random.default_rng(6)

    def draw(n):
        return rng.normal(size=n) * rng.choice([0.5, 1.5], size=n)

    fit, held_out = draw(20_000), draw(50_000)
    zeros, ones = np.zeros(20_000), np.ones(20_000)
    c_nll = fit_variance_scale(fit, zeros, ones)
    c_cov = fit_variance_scale(fit, zeros, ones, criterion="coverage")
    assert c_nll == pytest.approx(1.25, rel=0.03)
    levels = tuple(round(0.05 * k, 2) for k in range(1, 20))

    def gaps(c):
        cov = interval_coverage(held_out, np.zeros(50_000), np.full(50_000, np.sqrt(c)), levels)
        return np.array([cov[lv] - lv for lv in levels])

    nll_gaps, cov_gaps = gaps(c_nll), gaps(c_cov)
    assert nll_gaps[levels.index(0.5)] > 0.1              # the NLL factor's 50 % interval covers ~62 %
    assert np.abs(cov_gaps).max() < 0.75 * np.abs(nll_gaps).max()
    assert np.mean(cov_gaps ** 2) < 0.5 * np.mean(nll_gaps ** 2)


@pytest.mark.parametrize("true_df, shapes", [(None, (15.0, 100.0)), (3.0, (2.5, 3.5)), (5.0, (4.0, 6.0))])
def test_shape_and_scale_recover_the_residuals_law(true_df, shapes):
    """Residuals of standard deviation 2 drawn from a normal, a t3 or a t5: the fitted shape is the truth's (normal:
    a t with 15 or more degrees of freedom) and the scale its variance, 4; the central intervals of the fitted
    predictive cover held-out draws at every level within 1 point, where a t3 of the right variance on normal
    residuals misses its 90 % level by more than 3."""
    rng = np.random.default_rng(11)

    def draw(n):
        return 2.0 * (rng.normal(size=n) if true_df is None else _t_draws(rng, n, true_df, 1.0))

    fit, held_out = draw(20_000), draw(100_000)
    df, c = fit_shape_and_scale(fit, np.zeros_like(fit), np.ones_like(fit))
    assert shapes[0] <= df <= shapes[1]
    assert c == pytest.approx(4.0, rel=0.1)
    levels = (0.5, 0.8, 0.9, 0.95)
    cov = interval_coverage(held_out, np.zeros_like(held_out), np.full_like(held_out, np.sqrt(c)), levels, df=df)
    assert max(abs(cov[lv] - lv) for lv in levels) < 0.01, cov
    if true_df is None:
        wrong = interval_coverage(held_out, np.zeros_like(held_out), np.full_like(held_out, 2.0), (0.9,), df=3.0)
        assert abs(wrong[0.9] - 0.9) > 0.03          # it covers 82 %


def test_fits_on_the_targets_that_moved_recover_the_law_a_flat_bar_distorts():
    """t4 returns of standard deviation 2, 10 % of them exactly 0 (flat bars): fitted on every target the shape and
    the scale come out wrong (a t2.5) and the inner intervals under-cover the bars that move (50 %: 43 %, 80 %:
    76 %); fitted on the moved targets they are the truth's, the intervals cover those at their levels (and every
    bar at least at them: 91 % at 90 %)."""
    rng = np.random.default_rng(5)

    def draw(n):
        y = 2.0 * _t_draws(rng, n, 4.0, 1.0)
        y[rng.random(n) < 0.1] = 0.0
        return y

    fit, held_out = draw(20_000), draw(100_000)
    zeros, ones = np.zeros_like(fit), np.ones_like(fit)
    moved = moved_targets(fit)
    assert moved.dtype == bool and moved.mean() == pytest.approx(0.9, abs=0.01)
    df, c = fit_shape_and_scale(fit, zeros, ones, moved=moved)
    assert 3.5 <= df <= 5.0 and c == pytest.approx(4.0, rel=0.1)
    assert fit_variance_scale(fit, zeros, ones, 4.0, criterion="coverage", moved=moved) == pytest.approx(4.0, rel=0.1)
    assert fit_variance_scale(fit, zeros, ones, 4.0, moved=moved) == pytest.approx(4.0, rel=0.1)       # NLL
    bad_df, bad_c = fit_shape_and_scale(fit, zeros, ones)
    stirred = held_out != 0

    def gap(df_, c_, y):
        cov = interval_coverage(y, np.zeros_like(y), np.full_like(y, np.sqrt(c_)), (0.5, 0.8, 0.9), df=df_)
        return max(abs(cov[lv] - lv) for lv in cov)

    assert gap(df, c, held_out[stirred]) < 0.01
    assert interval_coverage(held_out, 0 * held_out, np.full_like(held_out, np.sqrt(c)), (0.9,), df=df)[0.9] == \
        pytest.approx(0.91, abs=0.01)
    assert gap(bad_df, bad_c, held_out[stirred]) > 0.05
    # nothing moved: every target is read, as without ``moved``
    flat, some = np.zeros(50), np.r_[np.zeros(49), 3.0]
    for y in (flat, some):
        with_mask = fit_variance_scale(y, flat, np.ones(50), criterion="coverage", moved=moved_targets(flat))
        assert with_mask == fit_variance_scale(y, flat, np.ones(50), criterion="coverage")


@pytest.mark.parametrize("call, message", [
    (lambda: fit_variance_scale([1.0], [0.0], [1.0], criterion="pit"), "criterion must be"),
    (lambda: crps([1.0, 2.0], [0.0], [1.0, 1.0]), "same shape"),
    (lambda: crps([1.0], [0.0], [0.0]), "std must be positive"),
    (lambda: crps([np.nan], [0.0], [1.0]), "y contains NaN"),
    (lambda: interval_coverage([1.0], [0.0], [1.0], df=2.0), "df must be"),
    (lambda: central_quantile(1.0), "level must be in"),
    (lambda: calibration_error([1.0], [0.0], [1.0], n_levels=0), "n_levels"),
    (lambda: predictive_nll([], [], []), "y is empty"),
    (lambda: fit_variance_scale([1.0, 2.0], [0.0, 0.0], [1.0, 1.0], moved=[1, 1]), "moved must be a boolean array"),
    (lambda: fit_shape_and_scale([1.0, 2.0], [0.0, 0.0], [1.0, 1.0], moved=np.ones(3, bool)), "targets' shape"),
])
def test_bad_inputs_raise(call, message):
    with pytest.raises(ValueError, match=message):
        call()
