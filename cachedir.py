"""Where btdensity keeps what it downloads and fits, by one rule for the command line, the library and sweeps:
the folder given explicitly (``--cache-dir``, ``cache_dir=``), else ``$BTDENSITY_CACHE``, else
``~/.cache/btdensity``. Downloaded bars and funding rates are kept in that folder, fitted models in its
``models/`` subfolder."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ENV_VAR", "cache_root", "model_cache_dir"]

ENV_VAR = "BTDENSITY_CACHE"


def cache_root(explicit: str | os.PathLike | None = None) -> Path:
    """``explicit`` when given, else ``$BTDENSITY_CACHE``, else ``~/.cache/btdensity``.

    >>> str(cache_root("/tmp/bars"))
    '/tmp/bars'
    """
    if explicit is not None:
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "btdensity"


def model_cache_dir(root: str | os.PathLike | None = None) -> Path:
    """The fitted-model folder under :func:`cache_root` (``root`` as its ``explicit``)."""
    return cache_root(root) / "models"
