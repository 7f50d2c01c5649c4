"""NaN means "no forecast": every score drops the rows where any input is NaN, and only those."""
import numpy as np
import pytest

from btdensity.evidence import rows
from btdensity.evidence.comparison import block_bootstrap_mean_diff, diebold_mariano
from btdensity.evidence.detection import auroc
from btdensity.evidence.direction import rank_ic, sign_agreement
from btdensity.evidence.regime import accuracy
from btdensity.evidence.scoring import (crps_gaussian, crps_student_t, interval_coverage, log_likelihood_per_dim,
                                        nll_gaussian, nll_student_t, pinball_loss)

RNG = np.random.default_rng(0)
N = 40
Y, MU = RNG.normal(size=N), RNG.normal(size=N)
SIGMA = RNG.uniform(0.5, 2.0, size=N)
LABEL = (np.arange(N) % 3 == 0).astype(float)
#: each score with its inputs (all one value a bar) as a tuple, and its fixed parameters
SCORES = {
    "log_likelihood_per_dim": (lambda a: log_likelihood_per_dim(a, 2), (MU,)),
    "pinball_loss": (lambda y, q: pinball_loss(y, q, 0.3), (Y, MU)),
    "interval_coverage": (interval_coverage, (Y, MU - SIGMA, MU + SIGMA)),
    "crps_gaussian": (crps_gaussian, (Y, MU, SIGMA)),
    "crps_student_t": (lambda y, m, s: crps_student_t(y, m, s, 4.0), (Y, MU, SIGMA)),
    "nll_gaussian": (nll_gaussian, (Y, MU, SIGMA)),
    "nll_student_t": (lambda y, m, s: nll_student_t(y, m, s, 4.0), (Y, MU, SIGMA)),
    "auroc": (auroc, (Y, LABEL)),
    "sign_agreement": (sign_agreement, (MU, Y)),
    "rank_ic": (rank_ic, (MU, Y)),
    "accuracy": (accuracy, (np.round(np.abs(MU)), np.round(np.abs(Y)))),
    "block_bootstrap_mean_diff": (block_bootstrap_mean_diff, (Y, MU)),
    "diebold_mariano": (diebold_mariano, (Y, MU)),
}


@pytest.mark.parametrize("name", sorted(SCORES))
def test_rows_with_a_nan_in_any_input_are_dropped(name):
    score, inputs = SCORES[name]
    missing = [(0, 3), (len(inputs) - 1, 17), (0, 30)]   # (which input, which row)
    with_gaps = [x.copy() for x in inputs]
    for which, row in missing:
        with_gaps[which][row] = np.nan
    kept = np.ones(N, dtype=bool)
    kept[[row for _, row in missing]] = False
    assert score(*with_gaps) == pytest.approx(score(*(x[kept] for x in inputs)), rel=1e-12)
    assert score(*with_gaps) != pytest.approx(score(*inputs), rel=1e-12)   # the dropped rows did count


def test_per_bar_values_stay_aligned_with_the_bars():
    y = Y.copy()
    y[[2, 5]] = np.nan
    per_bar = crps_gaussian(y, MU, SIGMA, per_bar=True)
    assert per_bar.shape == (N,) and np.isnan(per_bar[[2, 5]]).all()
    assert per_bar[0] == pytest.approx(crps_gaussian(Y[0], MU[0], SIGMA[0]))
    assert np.nanmean(per_bar) == pytest.approx(crps_gaussian(y, MU, SIGMA))


def test_complete_rows():
    keep, (a, b) = rows.complete_rows(a=[[1.0, np.nan], [2.0, 3.0], [4.0, 5.0]], b=[1.0, 2.0, None])
    assert keep.tolist() == [False, True, False] and a.tolist() == [[2.0, 3.0]] and b.tolist() == [2.0]
    keep, (c,) = rows.complete_rows(c=[-np.inf, 1.0])        # an infinite value is a value
    assert keep.all()
    with pytest.raises(ValueError, match="same number of rows"):
        rows.complete_rows(a=[1.0, 2.0], b=[1.0])
    with pytest.raises(rows.InsufficientData, match="at least 3"):
        rows.complete_rows(need=3, a=[1.0, np.nan, 2.0])
    assert issubclass(rows.InsufficientData, ValueError)
