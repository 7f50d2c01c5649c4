"""Walk-forward fits in parallel: worker processes that fit models and write them to the model cache.

In a batched run (``once()``) every window's training rows are known before the first value is computed, so
the fits of all windows, of every indicator on a data feed, go to one :class:`FitPool` and the indicators then
evaluate their windows in order, each waiting only for the fits it needs. The pool runs ``n_jobs`` fits at once:
``n_jobs - 1`` worker processes, and the waiting process itself, which fits what is queued while it waits.

A worker is a fresh ``python`` (never a fork of this process, whose torch may hold threads; never a re-import of
the user's ``__main__`` script, as multiprocessing's spawn would do) with one torch thread. It receives a
:class:`FitTask` (the indicator's class and fit-relevant attributes, plain numpy arrays, where to write) and
returns only the path of the model it wrote atomically: models travel through files, never pickled. A task
runs the indicator's own ``make_model`` / ``fit_model`` on the same float32 rows with the same seed as a serial
fit, so the model is the same, bit for bit (serial fits with one torch thread, as tests and benchmarks run;
torch rounds its reductions differently with more threads). A warm-started task (``warm_from``) starts from
the previous window's model file, so the windows of one indicator then run one after the other.

A worker that dies (killed, out of memory) leaves no file under a cache name: checkpoints are written to a
temporary name and renamed when complete, and the pool removes the temporary files of a dead worker. Its task
is fitted again in this process. A task that raises raises the same error where its model is waited for.

The workers are local processes; a Ray cluster is not used for fits (sweeps spread whole backtests over one:
:mod:`btdensity.sweeps`).
"""
from __future__ import annotations

import atexit
import itertools
import logging
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FitJob", "FitPool", "FitTask", "WorkerDied", "get_pool", "run_task", "shutdown_pool"]

log = logging.getLogger(__name__)

#: how often in a row a pool starts a worker again after one died, before it leaves the rest to the waiting process
MAX_RESTARTS = 3
_HEADER = struct.Struct(">Q")


class WorkerDied(RuntimeError):
    """A fit worker process ended while it was fitting (killed, out of memory)."""


@dataclass
class FitTask:
    """One fit, as plain data: the indicator class (by module and name) and its fit-relevant attributes, the
    training rows, the checkpoint to write (``path`` with ``meta``) and, for a warm start, the previous model's
    checkpoint and the fit arguments of a warm-started fit."""

    indicator: tuple[str, str]
    state: dict[str, Any]
    arrays: tuple[np.ndarray | None, ...]       # fit rows, fit labels, held-out rows, held-out labels
    path: str
    meta: dict[str, Any]
    warm_from: str | None = None
    warm_fit_kwargs: dict[str, Any] | None = None


def _indicator_class(ref: tuple[str, str]) -> type:
    import importlib

    obj: Any = importlib.import_module(ref[0])
    for part in ref[1].split("."):
        obj = getattr(obj, part)
    return obj


def run_task(task: FitTask) -> str:
    """Fit the model of ``task`` as the indicator would, write it to ``task.path`` atomically; return the path.

    The indicator is a stand-in: an instance of its class made without backtrader (no lines, no data), holding
    the attributes the fit hooks read (``p``, ``model_kwargs``, ``fit_kwargs``, ``spec``, ...)."""
    cls = _indicator_class(task.indicator)
    proxy = object.__new__(cls)
    proxy.__dict__.update(task.state)
    Xf, yf, Xv, yv = task.arrays
    model = proxy.make_model(Xf.shape[1])
    if task.warm_from is not None:
        previous = type(model).load(task.warm_from)
        model.warm_start(previous)
        proxy.fit_kwargs = dict(task.warm_fit_kwargs or {})
    proxy.fit_model(model, Xf, yf, Xv, yv)
    model.save(task.path, meta=task.meta)
    return task.path


# ---------------------------------------------------------------------------------------------- the worker side
def _write_frame(stream: Any, payload: bytes) -> None:
    stream.write(_HEADER.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def _read_frame(stream: Any) -> bytes | None:
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    size = _HEADER.unpack(head)[0]
    payload = stream.read(size)
    return payload if len(payload) == size else None


def worker_main() -> None:
    """A worker's loop: read a pickled :class:`FitTask` from stdin, fit it, answer ``("ok", path)`` or
    ``("error", exception or text)`` on the original stdout (anything the fit prints goes to stderr)."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    inp = sys.stdin.buffer
    first = _read_frame(inp)
    if first is None:
        return
    paths, level = pickle.loads(first)
    sys.path[:] = paths + [p for p in sys.path if p not in paths]
    logging.getLogger().setLevel(level)
    import torch

    import btdensity.indicators  # noqa: F401  (the indicators and models, before saying "ready")

    torch.set_num_threads(1)
    _write_frame(out, b"ready")
    while (frame := _read_frame(inp)) is not None:
        try:
            answer: tuple[str, Any] = ("ok", run_task(pickle.loads(frame)))
        except BaseException as exc:  # sent back: the waiting process raises it
            text = "".join(traceback.format_exception(exc))
            try:
                payload = pickle.dumps(("error", exc, text))
                pickle.loads(payload)
            except Exception:
                payload = pickle.dumps(("error", None, text))
            _write_frame(out, payload)
            continue
        _write_frame(out, pickle.dumps(answer))


#: what a worker runs: find btdensity (installed, or the checkout this process loaded it from), then serve
_BOOT = """
import importlib.util, os, sys
if importlib.util.find_spec("btdensity") is None:
    root = sys.argv[1]
    spec = importlib.util.spec_from_file_location("btdensity", os.path.join(root, "__init__.py"),
                                                  submodule_search_locations=[root])
    sys.modules["btdensity"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sys.modules["btdensity"])
from btdensity.indicators.parallel_fits import worker_main
worker_main()
"""


class _Worker:
    """One worker process and the pipe to it; made when the process has imported the indicators (it takes a few
    seconds: meanwhile the queued fits stay free for the waiting process)."""

    def __init__(self) -> None:
        import btdensity

        start = time.monotonic()
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "BTDENSITY_JOBS": "1",
               "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-c", _BOOT, os.path.dirname(btdensity.__file__)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        try:
            _write_frame(self.proc.stdin, pickle.dumps((list(sys.path), logging.getLogger().level)))
            ready = _read_frame(self.proc.stdout)
        except OSError:
            ready = None
        if ready != b"ready":
            self.close(kill=True)
            raise WorkerDied(f"fit worker {self.pid} did not start (exit status {self.proc.poll()})")
        log.debug("fit worker %d ready after %.2f s", self.pid, time.monotonic() - start)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def call(self, payload: bytes) -> tuple:
        """Send a task, wait for the answer; :class:`WorkerDied` when the process ends first."""
        try:
            _write_frame(self.proc.stdin, payload)
            answer = _read_frame(self.proc.stdout)
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise WorkerDied(f"fit worker {self.pid} is gone ({exc})") from None
        if answer is None:
            code = self.proc.wait()
            raise WorkerDied(f"fit worker {self.pid} ended with exit status {code}")
        return pickle.loads(answer)

    def close(self, kill: bool = False) -> None:
        try:
            if kill:
                self.proc.kill()
            else:
                self.proc.stdin.close()
            self.proc.wait(timeout=None if not kill else 5)
        except Exception:
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except Exception:
                pass


# ---------------------------------------------------------------------------------------------- the pool
@dataclass(eq=False)
class FitJob:
    """A submitted fit: its task (pickled until it runs), what it waits for, and how it ended."""

    key: str
    path: str
    payload: bytes | None
    after: "FitJob | None"
    priority: tuple
    temporary: bool                       # written to the pool's own folder (no cache folder): removed when read
    state: str = "waiting"                # waiting -> ready -> running -> done | failed
    error: BaseException | None = None
    readers: int = 1                      # the evaluation, plus a warm-started job that starts from it
    dependents: list["FitJob"] = field(default_factory=list)
    main_only: bool = False               # a worker died on it: fit it in the waiting process
    on_done: Any = None

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")


class FitPool:
    """``n_jobs`` fits at once: ``n_jobs - 1`` worker processes, started on the first submission, and the process
    that waits (:meth:`wait`), which fits queued tasks itself meanwhile. Jobs are deduplicated by key and start in
    ``priority`` order once the job they start from (``after``) is done."""

    def __init__(self, n_jobs: int) -> None:
        self.n_jobs = int(n_jobs)
        self._lock = threading.Condition()
        self._ready: list[tuple[tuple, FitJob]] = []
        self._jobs: dict[str, FitJob] = {}
        self._seq = itertools.count()
        self._threads: list[threading.Thread] = []
        self._workers: set[_Worker] = set()
        self._restarts = 0
        self._closed = False
        self.worker_fits = 0          # fits done by worker processes (the rest ran in the waiting process)
        self._tmp: str | None = None

    # ------------------------------------------------------------------ submitting
    def temporary_folder(self) -> Path:
        """Where models go when there is no cache folder (removed when the pool closes)."""
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="btdensity-fits-")
        return Path(self._tmp)

    def submit(self, key: str, task: FitTask, *, after: FitJob | None = None, priority: tuple = (),
               temporary: bool = False) -> FitJob:
        """Queue ``task`` (the fit of ``key``) to start when ``after`` is done; the job already queued for ``key``
        if there is one. Raises ``pickle.PicklingError`` (or another error of pickle) for a task that cannot be
        sent to a worker."""
        with self._lock:
            known = self._jobs.get(key)
            if known is not None and known.state != "failed" and known.path == task.path:
                known.readers += 1     # another indicator with the same fit (or a later run that waits for it)
                return known
        payload = pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            job = FitJob(key, task.path, payload, after, (*priority, next(self._seq)), temporary)
            self._jobs[key] = job
            if after is not None and not after.finished:
                after.dependents.append(job)
                after.readers += 1
            elif after is not None and after.state == "failed":
                self._fail(job, after.error)
                return job
            else:
                if after is not None:
                    after.readers += 1
                self._make_ready(job)
            self._start_workers()
        return job

    def _make_ready(self, job: FitJob) -> None:
        job.state = "ready"
        self._ready.append((job.priority, job))
        self._lock.notify_all()

    def _start_workers(self, now: bool = False) -> None:
        while len(self._threads) < self.n_jobs - 1 and (self._ready or now):
            thread = threading.Thread(target=self._serve, name=f"btdensity-fit-{len(self._threads)}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def start(self, timeout: float = 120.0) -> "FitPool":
        """Start the worker processes now, not at the first submission, and wait until they are ready (tests, or a
        session that knows fits will follow); returns the pool."""
        with self._lock:
            self._start_workers(now=True)
        deadline = time.monotonic() + timeout
        while len(self.worker_pids) < self.n_jobs - 1 and time.monotonic() < deadline:
            if not any(thread.is_alive() for thread in self._threads):
                break
            time.sleep(0.05)
        return self

    # ------------------------------------------------------------------ running
    def _next(self, main: bool) -> FitJob | None:
        """The ready job of the lowest priority this runner may take (the lock is held)."""
        eligible = [entry for entry in self._ready if main or not entry[1].main_only]
        if not eligible:
            return None
        entry = min(eligible, key=lambda e: e[0])
        self._ready.remove(entry)
        entry[1].state = "running"
        return entry[1]

    def _serve(self) -> None:
        """A worker thread: take ready jobs, run them in its worker process, start a new process when one dies."""
        worker: _Worker | None = None
        try:
            while True:
                if worker is None:
                    if self._closed:
                        return
                    try:
                        worker = _Worker()
                    except WorkerDied as exc:
                        log.warning("%s; its fits run in this process", exc)
                        return
                    with self._lock:
                        self._workers.add(worker)
                with self._lock:
                    job = self._next(main=False)
                    while job is None and not self._closed:
                        self._lock.wait()
                        job = self._next(main=False)
                    if self._closed:
                        if job is not None:
                            self._requeue(job)
                        return
                try:
                    start = time.monotonic()
                    answer = worker.call(job.payload)
                    log.debug("worker %d fitted %s in %.2f s", worker.pid, Path(job.path).name,
                              time.monotonic() - start)
                except WorkerDied as exc:
                    _remove_partial_files(Path(job.path).parent, worker.pid)
                    with self._lock:
                        self._workers.discard(worker)
                        worker.close(kill=True)
                        worker = None
                        self._restarts += 1
                        job.main_only = True
                        self._requeue(job)
                        give_up = self._restarts > MAX_RESTARTS
                    if not self._closed:
                        log.warning("%s; fitting its model (%s) in this process instead", exc, Path(job.path).name)
                    if give_up:
                        return
                    continue
                if answer[0] == "ok":
                    self._restarts = 0          # counts deaths in a row: a worker that fits again is fine
                    self.worker_fits += 1
                    self._finish(job)
                else:
                    _, error, text = answer
                    self._finish(job, error if error is not None else RuntimeError(text), text)
        finally:
            if worker is not None:
                with self._lock:
                    self._workers.discard(worker)
                worker.close()

    def _requeue(self, job: FitJob) -> None:
        self._make_ready(job)

    def _run_here(self, job: FitJob) -> None:
        """Fit ``job`` in this process (one torch thread, as in a worker); the lock is not held."""
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        start = time.monotonic()
        try:
            run_task(pickle.loads(job.payload))
            log.debug("this process fitted %s in %.2f s", Path(job.path).name, time.monotonic() - start)
        except BaseException as exc:   # KeyboardInterrupt too: the job must not stay "running" for a later run
            self._finish(job, exc, "".join(traceback.format_exception(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            torch.set_num_threads(threads)
        self._finish(job)

    def _finish(self, job: FitJob, error: BaseException | None = None, text: str = "") -> None:
        with self._lock:
            job.payload = None                       # the training rows: no longer needed
            if error is None:
                job.state = "done"
                for dep in job.dependents:
                    if dep.state == "waiting":
                        self._make_ready(dep)
            else:
                if text and not isinstance(error, WorkerDied):
                    log.debug("fit of %s failed:\n%s", Path(job.path).name, text)
                self._fail(job, error)
            if job.after is not None:
                self._release(job.after)
            self._lock.notify_all()
        if job.on_done is not None:
            job.on_done(job)

    def _fail(self, job: FitJob, error: BaseException | None) -> None:
        job.state, job.error, job.payload = "failed", error, None
        for dep in job.dependents:
            if not dep.finished:
                self._fail(dep, error)

    def wait(self, job: FitJob) -> str:
        """The path of ``job``'s model once it is written; fits queued jobs in this process meanwhile. Raises the
        error of a failed fit (or of the fit it starts from)."""
        while True:
            with self._lock:
                while not job.finished:
                    mine = self._next(main=True)
                    if mine is not None:
                        break
                    self._lock.wait()
                else:
                    if job.state == "failed":
                        raise job.error if job.error is not None else RuntimeError(f"the fit of {job.path} failed")
                    return job.path
            self._run_here(mine)

    def release(self, job: FitJob) -> None:
        """The evaluation has read ``job``'s model: a temporary file goes once nothing else needs it."""
        with self._lock:
            self._release(job)

    def _release(self, job: FitJob) -> None:
        job.readers -= 1
        if job.readers <= 0 and job.finished:
            if job.temporary:
                Path(job.path).unlink(missing_ok=True)
            if self._jobs.get(job.key) is job:
                del self._jobs[job.key]

    def cancel_pending(self) -> None:
        """Drop the jobs that have not started (after an error: nothing will wait for them)."""
        with self._lock:
            for _, job in self._ready:
                self._fail(job, RuntimeError("cancelled"))
            self._ready.clear()
            for key, job in list(self._jobs.items()):
                if job.state == "waiting":
                    self._fail(job, RuntimeError("cancelled"))
                if job.finished:
                    del self._jobs[key]
                    if job.temporary:
                        Path(job.path).unlink(missing_ok=True)

    def close(self) -> None:
        """Stop the workers (a fit in progress is abandoned, its partial file removed) and remove the temporary
        folder."""
        with self._lock:
            self._closed = True
            workers = list(self._workers)
            self._lock.notify_all()
        for worker in workers:
            worker.close(kill=True)
            for job in self._jobs.values():
                _remove_partial_files(Path(job.path).parent, worker.pid)
        for thread in self._threads:
            thread.join(timeout=5)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    @property
    def worker_pids(self) -> list[int]:
        """The worker processes running now (tests kill one)."""
        with self._lock:
            return [w.pid for w in self._workers]


def _remove_partial_files(folder: Path, pid: int) -> None:
    """Remove the temporary files a dead process ``pid`` left in ``folder`` (see :func:`btdensity.atomic.atomic_path`:
    ``.<stem>.<pid>.<random>.tmp<suffix>``)."""
    for path in folder.glob(f".*.{pid}.*.tmp*"):
        path.unlink(missing_ok=True)


_POOL: FitPool | None = None
_POOL_LOCK = threading.Lock()


def get_pool(n_jobs: int) -> FitPool:
    """The process-wide pool for ``n_jobs`` fits at once (a new one when the size changes)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None and _POOL.n_jobs != n_jobs:
            _POOL.close()
            _POOL = None
        if _POOL is None:
            _POOL = FitPool(n_jobs)
        return _POOL


def shutdown_pool() -> None:
    """Close the process-wide pool (at exit; tests)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None:
            _POOL.close()
            _POOL = None


atexit.register(shutdown_pool)

