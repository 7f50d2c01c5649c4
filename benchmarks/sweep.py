"""Speed-up of the local sweep engine on N workers over running the same trials serially in this process.

    OMP_NUM_THREADS=1 python benchmarks/sweep.py [--trials 16] [--bars 4000] [--workers 2]

Both sides run the same sma_cross trials on the sample market. The figures are wall-clock times measured
one after the other on this machine: other load on it (printed) lowers the speed-up.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from btdensity.sweeps.sweep import sweep  # noqa: E402
from btdensity.sweeps.grid import load_grid  # noqa: E402
from btdensity.sweeps.trial import make_trial, run_trial  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--bars", type=int, default=4000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
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
