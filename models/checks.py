"""Input checks shared by every model: feature matrices, regression targets and the compute device."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["check_array", "check_target", "select_device"]


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
