"""Parallel walk-forward fits (worker processes) give the lines of serial fits, bit for bit, with and without warm
start; a worker that is killed, dies while writing, or raises leaves no half-written file in the model cache."""
import os
import threading
import time
from pathlib import Path

import backtrader as bt
import numpy as np
import pytest
import torch

from btdensity.feeds import DataFrameFeed, synthetic_market
from btdensity.indicators import BNNUncertainty, Energy, LogDensity, Regime, ScoreDirection
from btdensity.indicators import parallel_fits
from btdensity.indicators.walkforward import FitCache
from btdensity.models import EnergyModel

from .conftest import DAY_SCALE_FEATURES

SMALL = dict(train_bars=240, retrain_every=200, quiet=True)
MODELS = {
    Energy: dict(model_kwargs={"hidden": (16, 16)}, fit_kwargs={"epochs": 6}),
    LogDensity: dict(model_kwargs={"n_layers": 2, "hidden": 16}, fit_kwargs={"epochs": 6}),
    # consistency_bars=1: every line has a value from the first fit on (consistency and score_var need that many bars)
    ScoreDirection: dict(model_kwargs={"hidden": 16}, fit_kwargs={"epochs": 6}, consistency_bars=1),
    BNNUncertainty: dict(model_kwargs={"hidden": (8,), "kl_warmup": 2}, fit_kwargs={"epochs": 6}, n_samples=16,
                         scale_features=DAY_SCALE_FEATURES),
    Regime: dict(horizon=6, model_kwargs={"hidden": (16,)}, fit_kwargs={"epochs": 6}),
}


class Holder(bt.Strategy):
    params = (("makers", ()),)

    def __init__(self):
        self.inds = [make(self.data) for make in self.p.makers]


def run(df, makers, runonce=True):
    """The lines of the indicators ``makers`` build on one feed (one array per indicator), and the indicators."""
    FitCache.forget()
    cerebro = bt.Cerebro(stdstats=False, runonce=runonce)
    cerebro.adddata(DataFrameFeed(dataname=df))
    cerebro.addstrategy(Holder, makers=tuple(makers))
    inds = cerebro.run()[0].inds
    n = len(df)
    return [np.column_stack([np.asarray(line.array, dtype=float)[:n] for line in ind.lines]) for ind in inds], inds


def models(**overrides):
    return [lambda data, cls=cls, kw=kw: cls(data, **{**SMALL, **kw, **overrides}) for cls, kw in MODELS.items()]


@pytest.fixture(scope="module")
def hours():
    return synthetic_market(900, seed=5)


@pytest.fixture(autouse=True)
def fresh_pool():
    yield
    parallel_fits.shutdown_pool()


@pytest.mark.parametrize("warm_start", [False, True])
def test_parallel_and_serial_give_identical_lines(hours, tmp_path, warm_start):
    serial, inds = run(hours, models(n_jobs=1, warm_start=warm_start, cache_dir=None))
    pool = parallel_fits.get_pool(2).start()
    parallel, pinds = run(hours, models(n_jobs=2, warm_start=warm_start, cache_dir=None))
    assert pool.worker_fits > 0                                       # some fits ran in the worker process
    cached, cinds = run(hours, models(n_jobs=2, warm_start=warm_start, cache_dir=tmp_path))
    for s, p, c, ind, pind, cind in zip(serial, parallel, cached, inds, pinds, cinds):
        name = type(ind).__name__
        assert np.isfinite(s[ind.spec.first_fit:]).all(), name
        np.testing.assert_array_equal(p, s, err_msg=name)            # exactly: the same float32 fits
        np.testing.assert_array_equal(c, s, err_msg=name)
        assert ind.n_fits == pind.n_fits == cind.n_fits == 4, name    # every window fitted once, counted once
        assert pind._queued and not ind._queued                       # the parallel run did use the pool
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 20 and all(f.endswith(".pt") and not f.startswith(".") for f in files)
    again, ainds = run(hours, models(n_jobs=2, warm_start=warm_start, cache_dir=tmp_path))
    assert [ind.n_fits for ind in ainds] == [0] * 5
    assert all(np.array_equal(a, s, equal_nan=True) for a, s in zip(again, serial))


def test_no_cache_folder_leaves_no_files(hours):
    run(hours, models(n_jobs=2, warm_start=True, cache_dir=None)[:2])
    folder = parallel_fits.get_pool(2)._tmp
    assert folder is None or not any(Path(folder).iterdir())       # temporary models are removed once read


def test_warm_start_chains_keys_and_keeps_the_first_window(hours, tmp_path):
    cold, (c,) = run(hours, models(n_jobs=1, warm_start=False, cache_dir=None)[:1])
    warm, (w,) = run(hours, models(n_jobs=1, warm_start=True, cache_dir=None)[:1])
    assert c._windows[0].key == w._windows[0].key                    # the first fit has nothing to start from
    assert all(c._windows[k].key != w._windows[k].key for k in (1, 2, 3))
    assert w._windows[2].warm_from is w._windows[1] and c._windows[2].warm_from is None
    second = w.spec.fit_bar(1)
    np.testing.assert_array_equal(warm[0][:second], cold[0][:second])
    assert not np.allclose(warm[0][second:], cold[0][second:])


@pytest.mark.parametrize("cls", [Energy, BNNUncertainty])
def test_warm_start_keeps_the_contract(hours, tmp_path, cls):
    """Truncation invariance and mode parity hold for a warm-started chain (each fit's key holds its predecessor's)."""
    make = [lambda data: cls(data, **{**SMALL, **MODELS[cls], "warm_start": True, "cache_dir": tmp_path})]
    (full,), (ind,) = run(hours, make)
    m = ind.spec.fit_bar(2) + 1
    (cut,), _ = run(hours.iloc[:m], make)
    np.testing.assert_array_equal(cut, full[:m])
    (bar_by_bar,), (ind2,) = run(hours, [lambda data: cls(data, **{**SMALL, **MODELS[cls], "warm_start": True,
                                                                   "cache_dir": None})], runonce=False)
    assert ind2.n_fits == 4
    np.testing.assert_allclose(bar_by_bar, full, rtol=1e-10, atol=1e-10)


class SlowEnergy(Energy):
    """An Energy whose fits in a worker process first leave a marker file, then wait to be killed."""

    params = (("marker", ""),)

    def fit_model(self, model, X, y, X_val, y_val):
        if os.environ.get("BTDENSITY_JOBS") == "1" and self.p.marker:   # in a fit worker only
            Path(self.p.marker).touch()
            time.sleep(60)
        super().fit_model(model, X, y, X_val, y_val)


class DiesWhileSaving(Energy):
    """An Energy whose workers die half-way through writing the checkpoint."""

    params = (("die", False),)

    def fit_model(self, model, X, y, X_val, y_val):
        super().fit_model(model, X, y, X_val, y_val)
        if os.environ.get("BTDENSITY_JOBS") == "1" and self.p.die:
            def half_written(obj, path, *args, **kwargs):
                with open(path, "wb") as f:
                    f.write(b"PK\x03\x04 half a checkpoint")
                os._exit(9)

            torch.save = half_written   # the save that follows this fit (in this worker) dies mid-file


class RaisesInWorker(Energy):
    params = (("fail", False),)

    def fit_model(self, model, X, y, X_val, y_val):
        if os.environ.get("BTDENSITY_JOBS") == "1" and self.p.fail:
            raise FloatingPointError("Energy at epoch 3: the training loss became nan")
        super().fit_model(model, X, y, X_val, y_val)


def energy_like(cls, folder, **params):
    return [lambda data: cls(data, **{**SMALL, **MODELS[Energy], "warm_start": False, "cache_dir": folder,
                                      **params})]


def assert_whole_cache(folder, cls, n):
    """``folder`` holds ``n`` checkpoints of ``cls`` under their final names, each whole, and nothing else."""
    names = sorted(p.name for p in Path(folder).iterdir())
    assert len(names) == n and all(name.startswith(cls.__name__ + "-") and name.endswith(".pt") for name in names)
    assert all(EnergyModel.load(Path(folder) / name).is_fitted for name in names)


def test_a_killed_worker_leaves_no_half_written_cache_file(hours, tmp_path, monkeypatch):
    monkeypatch.delenv("BTDENSITY_JOBS", raising=False)
    marker = tmp_path / "fitting"
    (expected,), _ = run(hours, energy_like(SlowEnergy, tmp_path / "serial", n_jobs=1))
    pool = parallel_fits.get_pool(2).start()       # the worker is up: it takes the first fit, not this process
    assert len(pool.worker_pids) == 1

    def kill_when_fitting():
        deadline = time.time() + 120
        while not marker.exists() and time.time() < deadline:
            time.sleep(0.05)
        for pid in pool.worker_pids:
            os.kill(pid, 9)

    killer = threading.Thread(target=kill_when_fitting)
    killer.start()
    (lines,), (ind,) = run(hours, energy_like(SlowEnergy, tmp_path / "cache", n_jobs=2, marker=str(marker)))
    killer.join()
    assert marker.exists()                                           # the worker was killed inside a fit
    np.testing.assert_array_equal(lines, expected)                   # its fit was done again, here
    assert ind.n_fits == 4
    assert_whole_cache(tmp_path / "cache", SlowEnergy, 4)


def test_a_worker_dying_while_writing_leaves_no_partial_file(hours, tmp_path, monkeypatch):
    monkeypatch.delenv("BTDENSITY_JOBS", raising=False)
    (expected,), _ = run(hours, energy_like(DiesWhileSaving, tmp_path / "serial", n_jobs=1, die=True))
    parallel_fits.get_pool(2).start()
    (lines,), _ = run(hours, energy_like(DiesWhileSaving, tmp_path / "cache", n_jobs=2, die=True))
    np.testing.assert_array_equal(lines, expected)
    assert_whole_cache(tmp_path / "cache", DiesWhileSaving, 4)        # no .tmp left by the dead workers


def test_a_fit_that_raises_in_a_worker_raises_here(hours, tmp_path, monkeypatch):
    monkeypatch.delenv("BTDENSITY_JOBS", raising=False)
    parallel_fits.get_pool(2).start()             # the worker takes the first fit, which the evaluation waits for
    with pytest.raises(FloatingPointError, match="the training loss became nan"):
        run(hours, energy_like(RaisesInWorker, tmp_path / "cache", n_jobs=2, fail=True))
    folder = tmp_path / "cache"
    assert not folder.exists() or all(not p.name.startswith(".") for p in folder.iterdir())
    (lines,), _ = run(hours, energy_like(RaisesInWorker, tmp_path / "cache", n_jobs=2))   # the pool still works
    assert np.isfinite(lines[-1]).all()
