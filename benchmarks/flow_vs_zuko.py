"""Our RealNVP against zuko's RealNVP on the same data, same transforms, same optimisation steps.

Data: a 3-D Gaussian mixture with correlated components, whose exact log-density gives the truth.
Both flows get the same standardised training rows, the same number of coupling transforms with the
same conditioner width (two hidden layers), AdamW with the same lr / weight decay / gradient clipping /
batch size / number of epochs, and both keep the weights of their best validation epoch. The script
prints held-out NLL per dimension (raw space) of each flow and of the true density, and training time.
zuko is a dev-only dependency: ``pip install -c constraints.txt zuko``.
Usage: ``OMP_NUM_THREADS=1 python benchmarks/flow_vs_zuko.py [--epochs 60] [--transforms 8] [--hidden 64]``.
"""
from __future__ import annotations

import argparse
import copy
import math
import time

import numpy as np
import torch
from scipy.stats import multivariate_normal

from btdensity.models import RealNVP
from btdensity.models.standardizer import Standardizer

WEIGHTS = np.array([0.5, 0.3, 0.2])
MEANS = np.array([[2.0, 0.0, 1.0], [-1.5, 1.5, -1.0], [0.0, -2.0, 0.5]])
CHOL = np.array([[0.8, 0.0, 0.0], [0.4, 0.6, 0.0], [-0.3, 0.2, 0.5]])


def draw(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    k = rng.choice(len(WEIGHTS), size=n, p=WEIGHTS)
    return MEANS[k] + rng.normal(size=(n, 3)) @ CHOL.T


def true_log_prob(X: np.ndarray) -> np.ndarray:
    cov = CHOL @ CHOL.T
    comps = [np.log(w) + multivariate_normal(m, cov).logpdf(X) for w, m in zip(WEIGHTS, MEANS)]
    return np.logaddexp.reduce(np.stack(comps), axis=0)


def fit_zuko(Z: np.ndarray, Z_val: np.ndarray, args: argparse.Namespace) -> tuple[torch.nn.Module, float]:
    import zuko

    torch.manual_seed(0)
    flow = zuko.flows.RealNVP(3, transforms=args.transforms, hidden_features=(args.hidden, args.hidden))
    opt = torch.optim.AdamW(flow.parameters(), lr=args.lr, weight_decay=1e-4)
    train, val = torch.as_tensor(Z), torch.as_tensor(Z_val)
    best, best_state = math.inf, None
    gen = torch.Generator().manual_seed(1)
    start = time.perf_counter()
    for _ in range(args.epochs):
        flow.train()
        for idx in torch.randperm(len(train), generator=gen).split(args.batch_size):
            loss = -flow().log_prob(train[idx]).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(flow.parameters(), 5.0)
            opt.step()
        flow.eval()
        with torch.no_grad():
            val_loss = -flow().log_prob(val).mean().item()
        if val_loss < best:
            best, best_state = val_loss, copy.deepcopy(flow.state_dict())
    elapsed = time.perf_counter() - start
    flow.load_state_dict(best_state)
    return flow, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--transforms", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()
    torch.set_num_threads(1)

    X, X_val, X_test = draw(args.n_train, 0), draw(args.n_train // 5, 1), draw(20_000, 2)
    truth = -true_log_prob(X_test).mean() / 3

    start = time.perf_counter()
    ours = RealNVP(3, n_layers=args.transforms, hidden=args.hidden).fit(
        X, X_val=X_val, epochs=args.epochs, patience=args.epochs, batch_size=args.batch_size, lr=args.lr)
    t_ours = time.perf_counter() - start
    nll_ours = -ours.log_prob(X_test).mean() / 3

    scaler = Standardizer().fit(X)  # zuko gets the same standardised rows; its NLL is mapped back to raw space
    zflow, t_zuko = fit_zuko(scaler.transform(X), scaler.transform(X_val), args)
    with torch.no_grad():
        lp = zflow().log_prob(torch.as_tensor(scaler.transform(X_test))).double().numpy() + scaler.log_det
    nll_zuko = -lp.mean() / 3

    steps = args.epochs * math.ceil(args.n_train / args.batch_size)
    print(f"3-D mixture, {args.n_train} training rows, {args.transforms} transforms, hidden {args.hidden}x2, "
          f"{args.epochs} epochs = {steps} steps of batch {args.batch_size}")
    print(f"held-out NLL per dim (nats): truth {truth:.4f}   ours {nll_ours:.4f} (+{nll_ours - truth:.4f})   "
          f"zuko {nll_zuko:.4f} (+{nll_zuko - truth:.4f})")
    print(f"ours - zuko: {nll_ours - nll_zuko:+.4f} nats/dim (acceptance: <= +0.01)")
    print(f"training time: ours {t_ours:.1f} s ({steps / t_ours:.0f} steps/s)   zuko {t_zuko:.1f} s "
          f"({steps / t_zuko:.0f} steps/s)   ours/zuko time ratio {t_ours / t_zuko:.2f}")


if __name__ == "__main__":
    main()
