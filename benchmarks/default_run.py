"""Wall time of the default ``python run_backtest.py`` (density_gated on the sample, every model walk-forward).

"Cold" starts from an empty model cache (every window of every model is trained); "warm" reruns with the
cache filled (models are loaded). Each run is a fresh process, as a user's would be; the two are measured
side by side, alternating, and printed with the targets (cold < 90 s, warm < 20 s on 2 cores).
Usage: ``python benchmarks/default_run.py [--repeats 1]``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(cache: Path, out: Path) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "run_backtest.py"), "--cache-dir", str(cache), "--out", str(out),
                    "--quiet"], check=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    cold, warm = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            cache = Path(tmp) / f"cache{i}"
            cold.append(_run(cache, Path(tmp) / "out"))
            warm.append(_run(cache, Path(tmp) / "out"))
            shutil.rmtree(cache)
    c, w = statistics.median(cold), statistics.median(warm)
    print(f"default run: cold {c:.1f} s (target < 90 s), warm {w:.1f} s (target < 20 s), "
          f"cold / warm = {c / w:.1f}")


if __name__ == "__main__":
    main()
