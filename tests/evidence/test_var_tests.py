"""VaR backtests on scripted exceedance sequences, with the arithmetic written out, and their size on i.i.d.
Bernoulli sequences at the nominal rate."""
import math

import numpy as np
import pytest
from scipy import stats

from btdensity.evidence.rows import InsufficientData
from btdensity.evidence.var_tests import (_transition_counts, christoffersen_conditional_coverage,
                                          christoffersen_independence, kupiec_pof)

N = 250


def _sequence(hits):
    e = np.zeros(N)
    e[list(hits)] = 1.0
    return e


CLUSTERED = _sequence(range(100, 105))            # five exceedances on consecutive bars
SCATTERED = _sequence([40, 90, 140, 190, 240])    # five exceedances, never two in a row


def test_kupiec_five_exceedances_in_250_at_99():
    # x = 5, n = 250, p = 0.01, pi = 5 / 250 = 0.02
    # LR = -2 [245 log 0.99 + 5 log 0.01 - 245 log 0.98 - 5 log 0.02]
    #    = 2 [245 log(0.98 / 0.99) + 5 log 2] = 2 [245 (-0.0101524) + 3.4657359] = 1.9568098
    expected = 2 * (245 * math.log(0.98 / 0.99) + 5 * math.log(2.0))
    assert expected == pytest.approx(1.9568098, abs=1e-6)
    lr, p = kupiec_pof(SCATTERED, 0.99)
    assert lr == pytest.approx(expected, rel=1e-12)
    assert p == pytest.approx(stats.chi2.sf(expected, 1), rel=1e-12)
    assert p == pytest.approx(0.16186, abs=1e-5)    # 5 in 250 is not rejected at 5 %
    # the order of the exceedances does not matter to unconditional coverage
    assert kupiec_pof(CLUSTERED, 0.99).statistic == pytest.approx(lr, rel=1e-12)


def test_kupiec_no_exceedance_uses_zero_log_zero():
    # x = 0: the terms x log p and x log pi vanish (0 log 0 = 0), pi = 0 makes (n - x) log(1 - pi) = 0
    # LR = -2 * 250 * log(0.99) = 5.0251679
    lr, p = kupiec_pof(np.zeros(N), 0.99)
    assert lr == pytest.approx(-2 * N * math.log(0.99), rel=1e-12)
    assert lr == pytest.approx(5.0251679, abs=1e-6)
    assert p < 0.05                                    # 0 in 250 at 1 % is (just) rejected


def test_kupiec_rejects_too_many_exceedances():
    # 15 in 250 at 1 %: 2 [235 log((235/250) / 0.99) + 15 log((15/250) / 0.01)] = 2 [-12.1789 + 26.8764]
    lr, p = kupiec_pof(_sequence(range(0, 250, 17)[:15]), 0.99)
    assert lr == pytest.approx(2 * (235 * math.log(0.94 / 0.99) + 15 * math.log(6.0)), rel=1e-12)
    assert p < 1e-5


def test_transition_counts_and_gaps():
    assert _transition_counts(CLUSTERED) == (243.0, 1.0, 1.0, 4.0)   # 249 pairs: 99->100, 100..103->next, 104->105
    assert _transition_counts(SCATTERED) == (239.0, 5.0, 5.0, 0.0)
    # a NaN bar (no forecast) breaks the pairs around it instead of joining its neighbours
    assert _transition_counts([1, np.nan, 1, 1, 0]) == (0.0, 0.0, 1.0, 1.0)


def test_independence_clustered_sequence():
    # n00 = 243, n01 = 1, n10 = 1, n11 = 4; pi01 = 1/244, pi11 = 4/5, pi = 5/249
    # log L(pi) = 244 log(244/249) + 5 log(5/249) = -4.94937 - 19.54006 = -24.48943
    # log L(pi01, pi11) = 243 log(243/244) + log(1/244) + log(1/5) + 4 log(4/5)
    #                   = -0.99795 - 5.49717 - 1.60944 - 0.89257 = -8.99713
    # LR = -2 (-24.48943 + 8.99713) = 30.9846
    restricted = 244 * math.log(244 / 249) + 5 * math.log(5 / 249)
    markov = 243 * math.log(243 / 244) + math.log(1 / 244) + math.log(1 / 5) + 4 * math.log(4 / 5)
    lr, p = christoffersen_independence(CLUSTERED)
    assert lr == pytest.approx(-2 * (restricted - markov), rel=1e-12)
    assert lr == pytest.approx(30.9848, abs=1e-3)
    assert p < 1e-6


def test_independence_scattered_sequence_zero_pair_11():
    # n00 = 239, n01 = 5, n10 = 5, n11 = 0: pi11 = 0, so 5 log(1 - 0) + 0 log 0 = 0
    # log L(pi01, pi11) = 239 log(239/244) + 5 log(5/244) = -4.94852 - 19.43865 = -24.38717
    # LR = -2 (-24.48943 + 24.38717) = 0.2049
    restricted = 244 * math.log(244 / 249) + 5 * math.log(5 / 249)
    markov = 239 * math.log(239 / 244) + 5 * math.log(5 / 244)
    lr, p = christoffersen_independence(SCATTERED)
    assert lr == pytest.approx(-2 * (restricted - markov), rel=1e-12)
    assert lr == pytest.approx(0.2049, abs=1e-4)
    assert p > 0.5


def test_independence_without_exceedances_is_zero():
    assert christoffersen_independence(np.zeros(N)) == (0.0, 1.0)


def test_conditional_coverage_is_the_sum_with_two_dof():
    for seq in (CLUSTERED, SCATTERED, np.zeros(N)):
        total = kupiec_pof(seq, 0.99).statistic + christoffersen_independence(seq).statistic
        lr, p = christoffersen_conditional_coverage(seq, 0.99)
        assert lr == pytest.approx(total, rel=1e-12)
        assert p == pytest.approx(stats.chi2.sf(total, 2), rel=1e-12)
    # clustering is caught by the joint test although the count alone passes
    assert kupiec_pof(CLUSTERED, 0.99).pvalue > 0.1 > 1e-6 > christoffersen_conditional_coverage(CLUSTERED, 0.99).pvalue


def _pvalues(rate, level, seeds=300, n=1000):
    out = []
    for seed in range(seeds):
        e = (np.random.default_rng(seed).random(n) < rate).astype(float)
        out.append([kupiec_pof(e, level).pvalue, christoffersen_independence(e).pvalue,
                    christoffersen_conditional_coverage(e, level).pvalue])
    return np.array(out)


def test_pvalues_roughly_uniform_at_the_nominal_rate():
    """i.i.d. Bernoulli(0.05) judged at the 95 % level: the null holds for all three tests, so the p-values are
    roughly uniform (discrete, hence loose bounds): mean near 1/2, about 5 % below 0.05, half below 1/2."""
    p = _pvalues(0.05, 0.95)
    assert np.all(np.abs(p.mean(axis=0) - 0.5) < 0.07)
    assert np.all((p < 0.05).mean(axis=0) < 0.11) and np.all((p < 0.05).mean(axis=0) > 0.01)
    assert np.all(np.abs((p < 0.5).mean(axis=0) - 0.5) < 0.1)


def test_wrong_rate_is_rejected():
    """Bernoulli(0.08) judged at 95 %: the coverage tests reject most samples, independence still holds."""
    p = _pvalues(0.08, 0.95, seeds=100)
    assert (p[:, 0] < 0.05).mean() > 0.9 and (p[:, 2] < 0.05).mean() > 0.8
    assert (p[:, 1] < 0.05).mean() < 0.15


def test_nan_rows_and_bad_input():
    with_gap = np.concatenate([[np.nan] * 20, SCATTERED])
    assert kupiec_pof(with_gap, 0.99) == kupiec_pof(SCATTERED, 0.99)
    assert christoffersen_independence(with_gap) == christoffersen_independence(SCATTERED)
    with pytest.raises(ValueError, match="confidence level"):
        kupiec_pof(SCATTERED, 0.01)
    with pytest.raises(ValueError, match="0 / 1"):
        kupiec_pof([0, 2, 1], 0.99)
    with pytest.raises(InsufficientData):
        kupiec_pof([np.nan, np.nan], 0.99)
    with pytest.raises(InsufficientData):
        christoffersen_independence([1, np.nan, 0, np.nan])
