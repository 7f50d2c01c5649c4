"""The base class of every model: numpy in, numpy out, standardised inputs, deterministic for a seed.

A model subclasses :class:`BaseModel`, builds its ``torch.nn.Module`` in ``_build()`` and says how a
mini-batch is scored in ``_loss()``. The base class standardises inputs with statistics of the data
given to ``fit`` only (:mod:`.standardizer`), splits off a validation set when none is given, runs AdamW
with gradient clipping and early stopping, restoring a deep copy of the best weights (:mod:`.training`),
records a fit history, and saves / loads a single checkpoint file (:mod:`.checkpoint`). A fit draws its
random numbers from local generators and a forked torch RNG: the caller's random state is left as it was.
``warm_start(previous)`` makes the next fit start from another fitted model's weights (walk-forward refits).
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from .checkpoint import Checkpoint, read_checkpoint, write_checkpoint
from .checks import check_array, select_device
from .standardizer import Standardizer
from .training import EarlyStopping, FitSettings, minibatch_epoch, seeded_torch_rng

__all__ = ["BaseModel"]


class BaseModel:
    """Base of every model: numpy in, numpy out, standardised inputs, deterministic for a seed.

    Subclasses call ``super().__init__(n_features, seed=..., device=..., **hyperparameters)``
    (every hyperparameter JSON-serialisable: it is the saved config), implement ``_build()`` returning
    the ``nn.Module`` and ``_loss(batch)`` returning a scalar tensor for a tuple of standardised tensors.
    They may override ``_val_loss`` (e.g. with fixed noise) and ``_after_build`` (data-dependent init).
    These hooks may draw from torch's global RNG: during ``fit`` it is a fork seeded from ``seed``.
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
        self.meta_: dict[str, Any] = {}   # what the checkpoint it was loaded from said of itself
        self.best_epoch_: int | None = None
        self.warm_started_ = False        # whether the last fit started from another model's weights
        self._warm_weights: dict[str, torch.Tensor] | None = None

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
        """The constructor arguments (JSON-serialisable): what a checkpoint saves to rebuild the model."""
        return {"n_features": self.n_features, "seed": self.seed, **self.hyper}

    @property
    def is_fitted(self) -> bool:
        """True once ``fit`` or ``load`` has given the model its weights and scaler."""
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

    # ----------------------------------------------------------------- warm start
    def warm_start(self, previous: "BaseModel | None") -> "BaseModel":
        """Start the next ``fit`` from the fitted weights of ``previous`` instead of the seed's; returns self.

        Only the parameters are taken (buffers and data-dependent statistics come from the new data, the scaler
        too), and only when ``previous`` is a fitted model of the same class whose parameters have the names and
        shapes of the new module's; otherwise the fit starts from the seed as usual. ``warm_started_`` says, after
        the fit, which happened. The fit stays deterministic: the same weights and seed give the same model.
        """
        self._warm_weights = None
        if previous is not None and type(previous) is type(self) and previous.is_fitted:
            self._warm_weights = {name: p.detach().to("cpu", torch.float32).clone()
                                  for name, p in previous.module.named_parameters()}
        return self

    @property
    def _warm_pending(self) -> bool:
        """True while weights given to :meth:`warm_start` wait for the next fit."""
        return self._warm_weights is not None

    def _apply_warm_start(self, module: nn.Module) -> bool:
        """Copy the weights given to :meth:`warm_start` into ``module`` (built, and initialised from the data) when
        its parameters match them; True when they did. A fit calls this once, before its first step."""
        weights, self._warm_weights = self._warm_weights, None
        params = dict(module.named_parameters())
        self.warm_started_ = weights is not None and params.keys() == weights.keys() and all(
            params[name].shape == weights[name].shape for name in params)
        if self.warm_started_:
            with torch.no_grad():
                for name, p in params.items():
                    p.copy_(weights[name].to(p.device, p.dtype))
        return self.warm_started_

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
        t_train = tuple(torch.as_tensor(a, device=self.device) for a in train)
        t_val = tuple(torch.as_tensor(a, device=self.device) for a in val)
        with seeded_torch_rng(self.seed, self.device):  # initial weights, noise, negatives: all from the seed
            self.module = self._build().to(self.device)
            self._after_build(t_train)
            self._apply_warm_start(self.module)
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
                # the same noise every epoch, so that validation losses compare
                with seeded_torch_rng(self.seed + 2, self.device):
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
    def save(self, path: str | os.PathLike, *, meta: dict[str, Any] | None = None) -> None:
        """Write one checkpoint file atomically: config (JSON), scaler, state dict, extra state, history, and
        ``meta`` (JSON values the reader can check: :meth:`load` gives them back as ``meta_``)."""
        self._require_fitted()
        write_checkpoint(path, Checkpoint(type(self).__name__, self.get_config(), self.scaler.state(),
                                          self.module.state_dict(), self._extra_state(), self.history_,
                                          dict(meta or {})))

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> "BaseModel":
        """Load a checkpoint written by :meth:`save` (``weights_only=True``: no code runs on load)."""
        ckpt = read_checkpoint(path, cls.__name__)
        model = cls(**ckpt.config, device=device)
        model.scaler = Standardizer.from_state(ckpt.scaler)
        # fresh weights, overwritten at once: drawn from the seed, not from the caller's random stream
        with seeded_torch_rng(model.seed, model.device):
            model.module = model._build().to(model.device)
        model.module.load_state_dict(ckpt.state_dict)
        model.module.eval()
        model._load_extra_state({k: v.to(model.device) for k, v in ckpt.extra.items()})
        model.history_ = ckpt.history
        model.meta_ = ckpt.meta
        return model
