"""Machinery shared by every model: input checks, standardisation, seeding, the fit loop, save/load.

A model subclasses :class:`BaseModel`, builds its ``torch.nn.Module`` in ``_build()`` and says how a
mini-batch is scored in ``_loss()``. The base class standardises inputs with statistics of the data
given to ``fit`` only, splits off a validation set when none is given, runs AdamW with gradient
clipping and early stopping (restoring a deep copy of the best weights), records a fit history, and
saves / loads a single checkpoint file (state dict + JSON config, loaded with ``weights_only=True``).
"""
from __future__ import annotations

import copy
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

__all__ = [
    "BaseModel",
    "EarlyStopping",
    "Standardizer",
    "atomic_torch_save",
    "check_array",
    "check_target",
    "minibatch_epoch",
    "select_device",
]

CHECKPOINT_FORMAT = 1


def check_array(X: Any, n_features: int | None = None, name: str = "X", min_rows: int = 1,
                dtype: type = np.float32) -> np.ndarray:
    """Return ``X`` as a C-contiguous 2-D array of ``dtype``, or raise ValueError naming the problem.

    >>> check_array([[1, 2], [3, 4]], n_features=2).dtype
    dtype('float32')
    """
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric, got {type(X).__name__}: {exc}") from None
    if arr.ndim != 2:
        want = f"(n_samples, {n_features})" if n_features else "(n_samples, n_features)"
        raise ValueError(f"{name} must be a 2-D array of shape {want}; got shape {arr.shape}")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features; this model was built for n_features={n_features}")
    if arr.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows; got {arr.shape[0]}")
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])
        shown = ", ".join(str(r) for r in rows[:5]) + (", ..." if rows.size > 5 else "")
        raise ValueError(f"{name} contains NaN or infinite values in {rows.size} row(s): {shown}")
    return np.ascontiguousarray(arr, dtype=dtype)


def check_target(y: Any, n_rows: int, name: str = "y", n_outputs: int | None = None) -> np.ndarray:
    """Return a regression target as a float32 2-D array ``(n_rows, n_outputs)``; 1-D input becomes one column."""
    arr = np.asarray(y, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 1-D or 2-D; got shape {arr.shape}")
    if arr.shape[0] != n_rows:
        raise ValueError(f"{name} has {arr.shape[0]} rows but X has {n_rows}")
    if n_outputs is not None and arr.shape[1] != n_outputs:
        raise ValueError(f"{name} has {arr.shape[1]} outputs; this model was built for n_outputs={n_outputs}")
    if not np.isfinite(arr).all():
        rows = np.unique(np.nonzero(~np.isfinite(arr))[0])
        raise ValueError(f"{name} contains NaN or infinite values in {rows.size} row(s), first {rows[0]}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def select_device(device: str | torch.device | None = None) -> torch.device:
    """CPU by default; ``"cuda"`` when asked for and present; ``"auto"`` picks CUDA if there is one."""
    if device is None or device == "cpu":
        return torch.device("cpu")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for but CUDA is not available; use device='cpu' or 'auto'")
    return dev


class Standardizer:
    """Per-feature affine scaling ``z = (x - mean) / scale`` fitted on training data only."""

    def __init__(self, mean: np.ndarray | None = None, scale: np.ndarray | None = None):
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.scale = None if scale is None else np.asarray(scale, dtype=np.float64)

    def fit(self, X: np.ndarray) -> "Standardizer":
        X = np.asarray(X, dtype=np.float64)
        self.mean = X.mean(axis=0)
        std = X.std(axis=0)
        # A constant feature keeps scale 1 instead of dividing by zero.
        self.scale = np.where(std > 1e-12 * np.maximum(1.0, np.abs(self.mean)), std, 1.0)
        return self

    def transform(self, X: np.ndarray, dtype: type = np.float32) -> np.ndarray:
        return ((np.asarray(X, dtype=np.float64) - self.mean) / self.scale).astype(dtype, copy=False)

    def inverse(self, Z: np.ndarray) -> np.ndarray:
        return (np.asarray(Z, dtype=np.float64) * self.scale + self.mean).astype(np.float32)

    @property
    def log_det(self) -> float:
        """log |dz/dx| of the transform: add it to a log-density in z-space to get one in x-space."""
        return float(-np.log(self.scale).sum())

    def state(self) -> dict[str, torch.Tensor]:
        return {"mean": torch.as_tensor(self.mean), "scale": torch.as_tensor(self.scale)}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> "Standardizer":
        return cls(state["mean"].numpy(), state["scale"].numpy())


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


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def minibatch_epoch(loss_of: Callable[[torch.Tensor], torch.Tensor], n: int, s: "FitSettings",
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


class BaseModel:
    """Base of every model: numpy in, numpy out, standardised inputs, deterministic for a seed.

    Subclasses call ``super().__init__(n_features, seed=..., device=..., **hyperparameters)``
    (every hyperparameter JSON-serialisable: it is the saved config), implement ``_build()`` returning
    the ``nn.Module`` and ``_loss(batch)`` returning a scalar tensor for a tuple of standardised tensors.
    They may override ``_val_loss`` (e.g. with fixed noise) and ``_after_build`` (data-dependent init).
    """

    #: keyword arguments of ``fit`` that set :class:`FitSettings`
    fit_defaults: dict[str, Any] = {}

    def __init__(self, n_features: int, *, seed: int = 0, device: str | None = None, **hyper: Any):
        if not isinstance(n_features, (int, np.integer)) or n_features < 1:
            raise ValueError(f"n_features must be a positive integer; got {n_features!r}")
        self.n_features = int(n_features)
        self.seed = int(seed)
        self.device = select_device(device)
        self.hyper = dict(hyper)
        json.dumps(self.hyper)  # fails early on a config that could not be saved
        self.scaler: Standardizer | None = None
        self.module: nn.Module | None = None
        self.dtype = torch.float32     # of evaluation; fits always run in float32
        self.history_: list[dict[str, float]] = []
        self.best_epoch_: int | None = None

    # ----------------------------------------------------------------- subclass hooks
    def _build(self) -> nn.Module:
        raise NotImplementedError

    def _loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        raise NotImplementedError

    def _val_loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return self._loss(batch)

    def _after_build(self, train: tuple[torch.Tensor, ...]) -> None:
        """Data-dependent initialisation (ActNorm, fitted noise distributions, ...); default: nothing."""

    def _extra_state(self) -> dict[str, torch.Tensor]:
        """Tensors beyond the module's state dict that a checkpoint must keep."""
        return {}

    def _load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        pass

    # ----------------------------------------------------------------- config
    def get_config(self) -> dict[str, Any]:
        return {"n_features": self.n_features, "seed": self.seed, **self.hyper}

    @property
    def is_fitted(self) -> bool:
        return self.module is not None and self.scaler is not None

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError(f"{type(self).__name__} is not fitted yet: call fit() or load() first")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def double(self) -> "BaseModel":
        """Evaluate in float64 from now on (a later ``fit`` trains in float32 again); returns the model.

        In float32 a row's result changes in the last bits with the batch it is computed in, and outputs that
        are small differences of larger internal values (a score near a mode) keep few correct digits; in
        float64 both effects are around 1e-15. Costs little for the small networks here.
        """
        self._require_fitted()
        self._cast(torch.float64)
        self.dtype = torch.float64
        return self

    def _cast(self, dtype: torch.dtype) -> None:
        """Convert what evaluation uses to ``dtype`` (models with tensors outside ``module`` extend it)."""
        self.module.to(dtype)

    # ----------------------------------------------------------------- data helpers
    def _prepare(self, X: Any, name: str = "X") -> torch.Tensor:
        """Check, standardise (in float64) and move ``X`` to the model's device and evaluation dtype."""
        self._require_fitted()
        Z = self.scaler.transform(check_array(X, self.n_features, name, dtype=np.float64),
                                  dtype=np.float64 if self.dtype == torch.float64 else np.float32)
        return torch.as_tensor(Z, device=self.device)

    def _to_numpy(self, t: torch.Tensor) -> np.ndarray:
        return t.detach().to("cpu", torch.float64).numpy()

    def _batched(self, fn: Callable[[torch.Tensor], torch.Tensor], Z: torch.Tensor, batch: int = 8192,
                 grad: bool = False) -> torch.Tensor:
        """Apply ``fn`` to ``Z`` in chunks (bounded memory); ``grad=True`` keeps autograd on."""
        outs = []
        with torch.set_grad_enabled(grad):
            for i in range(0, Z.shape[0], batch):
                out = fn(Z[i:i + batch] if Z.shape[0] > batch else Z)
                outs.append(out.detach() if grad else out)
        if len(outs) == 1:
            return outs[0]
        return torch.cat(outs) if outs else fn(Z[:0]).detach()

    def _generator(self, offset: int = 0) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(self.seed + offset)

    # ----------------------------------------------------------------- fitting
    def _settings(self, overrides: dict[str, Any]) -> FitSettings:
        merged = {**self.fit_defaults, **overrides}
        unknown = set(merged) - set(FitSettings.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown fit argument(s) {sorted(unknown)}; "
                             f"expected some of {sorted(FitSettings.__dataclass_fields__)}")
        return FitSettings(**merged)

    def _split(self, arrays: Sequence[np.ndarray], val_fraction: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
        n = arrays[0].shape[0]
        n_val = int(round(n * val_fraction))
        if n_val == 0 or n - n_val < 2:
            return list(arrays), []
        perm = np.random.default_rng(self.seed).permutation(n)
        return [a[perm[n_val:]] for a in arrays], [a[perm[:n_val]] for a in arrays]

    def _fit_arrays(self, train: Sequence[np.ndarray], val: Sequence[np.ndarray] | None,
                    fit_kwargs: dict[str, Any]) -> "BaseModel":
        """Standardise X (first array), build the module and run the training loop."""
        settings = self._settings(fit_kwargs)
        if val is None:
            train, val = self._split(train, settings.val_fraction)
        self.scaler = Standardizer().fit(train[0])
        self.dtype = torch.float32
        train = [self.scaler.transform(train[0]), *train[1:]]
        val = [self.scaler.transform(val[0]), *val[1:]] if val else []
        torch.manual_seed(self.seed)
        np.random.seed(self.seed % (2**32))
        t_train = tuple(torch.as_tensor(a, device=self.device) for a in train)
        t_val = tuple(torch.as_tensor(a, device=self.device) for a in val)
        self.module = self._build().to(self.device)
        self._after_build(t_train)
        self._train_loop(t_train, t_val, settings)
        self.module.eval()
        return self

    def _train_loop(self, train: tuple[torch.Tensor, ...], val: tuple[torch.Tensor, ...],
                    s: FitSettings) -> None:
        params = [p for p in self.module.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
        stopper = EarlyStopping(s.patience)
        gen = self._generator(1)
        n = train[0].shape[0]
        self.history_ = []
        epochs = range(s.epochs)
        if s.progress:
            from tqdm.auto import tqdm
            epochs = tqdm(epochs, desc=type(self).__name__, leave=False)
        for epoch in epochs:
            self.module.train()
            train_loss = minibatch_epoch(lambda idx: self._loss(tuple(t[idx] for t in train)), n, s, params, opt,
                                         gen, f"{type(self).__name__} at epoch {epoch}")
            record = {"epoch": epoch, "train_loss": train_loss}
            record.update(self._epoch_metrics())
            if val:
                self.module.eval()
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(self.seed + 2)  # the same noise every epoch: comparable losses
                    record["val_loss"] = self._evaluate(val, s.batch_size * 8)
                stop = stopper.step(record["val_loss"], epoch, self.module.state_dict)
            else:
                stop = stopper.step(record["train_loss"], epoch, self.module.state_dict)
            self.history_.append(record)
            if stop:
                break
        if stopper.best_state is not None:
            self.module.load_state_dict(stopper.best_state)
            self.best_epoch_ = stopper.best_epoch

    def _evaluate(self, val: tuple[torch.Tensor, ...], batch: int) -> float:
        n = val[0].shape[0]
        total = 0.0
        for i in range(0, n, batch):
            part = tuple(t[i:i + batch] for t in val)
            with torch.set_grad_enabled(self._val_needs_grad):
                total += self._val_loss(part).item() * part[0].shape[0]
        return total / n

    #: True when the validation loss needs autograd (score-matching losses differentiate E w.r.t. x)
    _val_needs_grad: bool = False

    def _epoch_metrics(self) -> dict[str, float]:
        """Extra per-epoch figures for the fit history (e.g. bits per dimension); default none."""
        return {}

    # ----------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write one checkpoint file atomically: config (JSON), scaler, state dict, extra state."""
        self._require_fitted()
        atomic_torch_save({
            "format": CHECKPOINT_FORMAT,
            "class": type(self).__name__,
            "config": json.dumps(self.get_config()),
            "scaler": self.scaler.state(),
            "state_dict": {k: v.detach().cpu() for k, v in self.module.state_dict().items()},
            "extra": {k: v.detach().cpu() for k, v in self._extra_state().items()},
            "history": json.dumps(self.history_),
        }, path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> "BaseModel":
        """Load a checkpoint written by :meth:`save` (``weights_only=True``: no code runs on load)."""
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a btdensity checkpoint")
        if ckpt["class"] != cls.__name__:
            raise ValueError(f"{path} holds a {ckpt['class']}, not a {cls.__name__}")
        model = cls(**json.loads(ckpt["config"]), device=device)
        model.scaler = Standardizer.from_state(ckpt["scaler"])
        model.module = model._build().to(model.device)
        model.module.load_state_dict(ckpt["state_dict"])
        model.module.eval()
        model._load_extra_state({k: v.to(model.device) for k, v in ckpt["extra"].items()})
        model.history_ = json.loads(ckpt["history"])
        return model
