"""Speed-up of the local sweep engine on N workers over running the same trials serially in this process;
with ``--overfitting``, what keeping the trials' returns and computing the deflated Sharpe ratio and PBO
adds to a sweep.

    OMP_NUM_THREADS=1 python benchmarks/sweep.py [--trials 16] [--bars 4000] [--workers 2]
    OMP_NUM_THREADS=1 python benchmarks/sweep.py --overfitting [--sizes 16,100] [--bars 4000] [--workers 2]

Both sides run the same sma_cross trials on the sample market. The figures are wall-clock times measured
one after the other on this machine: other load on it (printed) lowers the speed-up. The overfitting costs
are: encoding each trial's returns as Parquet (in the workers, so in parallel; measured here in-process),
writing them (in the sweep process), reading them back with the DSR / CSCV computation, and drawing the
logit histograms of the report; the share is of the whole sweep's wall-clock time.
"""
from __future__ import annotations

import argparse
import functools
import importlib
import os
import sys
import tempfile
import time
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from btdensity.sweeps.sweep import sweep  # noqa: E402
from btdensity.sweeps.grid import load_grid  # noqa: E402
from btdensity.sweeps.returns import encode_returns, read_returns  # noqa: E402
from btdensity.sweeps.trial import make_trial, run_trial  # noqa: E402


def _timed(module: Any, name: str, spent: dict[str, float]) -> Callable[[], None]:
    """Replace ``module.name`` by a wrapper that adds its wall-clock time to ``spent[name]``; returns the undo."""
    original = getattr(module, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - start

    setattr(module, name, wrapper)
    return lambda: setattr(module, name, original)


def overfitting_cost(sizes: list[int], bars: int, workers: int) -> None:
    """Per sweep size, the sweep's wall-clock time and what the selection-bias figures add to it."""
    sweep_mod, report_mod = importlib.import_module("btdensity.sweeps.sweep"), importlib.import_module(
        "btdensity.sweeps.report")
    print(f"sma_cross sweeps on {bars} sample bars, {workers} workers, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'trials':>6} {'sweep s':>8} {'encode s':>9} {'write s':>8} {'DSR+PBO s':>10} {'plots s':>8} "
          f"{'added s':>8} {'share':>6}")
    for n in sizes:
        grid = {"data": {"source": "sample", "bars": bars}, "strategy": "sma_cross",
                "params": {"fast": list(range(2, 2 + n)), "slow": 2 + n + 40}}
        spent: dict[str, float] = {}
        undo = [_timed(sweep_mod, "write_returns", spent), _timed(sweep_mod, "_selection", spent),
                _timed(report_mod, "_logit_plots", spent)]
        try:
            with tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                result = sweep(grid, "local", out=out, max_parallel=workers)
                wall = time.perf_counter() - start
                one = read_returns(out, result.table["trial_id"].iloc[0])
        finally:
            for u in undo:
                u()
        start = time.perf_counter()
        for _ in range(n):
            encode_returns(one)
        encode = (time.perf_counter() - start) / workers   # spread over the workers
        added = encode + sum(spent.values())
        print(f"{n:>6} {wall:>8.2f} {encode:>9.3f} {spent.get('write_returns', 0):>8.3f} "
              f"{spent.get('_selection', 0):>10.3f} {spent.get('_logit_plots', 0):>8.3f} {added:>8.3f} "
              f"{added / wall:>6.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--bars", type=int, default=4000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--overfitting", action="store_true", help="measure the selection-bias figures' cost")
    ap.add_argument("--sizes", default="16,100", help="sweep sizes for --overfitting")
    args = ap.parse_args()
    if args.overfitting:
        overfitting_cost([int(n) for n in args.sizes.split(",")], args.bars, args.workers)
        return
    fast = list(range(3, 3 + args.trials))
    grid = load_grid({"data": {"source": "sample", "bars": args.bars}, "strategy": "sma_cross",
                      "params": {"fast": fast, "slow": 60}})
    trials = [make_trial(d, c.strategy, c.params, b, s) for d in grid.data for s in grid.seeds
              for b in grid.brokers for c in grid.candidates]

    run_trial(trials[0])                       # imports and first-call costs, outside both timings
    start = time.perf_counter()
    serial = [run_trial(t)["metrics"] for t in trials]
    t_serial = time.perf_counter() - start

    timings = []
    for _ in range(2):   # cold: starts the fork server (imports once); warm: a second sweep in this process
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            result = sweep(grid, "local", out=out, max_parallel=args.workers, report=False)
            timings.append(time.perf_counter() - start)
    by_fast = result.table.set_index("param.fast")
    same = all(by_fast.loc[t["params"]["fast"], "final_value"] == m["final_value"] for t, m in zip(trials, serial))
    print(f"{len(trials)} sma_cross trials on {args.bars} sample bars, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"serial in-process                 {t_serial:7.2f} s  ({t_serial / len(trials):.2f} s/trial)")
    for label, t in zip(("cold", "warm"), timings):
        print(f"local engine, {args.workers} workers, {label}   {t:7.2f} s  speed-up {t_serial / t:5.2f}x")
    print(f"identical metrics: {same}  (cold includes starting the fork server; both include the pool, "
          "results file and sweep.csv)")


if __name__ == "__main__":
    main()
