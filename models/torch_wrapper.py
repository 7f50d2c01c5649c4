"""``TorchWrapper``: a torch model of :mod:`btdensity.models` with fitted classical numbers beside it (a regression,
frequency tables). Warm starts and devices reach the torch model; the checkpoint is the torch model's, with the
classical numbers in its ``meta`` (JSON: floats round-trip exactly), written atomically."""
from __future__ import annotations

import os
from typing import Any

__all__ = ["TorchWrapper"]


class TorchWrapper:
    """Subclasses set ``inner`` (the torch model's class), ``META_KEY`` and ``STATE_NAME`` (what a checkpoint without
    the classical numbers lacks, for the error), and implement ``torch_model``, ``wrapped_state()`` and
    ``from_wrapped_state(model, state)``."""

    #: a torch model inside: the walk-forward indicators apply warm starts and devices
    torch_backed = True
    inner: type
    META_KEY: str
    STATE_NAME: str
    meta_: dict[str, Any]

    @property
    def torch_model(self) -> Any:
        raise NotImplementedError

    def wrapped_state(self) -> dict[str, Any]:
        """The classical numbers, as JSON values."""
        raise NotImplementedError

    @classmethod
    def from_wrapped_state(cls, model: Any, state: dict[str, Any]) -> "TorchWrapper":
        raise NotImplementedError

    def warm_start(self, previous: "TorchWrapper | None") -> "TorchWrapper":
        """The torch model starts from ``previous``'s (the classical numbers have no training loop)."""
        self.torch_model.warm_start(previous.torch_model if isinstance(previous, type(self)) else None)
        return self

    def double(self) -> "TorchWrapper":
        self.torch_model.double()
        return self

    def save(self, path: str | os.PathLike, *, meta: dict[str, Any] | None = None) -> None:
        """The torch model's checkpoint, the classical numbers in its ``meta``; written atomically."""
        self.torch_model.save(path, meta={**(meta or {}), self.META_KEY: self.wrapped_state()})

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> "TorchWrapper":
        """The model :meth:`save` wrote; ValueError for a checkpoint of the torch model alone."""
        model = cls.inner.load(path, device=device)
        state = model.meta_.pop(cls.META_KEY, None)
        if state is None:
            raise ValueError(f"{path} holds a {cls.inner.__name__} without {cls.STATE_NAME}")
        out = cls.from_wrapped_state(model, state)
        out.meta_, model.meta_ = model.meta_, {}
        return out
