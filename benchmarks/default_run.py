"""Wall time of the default ``python run_backtest.py`` (density_gated on the sample, every model walk-forward).

"Cold" starts from an empty model cache (every window of every model is trained); "warm" reruns with the
cache filled (models are loaded). Each run is a fresh process, as a user's would be; the two are measured
side by side, alternating, and printed with the targets (cold < 90 s, warm < 20 s on 2 cores), with the warm run's
time outside the backtest (start-up, report: the wall time less ``runtime_s`` of ``summary.json``), against the same
warm run with the report's parts written one after the other (``BTDENSITY_REPORT_JOBS=1``).
Usage: ``python benchmarks/default_run.py [--repeats 1]``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(cache: Path, out: Path, **env_vars: str) -> tuple[float, float]:
    """Wall seconds of one default run, and of its part outside the backtest."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **env_vars}
    start = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "run_backtest.py"), "--cache-dir", str(cache), "--out", str(out),
                    "--quiet"], check=True, env=env)
    wall = time.perf_counter() - start
    return wall, wall - json.loads((out / "summary.json").read_text())["runtime_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    cold, warm, warm_outside, serial_outside = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            cache = Path(tmp) / f"cache{i}"
            cold.append(_run(cache, Path(tmp) / "out")[0])
            wall, outside = _run(cache, Path(tmp) / "out")
            warm.append(wall)
            warm_outside.append(outside)
            serial_outside.append(_run(cache, Path(tmp) / "out", BTDENSITY_REPORT_JOBS="1")[1])
            shutil.rmtree(cache)
    c, w = statistics.median(cold), statistics.median(warm)
    print(f"default run: cold {c:.1f} s (target < 90 s), warm {w:.1f} s (target < 20 s), "
          f"cold / warm = {c / w:.1f}")
    o, so = statistics.median(warm_outside), statistics.median(serial_outside)
    print(f"warm run outside the backtest: {o:.1f} s; with the report's parts one after the other "
          f"(BTDENSITY_REPORT_JOBS=1) {so:.1f} s: {so / o:.2f}x")


if __name__ == "__main__":
    main()
