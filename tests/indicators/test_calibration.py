"""Tail p-values against a sorted reference equal brute-force counts, ties included."""
import numpy as np

from btdensity.indicators.calibration import lower_tail_pvalue, sorted_reference, upper_tail_pvalue


def test_tail_pvalues_equal_brute_force_counts():
    rng = np.random.default_rng(5)
    values = np.round(rng.normal(size=300), 1)             # rounded: many ties
    x = np.r_[np.round(rng.normal(size=200), 1), values[:20], -9.0, 9.0]
    ref = sorted_reference(values)
    assert not ref.flags.writeable and np.all(np.diff(ref) >= 0)
    n = values.size
    upper = np.array([(1 + (values >= v).sum()) / (1 + n) for v in x])
    lower = np.array([(1 + (values <= v).sum()) / (1 + n) for v in x])
    np.testing.assert_array_equal(upper_tail_pvalue(ref, x), upper)
    np.testing.assert_array_equal(lower_tail_pvalue(ref, x), lower)
