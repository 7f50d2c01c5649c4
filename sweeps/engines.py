"""Where trials run: ``LocalEngine`` (a process pool, the default) or ``RayEngine`` (Ray tasks), and the
engine-independent loop ``run_trials`` that keeps ``max_parallel`` trials in flight, retries failures and
hands every finished trial to a callback as soon as it finishes.

Workers receive plain trial descriptions and run :func:`btdensity.sweeps.trial.run_trial` with one torch
thread; fitted models reach other trials through the shared model cache folder, never as pickled modules.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import logging
import multiprocessing
import os
import sys
from typing import Any, Callable, Hashable, Mapping, Protocol, Sequence

from .returns import encode_returns
from .trial import run_trial

__all__ = ["ENGINES", "Engine", "LocalEngine", "RayEngine", "TrialError", "make_engine", "run_trials"]

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")


class TrialError(Exception):
    """A trial attempt failed; the message says why (the trial's own exception, or a lost worker)."""


def _one_thread() -> None:
    """One BLAS / torch thread in this worker (set before torch is imported, or applied if it already is)."""
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def _worker_trial(trial: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """Run a trial in a worker; its returns travel back as the bytes of a small Parquet file."""
    _one_thread()
    out = run_trial(trial, **options)
    out["returns"] = encode_returns(out["returns"])
    return out


class Engine(Protocol):
    """Runs trials asynchronously: ``submit`` returns a handle, ``wait`` the handles that finished."""

    def submit(self, trial: Mapping[str, Any]) -> Hashable: ...

    def wait(self, handles: Sequence[Hashable]) -> list[Hashable]: ...

    def outcome(self, handle: Hashable) -> dict[str, Any]: ...

    def close(self) -> None: ...


#: imported once by the fork server, so a worker starts in milliseconds instead of importing these itself
#: (quantstats alone takes seconds; ``btdensity.runner.metrics`` imports it on first use; pyarrow encodes
#: the trials' returns)
_PRELOAD = ["btdensity.sweeps.trial", "quantstats", "pyarrow.parquet"]


class LocalEngine:
    """A pool of ``max_parallel`` processes on this machine, one torch thread each.

    Workers are forked from a fork server (a clean single-threaded process that has imported the
    backtest stack once), never from this possibly multi-threaded process.

    A worker that dies (killed, out of memory) breaks the pool: its trials fail this attempt and the
    next submission starts a fresh pool.
    """

    def __init__(self, max_parallel: int, options: Mapping[str, Any]) -> None:
        self.max_parallel = max_parallel
        self.options = dict(options)
        self._pool: cf.ProcessPoolExecutor | None = None

    def submit(self, trial: Mapping[str, Any]) -> cf.Future:
        if self._pool is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(_PRELOAD)
            self._pool = cf.ProcessPoolExecutor(self.max_parallel, mp_context=context, initializer=_one_thread)
        return self._pool.submit(_worker_trial, trial, self.options)

    def wait(self, handles: Sequence[cf.Future]) -> list[cf.Future]:
        return list(cf.wait(handles, return_when=cf.FIRST_COMPLETED).done)

    def outcome(self, handle: cf.Future) -> dict[str, Any]:
        try:
            return handle.result()
        except cf.process.BrokenProcessPool as exc:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
            raise TrialError(f"worker process died: {exc}") from None
        except Exception as exc:
            raise TrialError(f"{type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class RayEngine:
    """Ray tasks of one CPU each, on a local Ray started here (``address=None``) or an existing cluster.

    A Ray session that is already initialised in this process is used as it is and left running.
    On a cluster, every node needs btdensity installed and the model cache folder on a shared file system.
    """

    def __init__(self, options: Mapping[str, Any], address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise ValueError("the ray engine needs Ray: pip install 'btdensity[distributed]'") from None
        self._ray = ray
        env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        if address is None:   # local workers import this checkout and any strategy modules the driver can
            env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
        self._owns = not ray.is_initialized()
        if self._owns:   # a cluster keeps its own settings; a local Ray starts without the dashboard
            local = {} if address is not None else {"include_dashboard": False}
            ray.init(address=address, logging_level=logging.WARNING, **local)
        self._task = ray.remote(_worker_trial).options(num_cpus=1, max_retries=0, retry_exceptions=False,
                                                      runtime_env={"env_vars": env})
        self._options = ray.put(dict(options))

    @property
    def cpus(self) -> int:
        """CPUs of the Ray cluster."""
        return int(self._ray.cluster_resources().get("CPU", 1))

    def submit(self, trial: Mapping[str, Any]) -> Any:
        return self._task.remote(dict(trial), self._options)

    def wait(self, handles: Sequence[Any]) -> list[Any]:
        ready, _ = self._ray.wait(list(handles), num_returns=1)
        return ready

    def outcome(self, handle: Any) -> dict[str, Any]:
        try:
            return self._ray.get(handle)
        except Exception as exc:
            cause = getattr(exc, "cause", None) or exc
            raise TrialError(f"{type(cause).__name__}: {cause}") from None

    def close(self) -> None:
        if self._owns:
            self._ray.shutdown()


def make_engine(name: str, options: Mapping[str, Any], *, max_parallel: int | None = None,
                ray_address: str | None = None) -> tuple[Engine, int]:
    """The engine called ``name`` and the number of trials to keep in flight on it."""
    if name == "local":
        if ray_address is not None:
            raise ValueError("--ray-address needs --engine ray")
        n = max_parallel or os.cpu_count() or 1
        return LocalEngine(n, options), n
    if name == "ray":
        engine = RayEngine(options, ray_address)
        return engine, max_parallel or engine.cpus
    raise ValueError(f"engine {name!r} is not known; use one of {list(ENGINES)}")


def run_trials(trials: Mapping[str, Mapping[str, Any]], engine: Engine, *, max_parallel: int, retries: int,
               on_finish: Callable[[dict[str, Any]], None]) -> None:
    """Run ``trials`` (by id) on ``engine``, ``max_parallel`` at a time; a failed attempt is retried up to
    ``retries`` times. ``on_finish`` gets each finished trial's record: ``id``, ``status`` (``ok`` or
    ``failed``), ``metrics``, ``runtime_s``, ``attempts``, ``error`` (the last failure's message) and, for a
    successful trial, ``returns`` (what the engine returned: the encoded per-bar returns)."""
    if max_parallel < 1:
        raise ValueError(f"max_parallel must be at least 1; got {max_parallel}")
    if retries < 0:
        raise ValueError(f"retries must be at least 0; got {retries}")
    queue = collections.deque(trials)
    attempts: collections.Counter[str] = collections.Counter()
    errors: dict[str, str] = {}
    inflight: dict[Hashable, str] = {}
    while queue or inflight:
        while queue and len(inflight) < max_parallel:
            tid = queue.popleft()
            attempts[tid] += 1
            inflight[engine.submit(trials[tid])] = tid
        for handle in engine.wait(list(inflight)):
            tid = inflight.pop(handle)
            try:
                out = engine.outcome(handle)
            except TrialError as exc:
                errors[tid] = str(exc)
                if attempts[tid] <= retries:
                    log.warning("trial %s failed (attempt %d of %d), retrying: %s", tid, attempts[tid],
                                retries + 1, exc)
                    queue.append(tid)
                    continue
                on_finish({"id": tid, "status": "failed", "metrics": None, "runtime_s": None,
                           "attempts": attempts[tid], "error": errors[tid]})
            else:
                on_finish({"id": tid, "status": "ok", "metrics": out["metrics"], "runtime_s": out["runtime_s"],
                           "attempts": attempts[tid], "error": errors.get(tid), "returns": out.get("returns")})
