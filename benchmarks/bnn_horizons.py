"""Multi-horizon BNN: one network with an output per horizon (what ``BNNHorizons`` fits) against one network per
horizon, on a simulated GARCH(1,1)-t market: 5 % / 95 % pinball loss and 90 % coverage out of sample, fit time.

Each path: ``RISK_FEATURES`` of hourly bars whose log returns follow GARCH(1,1)-t (persistence 0.98, nu = 6); labels
are the forward log returns over each horizon; the first ``--train`` rows are the training window (its last 30 %
held out: early stopping and the per-horizon variance recalibration of ``BNNHorizons.calibrate``), then an embargo
of the longest horizon, then ``--test`` rows scored. Both set-ups use ``BNNHorizons``' default network and fit
settings. Prints, per horizon, the two losses and their ratio (shared / separate), the coverages, and the fit times.
Usage: ``OMP_NUM_THREADS=1 python benchmarks/bnn_horizons.py [--paths 3] [--train 2000] [--test 3000]``.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from btdensity.indicators.features import RISK_FEATURES, lookback, market_features
from btdensity.labels import forward_log_returns
from btdensity.models import BayesianNN
from btdensity.models.calibration import central_quantile, fit_variance_scale

HORIZONS = (1, 4, 24)
MODEL = {"hidden": (32, 16), "kl_warmup": 20, "likelihood": "studentt"}
FIT = {"epochs": 80, "patience": 10, "lr": 5e-3}


def garch_bars(n: int, seed: int, omega: float = 2e-6, alpha: float = 0.08, beta: float = 0.90,
               nu: float = 6.0) -> tuple[np.ndarray, ...]:
    """OHLCV arrays of ``n`` hourly bars whose close-to-close log returns follow GARCH(1,1) with Student-t errors."""
    rng = np.random.default_rng(seed)
    z = rng.standard_t(nu, n + 500) * np.sqrt((nu - 2) / nu)
    r, v = np.empty(n + 500), omega / (1 - alpha - beta)
    for t in range(n + 500):
        r[t] = np.sqrt(v) * z[t]
        v = omega + alpha * r[t] ** 2 + beta * v
    r = r[500:]
    close = 100 * np.exp(np.cumsum(r))
    open_ = np.r_[100.0, close[:-1]]
    wick = np.exp(np.abs(rng.normal(0, 0.002, (2, n))))
    return open_, np.maximum(open_, close) * wick[0], np.minimum(open_, close) / wick[1], close, np.ones(n)


def pinball(y: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Mean of the 5 % pinball loss of ``lower`` and the 95 % one of ``upper``."""
    def loss(q: np.ndarray, tau: float) -> float:
        d = y - q
        return float(np.mean(np.maximum(tau * d, (tau - 1) * d)))
    return 0.5 * (loss(lower, 0.05) + loss(upper, 0.95))


def intervals(models: list[BayesianNN], X_val: np.ndarray, y_val: np.ndarray, X: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """90 % intervals ``(lower, upper)`` of every horizon for rows ``X``, recalibrated per horizon on the held-out
    rows as ``BNNHorizons.calibrate`` does."""
    def moments(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        preds = [m.predict(rows, n_samples=64) for m in models]
        mean = np.column_stack([np.asarray(p.mean).reshape(len(rows), -1) for p in preds])
        std = np.column_stack([np.asarray(p.std).reshape(len(rows), -1) for p in preds])
        return mean, std

    df = models[0].df
    mean_v, std_v = moments(X_val)
    c = np.sqrt([fit_variance_scale(y_val[:, j], mean_v[:, j], std_v[:, j], df, criterion="coverage")
                 for j in range(y_val.shape[1])])
    mean, std = moments(X)
    half = central_quantile(0.9, df) * c * std
    return mean - half, mean + half


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=3)
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--test", type=int, default=3000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    first = lookback(RISK_FEATURES)
    h_max = max(HORIZONS)
    print(f"GARCH(1,1)-t paths; train {args.train} rows (30 % held out), test {args.test} rows; horizons {HORIZONS}")
    print(f"{'path':>4} {'h':>3} {'pinball shared':>15} {'separate':>9} {'ratio':>6} {'cover shared':>13} "
          f"{'separate':>9}")
    ratios, times = [], np.zeros(2)
    for path in range(args.paths):
        bars = garch_bars(first + args.train + h_max + args.test + h_max, seed=path)
        X = market_features(*bars, spec=RISK_FEATURES)
        y = np.column_stack([forward_log_returns(bars[3], h) for h in HORIZONS])
        n_val = int(round(args.train * 0.3))
        fit = slice(first, first + args.train - n_val)
        val = slice(first + args.train - n_val, first + args.train)
        test = slice(first + args.train + h_max, first + args.train + h_max + args.test)
        start = time.perf_counter()
        shared = [BayesianNN(X.shape[1], n_outputs=len(HORIZONS), **MODEL).fit(X[fit], y[fit], X[val], y[val], **FIT)]
        times[0] += time.perf_counter() - start
        start = time.perf_counter()
        separate = [BayesianNN(X.shape[1], **MODEL).fit(X[fit], y[fit, j], X[val], y[val, j], **FIT)
                    for j in range(len(HORIZONS))]
        times[1] += time.perf_counter() - start
        got = [intervals(models, X[val], y[val], X[test]) for models in (shared, separate)]
        for j, h in enumerate(HORIZONS):
            yt = y[test, j]
            loss = [pinball(yt, lo[:, j], hi[:, j]) for lo, hi in got]
            cover = [float(np.mean((yt >= lo[:, j]) & (yt <= hi[:, j]))) for lo, hi in got]
            ratios.append(loss[0] / loss[1])
            print(f"{path:>4} {h:>3} {1e4 * loss[0]:>15.2f} {1e4 * loss[1]:>9.2f} {ratios[-1]:>6.3f} "
                  f"{cover[0]:>13.1%} {cover[1]:>9.1%}")
    print(f"pinball ratio shared / separate: median {np.median(ratios):.3f}, range {min(ratios):.3f}-{max(ratios):.3f}")
    print(f"fit time: shared {times[0]:.1f} s, separate {times[1]:.1f} s (ratio {times[0] / times[1]:.2f})")


if __name__ == "__main__":
    main()
