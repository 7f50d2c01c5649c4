"""The models alone, without backtrader: numpy arrays in, numpy arrays out.

1. ``RealNVP`` fitted on samples of a known correlated 2-D Gaussian: its mean held-out log-likelihood next to
   the true density's on the same rows (the best any model can do, up to sampling noise).
2. ``BayesianNN`` fitted on ``y = sin(x) + noise``: how often its central 90 % interval covers held-out targets.
3. A save / load round trip of the flow through a temporary folder: the loaded copy gives the same numbers.

Run it (about 15 seconds; ``OMP_NUM_THREADS=1`` keeps torch from slowing these small networks down with
threads on a machine with few cores)::

    OMP_NUM_THREADS=1 python examples/models_alone.py
"""
import tempfile
from pathlib import Path

import numpy as np
from scipy.stats import multivariate_normal

from btdensity import BayesianNN, RealNVP

MEAN = np.array([1.0, -2.0])
COV = np.array([[1.0, 0.8], [0.8, 2.0]])


def flow_on_gaussian(n_train, n_test, epochs, seed):
    rng = np.random.default_rng(seed)
    X = rng.multivariate_normal(MEAN, COV, size=n_train + n_test)
    train, test = X[:n_train], X[n_train:]
    flow = RealNVP(2, n_layers=4, hidden=32, seed=seed).fit(train, epochs=epochs)
    return flow, test, float(flow.log_prob(test).mean()), float(multivariate_normal(MEAN, COV).logpdf(test).mean())


def bnn_coverage(n_train, n_test, epochs, seed, level=0.9, noise=0.2):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3, 3, size=(n_train + n_test, 1))
    y = np.sin(x[:, 0]) + noise * rng.normal(size=x.shape[0])
    bnn = BayesianNN(1, hidden=(32, 32), kl_warmup=epochs // 4, seed=seed)
    bnn.fit(x[:n_train], y[:n_train], epochs=epochs)       # holds out 20 % to stop early and recalibrate
    pred = bnn.predict(x[n_train:], level=level)
    y_test = y[n_train:]
    return float(np.mean((pred.lower <= y_test) & (y_test <= pred.upper)))


def main(n_train=4000, n_test=2000, flow_epochs=150, bnn_train=2000, bnn_epochs=300, seed=0):
    """Fit both models and print what they give; returns the printed numbers as a dict."""
    flow, test, model_ll, true_ll = flow_on_gaussian(n_train, n_test, flow_epochs, seed)
    print(f"RealNVP held-out log-likelihood {model_ll:.3f} nats/row; true density {true_ll:.3f} "
          f"(gap {(true_ll - model_ll) / 2:.3f} nats/dim)")

    coverage = bnn_coverage(bnn_train, 1000, bnn_epochs, seed)
    print(f"BayesianNN 90% interval covers {coverage:.1%} of held-out targets")

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "flow.pt"
        flow.save(path)
        restored = RealNVP.load(path)
        roundtrip = float(np.abs(restored.log_prob(test) - flow.log_prob(test)).max())
    print(f"save / load round trip: largest log-likelihood difference {roundtrip:.1e}")
    return {"flow_loglik": model_ll, "true_loglik": true_ll, "bnn_coverage": coverage, "roundtrip_diff": roundtrip}


if __name__ == "__main__":
    main()
