"""backtrader 1.9.78.123 compatibility fixes, applied once on import (DESIGN.md, "Known traps").

- ``collections.Iterable`` was removed in Python 3.10 but ``backtrader.lineiterator`` still uses it
  (``bindlines`` fails): alias the ``collections.abc`` names backtrader reaches for.
- ``backtrader.plot`` forces the TkAgg backend on import: select Agg and import ``matplotlib.pyplot``
  first, so plotting works headless (:func:`use_headless_matplotlib`).

``btdensity/__init__.py`` imports this module first, so importing btdensity or any of its subpackages applies
the fixes before backtrader is imported; users need no import-order ritual.
"""
from __future__ import annotations

import collections
import collections.abc

__all__ = ["use_headless_matplotlib"]

for _name in ("Iterable", "Mapping", "MutableMapping", "Sequence", "Callable"):
    if not hasattr(collections, _name):
        setattr(collections, _name, getattr(collections.abc, _name))


def use_headless_matplotlib() -> None:
    """Select the Agg backend before ``backtrader.plot`` can force TkAgg."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot  # noqa: F401  (must be imported before backtrader.plot)
