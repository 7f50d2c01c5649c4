"""Deflated Sharpe ratio and probability of backtest overfitting against known truths: hand-computed values
on given moments, a brute-force CSCV, constructed return matrices whose PBO is 0 or 1, and synthetic
sweeps of skill-less trials (PBO near 0.5 or above, DSR of the best well below 0.95) and of such trials plus
one with a real drift (PBO near 0, its DSR above 0.95)."""
import itertools
import math

import numpy as np
import pytest

from btdensity.sweeps.overfitting import (cscv_blocks, deflated_sharpe_ratio, expected_max_sharpe,
                                          probabilistic_sharpe_ratio, probability_of_backtest_overfitting,
                                          return_moments, sharpe_ratios)


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def test_dsr_matches_the_hand_computed_example_of_bailey_and_lopez_de_prado():
    # The paper's example: 100 trials, annualised Sharpe ratios with variance 1/2, the best 2.5, five years of
    # daily returns (T = 1250, 250 a year), skewness -3, kurtosis 10. Per day:
    sr = 2.5 / math.sqrt(250)                      # 0.158113883
    var = 0.5 / 250                                # 0.002
    # SR* = sqrt(V) * ((1 - g) * inv_phi(1 - 1/100) + g * inv_phi(1 - 1/(100 e))), g = 0.5772156649
    #     = 0.0447213595 * (0.4227843351 * 2.3263478740 + 0.5772156649 * 2.6802104450)
    #     = 0.0447213595 * 2.5306028932 = 0.1131720019
    sr_star = math.sqrt(0.002) * (0.4227843351 * 2.3263478740 + 0.5772156649 * 2.6802104450)
    assert sr_star == pytest.approx(0.1131720019, abs=1e-9)
    assert expected_max_sharpe(100, var) == pytest.approx(sr_star, rel=1e-9)
    # denominator 1 - (-3) * 0.1581138830 + (10 - 1) / 4 * 0.1581138830**2 = 1.5305916490
    # z = (0.1581138830 - 0.1131720019) * sqrt(1249) / sqrt(1.5305916490) = 1.2838160
    z = (0.1581138830 - 0.1131720019) * math.sqrt(1249) / math.sqrt(1.5305916490)
    assert z == pytest.approx(1.2838160, abs=1e-6)
    assert _phi(z) == pytest.approx(0.9004, abs=1e-4)                   # the paper's 0.9004
    assert deflated_sharpe_ratio(sr, var, 100, 1250, -3.0, 10.0) == pytest.approx(_phi(z), abs=1e-8)


def test_psr_and_expected_maximum_on_simple_moments():
    # normal returns, benchmark 0: PSR = phi(SR sqrt(T - 1) / sqrt(1 + SR^2 / 2))
    # SR 0.1, T 101: 0.1 * 10 / sqrt(1.005) = 0.9975093; phi(0.9975093) = 0.8407413
    assert probabilistic_sharpe_ratio(0.1, 0.0, 101) == pytest.approx(0.8407413, abs=1e-7)
    # skewness 1 and kurtosis 7 at SR 0.2, T 26, benchmark 0.05: denominator 1 - 0.2 + 6 / 4 * 0.04 = 0.86
    # z = 0.15 * 5 / sqrt(0.86) = 0.8087458; phi(z) = 0.7906693
    assert probabilistic_sharpe_ratio(0.2, 0.05, 26, 1.0, 7.0) == pytest.approx(0.7906693, abs=1e-7)
    # one trial: nothing was selected, the DSR is the PSR against 0
    assert expected_max_sharpe(1, 0.3) == 0.0
    assert deflated_sharpe_ratio(0.1, 0.3, 1, 101) == pytest.approx(0.8407413, abs=1e-7)
    # two trials, V = 0.04: 0.2 * (0.4227843 * 0 + 0.5772157 * inv_phi(1 - 1/(2e)) = 0.9004525) = 0.1039531
    assert expected_max_sharpe(2, 0.04) == pytest.approx(0.2 * 0.5772156649 * 0.9004525, abs=1e-6)
    assert math.isnan(probabilistic_sharpe_ratio(0.1, 0.0, 1))


def test_moments_and_sharpe_ratios_by_hand():
    r = np.array([1.0, 2.0, 3.0, 10.0])
    # mean 4; deviations -3 -2 -1 6; m2 = 50/4 = 12.5, m3 = 180/4 = 45, m4 = 1394/4 = 348.5
    skew, kurt = return_moments(r)
    assert skew == pytest.approx(45 / 12.5 ** 1.5)
    assert kurt == pytest.approx(348.5 / 12.5 ** 2)
    assert return_moments(np.zeros(5)) == (0.0, 3.0)
    # Sharpe with ddof=1: mean 4, std sqrt(50 / 3)
    m = np.column_stack([r, np.zeros(4), -r])
    assert sharpe_ratios(m) == pytest.approx([4 / math.sqrt(50 / 3), 0.0, -4 / math.sqrt(50 / 3)])


def _pbo_by_loops(r: np.ndarray, s: int) -> float:
    """CSCV the slow way: for every split, concatenate the blocks, Sharpe ratio per trial, rank."""
    blocks = np.array_split(np.arange(len(r)), s)
    n, below = r.shape[1], 0
    splits = list(itertools.combinations(range(s), s // 2))
    for chosen in splits:
        ins = np.concatenate([blocks[b] for b in chosen])
        oos = np.concatenate([blocks[b] for b in range(s) if b not in chosen])
        sr_in = [r[ins, j].mean() / r[ins, j].std(ddof=1) for j in range(n)]
        sr_out = [r[oos, j].mean() / r[oos, j].std(ddof=1) for j in range(n)]
        best = int(np.argmax(sr_in))
        rank = 1 + sum(x < sr_out[best] for x in sr_out) + (sum(x == sr_out[best] for x in sr_out) - 1) / 2
        omega = rank / (n + 1)
        below += math.log(omega / (1 - omega)) <= 0
    return below / len(splits)


@pytest.mark.parametrize("seed", [0, 1])
def test_vectorised_cscv_equals_the_loops(seed):
    r = np.random.default_rng(seed).normal(0.0, 0.01, (103, 7))   # 103 = uneven blocks
    for s in (4, 6):
        got = probability_of_backtest_overfitting(r, n_blocks=s)
        assert got.n_splits == math.comb(s, s // 2) == len(got.logits)
        assert got.pbo == pytest.approx(_pbo_by_loops(r, s), abs=1e-12)
    small_chunks = probability_of_backtest_overfitting(r, max_cells=10)
    assert np.array_equal(small_chunks.logits, probability_of_backtest_overfitting(r).logits)


def test_pbo_is_one_when_the_in_sample_winner_always_loses_and_zero_when_it_always_wins():
    x = np.array([1.0, 2.0, 4.0, -7.0, 0.5, 1.5, 3.0, -5.0])      # sums to 0, no half sums to 0
    mirror = np.column_stack([x, -x])        # whichever wins in sample has the opposite sign out of sample
    assert probability_of_backtest_overfitting(mirror, n_blocks=4).pbo == 1.0
    dominant = np.column_stack([x + 100.0 + np.arange(8) % 2, x, -x])   # best in every half
    res = probability_of_backtest_overfitting(dominant, n_blocks=4)
    assert res.pbo == 0.0 and res.logits == pytest.approx(np.full(6, math.log(3.0)))


def test_block_count_follows_the_sample_length():
    assert cscv_blocks(365) == 16 and cscv_blocks(64) == 16
    assert cscv_blocks(40) == 10 and cscv_blocks(17) == 4
    assert cscv_blocks(15) == 0
    res = probability_of_backtest_overfitting(np.ones((10, 3)))
    assert math.isnan(res.pbo) and res.n_splits == 0
    assert math.isnan(probability_of_backtest_overfitting(np.ones((100, 1))).pbo)
    with pytest.raises(ValueError, match="even"):
        probability_of_backtest_overfitting(np.ones((100, 3)), n_blocks=5)


def _selection_figures(r: np.ndarray) -> tuple[float, float, int]:
    """DSR of the column with the best Sharpe ratio and the matrix's PBO, as the sweep computes them."""
    srs = sharpe_ratios(r)
    best = int(np.argmax(srs))
    skew, kurt = return_moments(r[:, best])
    dsr = deflated_sharpe_ratio(srs[best], float(np.var(srs, ddof=1)), r.shape[1], r.shape[0], skew, kurt)
    return dsr, probability_of_backtest_overfitting(r).pbo, best


def _trials(seed: int) -> np.ndarray:
    """100 skill-less trials, two years of fat-tailed (Student t, 4 df) daily returns of 1.4 % a day."""
    return np.random.default_rng(seed).standard_t(4, (730, 100)) * 0.01


def test_skill_less_trials_give_a_low_dsr_and_a_pbo_near_one_half():
    figures = [_selection_figures(_trials(seed)) for seed in range(8)]
    dsr, pbo = np.array([f[0] for f in figures]), np.array([f[1] for f in figures])
    assert dsr.max() < 0.9 and dsr.mean() < 0.75            # the best of 100 is no evidence of an edge
    assert pbo.mean() >= 0.45 and pbo.min() > 0.2            # the in-sample best is a coin flip out of sample


def test_a_planted_edge_gives_a_pbo_near_zero_and_a_dsr_above_095():
    for seed in range(8):
        r = _trials(seed)
        r[:, 7] += 5.0 / math.sqrt(365) * 0.01 * math.sqrt(2.0)    # a true annualised Sharpe ratio of 5
        dsr, pbo, best = _selection_figures(r)
        assert best == 7 and dsr > 0.95 and pbo < 0.05, (seed, dsr, pbo)
