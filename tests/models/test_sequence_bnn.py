"""SequenceBNN against known truths: a market whose volatility is a slow AR(1) of its log-variance (the last bar
alone says little of it, the last 24 bars say much more) and a market of i.i.d. returns (nothing to find); and the
model conventions: checkpoint round trip, a seed's fit independent of the caller's random state, which it leaves
alone, windows given flat or 3-D, a row's value independent of its batch."""
import doctest
import pickle
import random

import numpy as np
import pytest
import torch

from btdensity.indicators.trailing import trailing_windows
from btdensity.models import BayesianNN, SequenceBNN, sequence_bnn

L = 24                                                   # bars a window of the sequence model holds
N_FIT, N_VAL, N_TEST = 1000, 500, 2000
SEQ = dict(seq_len=L, hidden=8, kl_warmup=10)
FF = dict(hidden=(16,), likelihood="studentt", kl_warmup=10)
FIT = dict(epochs=60, patience=20, batch_size=256, lr=5e-3)


def stochastic_volatility(n, seed, phi=0.99, sd_h=1.2):
    """Returns ``0.01 exp(h_t / 2) e_t`` with ``h_t = phi h_{t-1} + eta_t`` of stationary std ``sd_h`` (half-life of
    a volatility shock: 69 bars), Gaussian ``e_t``; also the true volatility of each return."""
    rng = np.random.default_rng(seed)
    eta = rng.normal(size=n) * sd_h * np.sqrt(1 - phi ** 2)
    h = np.empty(n)
    h[0] = rng.normal() * sd_h
    for t in range(1, n):
        h[t] = phi * h[t - 1] + eta[t]
    vol = 0.01 * np.exp(h / 2)
    return vol * rng.normal(size=n), vol


def iid_t(n, seed):
    """I.i.d. Student-t(5) returns of standard deviation 1 %."""
    return 0.01 * np.random.default_rng(seed).standard_t(5, n) * np.sqrt(3 / 5)


def bar_features(r):
    """What each model sees of bar t: its return and its log absolute return (scaled)."""
    return np.column_stack([r / 0.01, np.log(np.abs(r) / 0.01 + 1e-3)])


def split(r):
    """Feature rows (feed-forward), windows of the last L rows (sequence), next-bar returns; fit / val / test rows."""
    F = bar_features(r)
    W = np.stack([trailing_windows(F[:, j], L) for j in range(F.shape[1])], axis=2)
    y = np.r_[r[1:], np.nan]
    rows = np.arange(L, len(r) - 1)
    parts = rows[:N_FIT], rows[N_FIT:N_FIT + N_VAL], rows[N_FIT + N_VAL:N_FIT + N_VAL + N_TEST]
    return F, W, y, parts


def pinball(y, pred):
    """Mean of the 5 % pinball loss of ``pred.lower`` and the 95 % one of ``pred.upper`` (90 % central interval)."""
    def loss(q, tau):
        d = y - q
        return np.mean(np.maximum(tau * d, (tau - 1) * d))
    return 0.5 * (loss(pred.lower, 0.05) + loss(pred.upper, 0.95))


def out_of_sample_losses(r):
    F, W, y, (fit, val, test) = split(r)
    ff = BayesianNN(2, **FF).fit(F[fit], y[fit], F[val], y[val], **FIT)
    seq = SequenceBNN(2, **SEQ).fit(W[fit], y[fit], W[val], y[val], **FIT)
    return pinball(y[test], ff.predict(F[test], level=0.9)), pinball(y[test], seq.predict(W[test], level=0.9))


def test_sequence_model_beats_the_feed_forward_bnn_under_long_memory():
    r, vol = stochastic_volatility(N_FIT + N_VAL + N_TEST + L + 1, seed=0)
    ff, seq = out_of_sample_losses(r)
    # measured on six paths (seeds 0-5): sequence / feed-forward 0.68-0.89 (this one 0.885); the oracle that knows
    # each next bar's true volatility scores 0.54-0.81 of the feed-forward model (this path: 0.77)
    assert seq < 0.95 * ff, (seq, ff)


def test_sequence_model_is_no_worse_on_iid_returns():
    ff, seq = out_of_sample_losses(iid_t(N_FIT + N_VAL + N_TEST + L + 1, seed=0))
    # nothing to find in the past: both should give the unconditional quantiles. Measured on six paths: sequence /
    # feed-forward 0.991-1.006 (this one 0.997)
    assert seq <= 1.02 * ff, (seq, ff)


# ---------------------------------------------------------------------------------------------------- conventions
@pytest.fixture(scope="module")
def small():
    r, _ = stochastic_volatility(400, seed=3)
    _, W, y, _ = split(r)
    rows = np.arange(L, 399)
    return W[rows, -6:].reshape(len(rows), 12), y[rows]


def make(seed=0, **kwargs):
    return SequenceBNN(2, seq_len=6, hidden=4, kl_warmup=2, n_draws=16, seed=seed, **kwargs)


def _global_state():
    return (torch.get_rng_state().numpy().tobytes(), pickle.dumps(np.random.get_state()), random.getstate())


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_save_load_gives_identical_predictions(small, tmp_path, cell):
    X, y = small
    model = make(cell=cell, likelihood="gaussian").fit(X, y, epochs=5)
    model.save(tmp_path / "seq.pt")
    loaded = SequenceBNN.load(tmp_path / "seq.pt")
    assert loaded.get_config() == model.get_config() and loaded.variance_scale_ == model.variance_scale_
    for a, b in zip(model.predict(X, n_samples=16), loaded.predict(X, n_samples=16)):
        np.testing.assert_array_equal(a, b)


def test_fit_leaves_the_global_random_state_alone_and_a_seed_fixes_the_fit(small, tmp_path):
    X, y = small
    torch.manual_seed(1234)
    np.random.seed(1234)
    random.seed(1234)
    before = _global_state()
    first = make(seed=7).fit(X, y, epochs=5)
    assert _global_state() == before
    first.save(tmp_path / "seq.pt")
    SequenceBNN.load(tmp_path / "seq.pt")
    assert _global_state() == before
    torch.rand(5)
    np.random.rand(5)
    second = make(seed=7).fit(X, y, epochs=5)
    for a, b in zip(first.predict(X, n_samples=16), second.predict(X, n_samples=16)):
        np.testing.assert_array_equal(a, b)
    other = make(seed=8).fit(X, y, epochs=5)
    assert not np.array_equal(first.predict(X, n_samples=16).mean, other.predict(X, n_samples=16).mean)


def test_windows_flat_or_3d_and_a_row_independent_of_its_batch(small):
    X, y = small
    model = make().fit(X, y, epochs=5).double()
    flat = model.predict(X, n_samples=16)
    np.testing.assert_array_equal(flat.mean, model.predict(X.reshape(len(X), 6, 2), n_samples=16).mean)
    for i in (0, 17, len(X) - 1):
        one = model.predict(X[i:i + 1], n_samples=16)
        np.testing.assert_allclose([one.mean[0], one.std[0]], [flat.mean[i], flat.std[i]], rtol=1e-12, atol=0)
    assert np.all((flat.lower < flat.mean) & (flat.mean < flat.upper))
    np.testing.assert_allclose(flat.std ** 2, flat.epistemic ** 2 + flat.aleatoric ** 2, rtol=1e-12)


def test_warm_start_continues_from_the_previous_fit(small):
    X, y = small
    previous = make().fit(X, y, epochs=5)
    warm = make().warm_start(previous).fit(X, y, epochs=2)
    assert warm.warm_started_ and not make().fit(X, y, epochs=5).warm_started_


@pytest.mark.parametrize("kwargs, message", [
    ({"seq_len": 0}, "seq_len must be a positive integer"),
    ({"hidden": 2.5}, "hidden must be a positive integer"),
    ({"cell": "rnn"}, "cell must be one of"),
    ({"likelihood": "laplace"}, "likelihood must be one of"),
    ({"df": 2.0}, "df must be > 2"),
])
def test_bad_config_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SequenceBNN(2, **{"seq_len": 6, **kwargs})


def test_bad_windows_are_named(small):
    X, y = small
    model = make()
    with pytest.raises(ValueError, match=r"X must have shape \(n, 6, 2\) or \(n, 12\)"):
        model.fit(X[:, :10], y)
    bad = X.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit(bad, y)
    with pytest.raises(RuntimeError, match="not fitted"):
        model.predict(X)


def test_doctests():
    assert doctest.testmod(sequence_bnn).failed == 0
