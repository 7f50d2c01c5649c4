"""Fit time and inference speed of the energy-based models on 2,000 × 10 features, side by side.

Every model is fitted on the same data (a 10-D Gaussian mixture) with the same epochs and batch size;
the table prints fit seconds, fit time relative to ``EnergyModel(method="dsm")``, and rows per second of
``energy(X)`` (one batched forward pass) on 100,000 rows, relative to the DSM model's energy.
Usage: ``PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/models_fit.py [--rows 2000] [--epochs 20]``.
"""
from __future__ import annotations

import argparse
import time
from typing import Any, Callable

import numpy as np
import torch

from btdensity.models.ebm import METHODS, EnergyModel
from btdensity.models.jem import JointEnergyClassifier
from btdensity.models.rbm import GaussianRBM


def _data(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(4, d))
    y = rng.integers(4, size=n)
    return centres[y] + rng.normal(size=(n, d)), y


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--infer-rows", type=int, default=100_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    X, y = _data(args.rows, args.features)
    X_big, _ = _data(args.infer_rows, args.features, seed=1)
    fit = dict(epochs=args.epochs, batch_size=256, patience=args.epochs)
    d = args.features
    builders: dict[str, Callable[[], Any]] = {
        **{f"EnergyModel({m})": (lambda m=m: EnergyModel(d, method=m).fit(X, **fit)) for m in METHODS},
        "JEM (CE only)": lambda: JointEnergyClassifier(d, 4, generative_weight=0.0).fit(X, y, **fit),
        "JEM (CE + SGLD)": lambda: JointEnergyClassifier(d, 4).fit(X, y, **fit),
        "GaussianRBM(cd, 64)": lambda: GaussianRBM(d, 64, method="cd").fit(X, **fit),
        "GaussianRBM(pcd, 64)": lambda: GaussianRBM(d, 64, method="pcd").fit(X, **fit),
    }
    print(f"{args.rows} x {args.features} features, {args.epochs} epochs, batch 256; energy() on {args.infer_rows} rows")
    print(f"{'model':<22}{'epochs':>7}{'fit s':>8}{'vs dsm':>8}{'energy rows/s':>16}{'vs dsm':>8}")
    EnergyModel(d).fit(X, epochs=1)  # warm-up: the first fit pays torch's one-time costs
    base_fit = base_rate = None
    for name, build in builders.items():
        fit_s, model = _timed(build)
        model.energy(X_big[:1000])  # warm-up
        infer_s, _ = _timed(lambda: model.energy(X_big))
        rate = args.infer_rows / infer_s
        base_fit, base_rate = base_fit or fit_s, base_rate or rate
        print(f"{name:<22}{len(model.history_):>7}{fit_s:>8.2f}{fit_s / base_fit:>8.2f}{rate:>16,.0f}{rate / base_rate:>8.2f}")


if __name__ == "__main__":
    main()
