"""The checkpoint of a numpy model (the classical baselines): one JSON file of its state and ``meta``, written
atomically. Python's JSON writes floats with ``repr``, so a loaded model's numbers are the saved ones to the bit."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from btdensity.atomic import atomic_path

__all__ = ["JSON_CHECKPOINT_FORMAT", "read_json_checkpoint", "write_json_checkpoint"]

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
