"""The pieces of a fit: optimisation settings, early stopping, one mini-batch epoch, a seeded torch RNG.

Training never reseeds the caller's random state: numpy randomness comes from local
``np.random.default_rng(seed)`` generators, and code that draws from torch's global RNG (weight
initialisation, Pyro sampling, noise in losses) runs inside :func:`seeded_torch_rng`, which forks that
state, seeds the fork and restores the caller's state afterwards. A fit that starts from another model's
weights (``BaseModel.warm_start``) runs fewer epochs: :func:`warm_fit_kwargs`.
"""
from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass, fields
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from torch import nn

__all__ = ["EarlyStopping", "FitSettings", "minibatch_epoch", "seeded_torch_rng", "warm_fit_kwargs"]


@dataclass(frozen=True)
class FitSettings:
    """Optimisation settings of the shared fit loop."""

    epochs: int = 200
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    grad_clip: float = 5.0
    val_fraction: float = 0.2
    patience: int = 20
    progress: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 0:
            raise ValueError(f"epochs and batch_size must be >= 1 and patience >= 0; got {self}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1); got {self.val_fraction}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive; got {self.lr}")


def warm_fit_kwargs(fit_kwargs: Mapping[str, Any], defaults: Mapping[str, Any], share: float) -> dict[str, Any]:
    """The fit arguments of a warm-started fit: ``fit_kwargs`` with ``share`` of the epochs and of the early-stopping
    patience (rounded up; at least one epoch), both read from ``fit_kwargs``, else from the model's ``defaults``
    (its ``fit_defaults``), else from :class:`FitSettings`.

    >>> warm_fit_kwargs({"epochs": 40, "lr": 2e-3}, {"patience": 20}, 0.25)
    {'epochs': 10, 'lr': 0.002, 'patience': 5}
    """
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1]; got {share!r}")
    base = {f.name: f.default for f in fields(FitSettings)}
    merged = {**base, **defaults, **fit_kwargs}
    return {**fit_kwargs, "epochs": max(1, math.ceil(merged["epochs"] * share)),
            "patience": math.ceil(merged["patience"] * share)}


class EarlyStopping:
    """Tracks the best validation loss and keeps a deep copy of the best state."""

    def __init__(self, patience: int, min_delta: float = 0.0):
        self.patience = patience
        self.min_delta = min_delta
        self.best = math.inf
        self.best_epoch = -1
        self.best_state: Any = None
        self._bad = 0

    def step(self, loss: float, epoch: int, state: Callable[[], Any]) -> bool:
        """Record ``loss``; return True when training should stop. ``state()`` is called only on improvement."""
        if math.isfinite(loss) and loss < self.best - self.min_delta:
            self.best, self.best_epoch, self._bad = loss, epoch, 0
            self.best_state = copy.deepcopy(state())
            return False
        self._bad += 1
        return self._bad > self.patience


def minibatch_epoch(loss_of: Callable[[torch.Tensor], torch.Tensor], n: int, s: FitSettings,
                    params: Sequence[torch.Tensor], opt: torch.optim.Optimizer, gen: torch.Generator,
                    what: str) -> float:
    """One epoch over ``n`` shuffled rows in mini-batches: ``loss_of(row indices)``, backward, clip, step.

    Returns the batch losses' mean weighted by batch size; a non-finite loss raises FloatingPointError
    naming ``what``.
    """
    perm = torch.randperm(n, generator=gen, device=gen.device)
    total = 0.0
    for i in range(0, n, s.batch_size):
        idx = perm[i:i + s.batch_size]
        loss = loss_of(idx)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{what}: the training loss became {loss.item()}; try a smaller lr or "
                                     "stronger regularisation")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if s.grad_clip:
            nn.utils.clip_grad_norm_(params, s.grad_clip)
        opt.step()
        total += loss.item() * idx.numel()
    return total / n


@contextlib.contextmanager
def seeded_torch_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Run the block on torch's global RNG seeded with ``seed``, then give the caller back its own state.

    Forks the CPU generator and, for a CUDA ``device``, that device's generator (only those are seeded,
    so no other device's stream changes either). What the block draws is deterministic for ``seed``.

    >>> before = torch.get_rng_state()
    >>> with seeded_torch_rng(0, torch.device("cpu")):
    ...     a = torch.rand(2)
    >>> with seeded_torch_rng(0, torch.device("cpu")):
    ...     b = torch.rand(2)
    >>> bool(torch.equal(a, b)), bool(torch.equal(torch.get_rng_state(), before))
    (True, True)
    """
    cuda = [torch.cuda.current_device() if device.index is None else device.index] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.random.default_generator.manual_seed(seed)
        for index in cuda:
            torch.cuda.default_generators[index].manual_seed(seed)
        yield
