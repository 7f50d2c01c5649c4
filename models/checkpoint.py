"""The single-file model checkpoint: one ``torch.save`` of tensors and JSON text, written atomically and
read back with ``weights_only=True`` (no code runs on load).

The file holds ``format``, ``class`` (the model's class name), ``config``, ``history`` and ``meta`` (JSON: what
the writer wants to verify on load, e.g. the model cache's key and the package version) and the tensor
dictionaries ``scaler``, ``state_dict`` and ``extra``.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

from btdensity.atomic import atomic_path

__all__ = ["CHECKPOINT_FORMAT", "Checkpoint", "read_checkpoint", "write_checkpoint"]

CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint holds: the model's class name and config, its tensors and its fit history."""

    class_name: str
    config: dict[str, Any]
    scaler: dict[str, torch.Tensor]
    state_dict: dict[str, torch.Tensor]
    extra: dict[str, torch.Tensor]
    history: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)


def write_checkpoint(path: str | os.PathLike, ckpt: Checkpoint) -> None:
    """Write ``ckpt`` to ``path`` atomically (tensors moved to the CPU): a crash never leaves half a file."""
    payload = {"format": CHECKPOINT_FORMAT, "class": ckpt.class_name, "config": json.dumps(ckpt.config),
               "scaler": _on_cpu(ckpt.scaler), "state_dict": _on_cpu(ckpt.state_dict), "extra": _on_cpu(ckpt.extra),
               "history": json.dumps(ckpt.history), "meta": json.dumps(ckpt.meta)}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read_checkpoint(path: str | os.PathLike, class_name: str) -> Checkpoint:
    """Read a checkpoint of a ``class_name`` model (tensors on the CPU); ValueError for any other file.

    torch's own warnings about a file it reads are silenced: a caller that refuses the file says why, once."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(raw, dict) or raw.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a btdensity checkpoint")
    if raw["class"] != class_name:
        raise ValueError(f"{path} holds a {raw['class']}, not a {class_name}")
    return Checkpoint(class_name=raw["class"], config=json.loads(raw["config"]), scaler=raw["scaler"],
                      state_dict=raw["state_dict"], extra=raw["extra"], history=json.loads(raw["history"]),
                      meta=json.loads(raw.get("meta", "{}")))


def _on_cpu(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in tensors.items()}
