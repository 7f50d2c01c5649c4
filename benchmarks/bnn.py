"""BayesianNN speed: SVI steps per second, predict latency for one row and rows per second batched.

Fits the default network (hidden=(64, 32)) on synthetic heteroscedastic data with each SVI guide,
then times ``predict`` on one row (the walk-forward ``next()`` case) and on a batch (``once()``),
and prints, side by side, the cost of one row through the batched posterior draws against one
``pyro.infer.Predictive`` call on the same row (what the module avoids).
Usage: ``OMP_NUM_THREADS=1 python benchmarks/bnn.py [--rows 2000] [--features 8] [--epochs 40]``.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from pyro.infer import Predictive

from btdensity.models.bnn import BayesianNN


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch", type=int, default=10_000, help="rows of the batched predict")
    args = parser.parse_args()
    torch.set_num_threads(1)

    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.rows, args.features))
    noise = 0.1 + 0.3 / (1 + np.exp(-2 * X[:, 0]))
    y = np.sin(X[:, 0]) + 0.3 * X[:, 1] + noise * rng.normal(size=args.rows)
    X_big = rng.normal(size=(args.batch, args.features))
    row = X[:1]

    print(f"data: {args.rows} rows x {args.features} features; hidden=(64, 32); 100 posterior draws")
    print(f"{'guide':>8} {'fit (s)':>8} {'steps/s':>8} {'1 row (ms)':>11} {'rows/s batched':>15}")
    for guide in ("normal", "lowrank", "laplace"):
        model = BayesianNN(args.features, guide=guide, kl_warmup=10)
        start = time.perf_counter()
        model.fit(X, y, epochs=args.epochs, batch_size=256, patience=args.epochs)
        fit_time = time.perf_counter() - start
        steps = sum(1 for r in model.history_ if "train_loss" in r) * -(-int(args.rows * 0.8) // 256)
        one = _median_time(lambda: model.predict(row), 200)
        batched = _median_time(lambda: model.predict(X_big), 5)
        print(f"{guide:>8} {fit_time:>8.1f} {steps / fit_time:>8.1f} {one * 1e3:>11.3f} {args.batch / batched:>15,.0f}")
        if guide == "normal":
            Z = torch.as_tensor(model.scaler.transform(row))
            predictive = Predictive(model.net, guide=model.module, num_samples=100, return_sites=["y"])
            pyro_one = _median_time(lambda: predictive(Z), 5)
            reference = (one, pyro_one)
    print("steps/s = SVI steps / fit time (fit time includes the per-epoch validation NLL, the posterior draws, "
          "the recalibration and, for laplace, the Hessian)")
    print(f"one row, normal guide: batched posterior draws {reference[0] * 1e3:.3f} ms vs pyro Predictive "
          f"{reference[1] * 1e3:.1f} ms per call (x{reference[1] / reference[0]:.0f})")


if __name__ == "__main__":
    main()
