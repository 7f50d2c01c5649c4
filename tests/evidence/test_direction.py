"""Direction scores: hand counts, scipy's Spearman correlation, and the size of the rank-IC t-test when both
series are autocorrelated (the HAC error holds it near 5 %, the i.i.d. error does not)."""
import numpy as np
import pytest
from scipy import stats
from scipy.signal import lfilter

from btdensity.evidence.direction import rank_ic, sign_agreement
from btdensity.evidence.hac import default_lags, long_run_variance
from btdensity.evidence.rows import InsufficientData


def _ar1(rng, n, phi):
    return lfilter([1.0], [1.0, -phi], rng.normal(size=n + 100))[100:]


def test_sign_agreement_hand_count():
    # rows: agree, disagree, (zero direction: skipped), agree, (zero return: skipped), (NaN: dropped)
    assert sign_agreement([1.0, 2.0, 0.0, -0.5, 1.0, 1.0], [0.3, -0.1, 0.2, -0.2, 0.0, np.nan]) == pytest.approx(2 / 3)
    with pytest.raises(InsufficientData):
        sign_agreement([0.0, 1.0], [1.0, 0.0])


def test_rank_ic_is_spearman_with_ties():
    rng = np.random.default_rng(0)
    d = rng.integers(0, 5, size=400).astype(float)            # a coarse signal: many ties
    r = 0.3 * d + rng.normal(size=400)
    d[:7] = np.nan
    result = rank_ic(d, r)
    assert result.ic == pytest.approx(stats.spearmanr(d[7:], r[7:]).statistic, rel=1e-12)
    assert result.n == 393 and result.lags == default_lags(393) == 5
    assert result.t == pytest.approx(result.ic / result.se)
    assert result.pvalue < 1e-6


def test_rank_ic_iid_error_by_hand():
    # ranks 1..5 and (1, 3, 2, 5, 4), centred and scaled by sqrt(2): products z = (2, 0, 0, 1, 1), mean 0.8;
    # var(z) = (1.44 + 0.64 + 0.64 + 0.04 + 0.04) / 5 = 0.56, se = sqrt(0.56 / 5) = 0.334664
    result = rank_ic([1.0, 2.0, 3.0, 4.0, 5.0], [0.1, 0.3, 0.2, 0.5, 0.4], lags=0)
    assert result.ic == pytest.approx(0.8)
    assert result.se == pytest.approx(np.sqrt(0.56 / 5))
    with pytest.raises(ValueError, match="constant"):
        rank_ic([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])


def test_newey_west_by_hand():
    x = np.array([1.0, 3.0, 2.0, 6.0])        # centred: -2, 0, -1, 3
    gamma0 = (4 + 0 + 1 + 9) / 4              # 3.5
    gamma1 = (0 * -2 + -1 * 0 + 3 * -1) / 4   # -0.75
    gamma2 = (-1 * -2 + 3 * 0) / 4            # 0.5
    assert long_run_variance(x, 0) == pytest.approx(gamma0)
    assert long_run_variance(x, 2) == pytest.approx(gamma0 + 2 * (2 / 3 * gamma1 + 1 / 3 * gamma2))
    assert long_run_variance(x, 2, kernel="uniform") == pytest.approx(gamma0 + 2 * (gamma1 + gamma2))
    assert default_lags(100) == 4 and default_lags(500) == 5


def test_rank_ic_t_test_size_under_autocorrelation():
    """Independent AR(1) signal and return (phi = 0.7 each): no predictive power, but the products of their
    ranks are autocorrelated (about 0.49 at lag 1). The i.i.d. error rejects at 5 % far too often (about a
    quarter of the time); the Newey–West error stays near the nominal 5 %."""
    hac, naive = [], []
    for seed in range(200):
        rng = np.random.default_rng(1000 + seed)
        d, r = _ar1(rng, 500, 0.7), _ar1(rng, 500, 0.7)
        hac.append(rank_ic(d, r).pvalue < 0.05)
        naive.append(rank_ic(d, r, lags=0).pvalue < 0.05)
    assert np.mean(hac) <= 0.12
    assert np.mean(naive) >= 0.18
