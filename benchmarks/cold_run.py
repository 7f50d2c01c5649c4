"""Cold runs of the default backtest (``python run_backtest.py``: density_gated on the sample market, every model
indicator walk-forward, nothing cached), serial against parallel against warm-started fits, side by side in one run.

For one and three years of hourly bars, each variant runs as a fresh process with an empty model cache, one torch
thread per process (``OMP_NUM_THREADS=1``, as the tests and ``default_run.py``), the variants interleaved:

- ``serial``: ``--jobs 1 --no-warm-start``, every fit one after the other in the backtest's process (the path
  before parallel fits);
- ``defaults, serial``: ``--jobs 1``, warm start as each indicator does by default (LogDensity and Regime warm);
- ``defaults``: no option (fits in worker processes, ``--jobs`` every CPU; warm start as each indicator's default);
- ``warm, serial``: ``--jobs 1 --warm-start``;
- ``warm, parallel``: ``--warm-start``.

It prints the wall time of each (median of ``--repeats``), its ratio to ``serial`` (the issue's target: the
defaults at least 3x faster for one year on 2 cores), the CPU time of the process and its workers (how much work
there was: on a shared machine the wall time also holds other people's load), and whether the lines are identical
where the fits are: parallel against serial fits with the same warm starts (every value), warm-started against cold
fits (the bars of the first window, the only fit a warm start does not change).

Usage: ``python benchmarks/cold_run.py [--years 1 3] [--repeats 1] [--jobs N]``.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
HOURS_PER_YEAR = 8760
VARIANTS = {
    "serial": ["--jobs", "1", "--no-warm-start"],
    "defaults, serial": ["--jobs", "1"],
    "defaults": [],
    "warm, serial": ["--jobs", "1", "--warm-start"],
    "warm, parallel": ["--warm-start"],
}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(bars: int, options: list[str], folder: Path, jobs: int | None) -> tuple[float, float, Path]:
    """Wall and CPU seconds of one cold default run (fresh cache), and its exported lines."""
    cache, lines = folder / "cache", folder / "lines.csv"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if jobs is not None:
        env["BTDENSITY_JOBS"] = str(jobs)
    cpu, start = _children_cpu(), time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "run_backtest.py"), "--bars", str(bars), "--cache-dir", str(cache),
                    "--out", str(folder / "out"), "--export-lines", str(lines), "--quiet", *options],
                   check=True, env=env)
    return time.perf_counter() - start, _children_cpu() - cpu, lines


def _identical(a: Path, b: Path, rows: slice = slice(None)) -> bool:
    x, y = pd.read_csv(a, index_col=0).iloc[rows], pd.read_csv(b, index_col=0).iloc[rows]
    return x.columns.equals(y.columns) and bool(np.array_equal(x.to_numpy(), y.to_numpy(), equal_nan=True))


def _first_window_rows(lines: Path, retrain_every: int = 2000) -> slice:
    """The bars of the first window: from the first value to ``retrain_every`` bars later (default settings)."""
    first = int(pd.read_csv(lines, index_col=0).notna().any(axis=1).to_numpy().argmax())
    return slice(0, first + retrain_every)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=None, help="fits at once of the parallel variants (default: "
                                                                    "$BTDENSITY_JOBS, else every CPU)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; load average before: {os.getloadavg()[0]:.1f}")
    header = f"{'span':>6s}  {'variant':17s}{'wall s':>9s}{'x serial':>10s}{'CPU s':>9s}   identical lines"
    rows = [header]
    with tempfile.TemporaryDirectory() as tmp:
        for years in args.years:
            bars = years * HOURS_PER_YEAR
            wall: dict[str, list[float]] = {v: [] for v in VARIANTS}
            cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
            lines: dict[str, Path] = {}
            for repeat in range(args.repeats):
                for variant, options in VARIANTS.items():
                    folder = Path(tmp) / f"{years}y-{repeat}-{variant.replace(', ', '-')}"
                    w, c, lines[variant] = _run(bars, options, folder,
                                                None if variant.endswith("serial") else args.jobs)
                    wall[variant].append(w)
                    cpu[variant].append(c)
            first = _first_window_rows(lines["serial"])
            same = {"serial": "",
                    "defaults, serial": "",
                    "defaults": "every value, as defaults, serial: "
                                f"{_identical(lines['defaults, serial'], lines['defaults'])}",
                    "warm, serial": f"first window: {_identical(lines['serial'], lines['warm, serial'], first)}",
                    "warm, parallel": "every value, as warm, serial: "
                                      f"{_identical(lines['warm, serial'], lines['warm, parallel'])}"}
            base = statistics.median(wall["serial"])
            for variant in VARIANTS:
                w, c = statistics.median(wall[variant]), statistics.median(cpu[variant])
                rows.append(f"{years:>4d} y  {variant:17s}{w:9.1f}{base / w:10.2f}{c:9.1f}   {same[variant]}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
