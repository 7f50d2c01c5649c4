"""The checkpoint of a numpy model (the classical baselines): one JSON file of its state and ``meta``, written
atomically. Python's JSON writes floats with ``repr``, so a loaded model's numbers are the saved ones to the bit."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from btdensity.atomic import atomic_path

__all__ = ["JSON_CHECKPOINT_FORMAT", "JsonStateModel", "read_json_checkpoint", "write_json_checkpoint"]

JSON_CHECKPOINT_FORMAT = 1


def write_json_checkpoint(path: str | os.PathLike, class_name: str, state: dict[str, Any],
                          meta: dict[str, Any] | None = None) -> None:
    """Write ``state`` (JSON-serialisable) of a ``class_name`` model and ``meta`` to ``path`` atomically."""
    payload = {"format": JSON_CHECKPOINT_FORMAT, "class": class_name, "state": state, "meta": dict(meta or {})}
    text = json.dumps(payload)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def read_json_checkpoint(path: str | os.PathLike, class_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(state, meta)`` of the ``class_name`` model saved in ``path``; ValueError for any other file."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a btdensity JSON checkpoint ({exc})") from None
    if not isinstance(raw, dict) or raw.get("format") != JSON_CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a btdensity JSON checkpoint")
    if raw.get("class") != class_name:
        raise ValueError(f"{path} holds a {raw.get('class')}, not a {class_name}")
    return raw["state"], raw.get("meta", {})


class JsonStateModel:
    """``save`` / ``load`` of a model whose fitted numbers are JSON values: it gives them as ``state()`` and is
    rebuilt from them by ``from_state(state)``; ``load`` sets ``meta_``."""

    meta_: dict[str, Any]

    def state(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "JsonStateModel":
        raise NotImplementedError

    def save(self, path: str | os.PathLike, *, meta: dict[str, Any] | None = None) -> None:
        """Write to ``path`` atomically (JSON, no pickle); ``meta`` comes back as ``meta_`` from ``load``."""
        write_json_checkpoint(path, type(self).__name__, self.state(), meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "JsonStateModel":
        """The model :meth:`save` wrote; ValueError for a file of another kind."""
        state, meta = read_json_checkpoint(path, cls.__name__)
        model = cls.from_state(state)
        model.meta_ = meta
        return model
