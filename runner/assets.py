"""Several data sets in one backtest: their names, and their bars aligned on the timestamps they share.

A portfolio backtest runs one backtrader feed per asset, all ticking on the same bars: :func:`align_frames` keeps
the timestamps every frame has (an inner join of the bar indexes) and says, in one line naming the data set, when
nothing or too little is left.
"""
from __future__ import annotations

from typing import Mapping, Sequence, Union

import pandas as pd

__all__ = ["Frames", "align_frames", "as_frames"]

#: what ``backtest`` runs on: one OHLCV frame, a sequence of them, or a mapping of asset name -> frame
Frames = Union[pd.DataFrame, Sequence[pd.DataFrame], Mapping[str, pd.DataFrame]]


def as_frames(data: Frames) -> dict[str, pd.DataFrame]:
    """The frames of ``data`` by asset name: a mapping's own names, ``asset0``, ``asset1``, ... for a sequence,
    ``data`` for a single frame.

    >>> list(as_frames([pd.DataFrame(), pd.DataFrame()]))
    ['asset0', 'asset1']
    """
    if isinstance(data, pd.DataFrame):
        return {"data": data}
    if isinstance(data, Mapping):
        frames = {str(name): frame for name, frame in data.items()}
    elif isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        frames = {f"asset{i}": frame for i, frame in enumerate(data)}
    else:
        raise ValueError(f"backtest data must be a DataFrame, a list of them or a mapping name -> DataFrame; "
                         f"got {type(data).__name__}")
    if not frames:
        raise ValueError("backtest data is empty: give at least one OHLCV frame")
    for name, frame in frames.items():
        if not isinstance(frame, pd.DataFrame):
            raise ValueError(f"data set {name!r} must be a DataFrame; got {type(frame).__name__}")
    return frames


def align_frames(frames: Mapping[str, pd.DataFrame], min_bars: int = 2, need: str = "") -> dict[str, pd.DataFrame]:
    """The frames restricted to the timestamps all of them have (inner join of their indexes), in time order.

    A ValueError names the first data set that leaves no timestamp in common with those before it, or says how
    many bars the data sets share when that is fewer than ``min_bars`` (``need`` says what needs them).

    >>> idx = pd.date_range("2024-01-01", periods=4, freq="h", tz="UTC")
    >>> a = pd.DataFrame({"close": [1.0, 2, 3, 4]}, index=idx)
    >>> b = pd.DataFrame({"close": [5.0, 6, 7]}, index=idx[1:])
    >>> [len(f) for f in align_frames({"a": a, "b": b}).values()]
    [3, 3]
    """
    names = list(frames)
    common: pd.DatetimeIndex | None = None
    for name in names:
        index = frames[name].index
        if not isinstance(index, pd.DatetimeIndex):
            raise ValueError(f"data set {name!r} needs a DatetimeIndex (use btdensity.feeds.load_csv)")
        joined = index if common is None else common.intersection(index)
        if len(joined) == 0:
            if common is None:
                raise ValueError(f"data set {name!r} has no bars")
            before = ", ".join(repr(n) for n in names[:names.index(name)])
            raise ValueError(f"data set {name!r} ({index[0]} .. {index[-1]}) shares no timestamp with {before} "
                             f"({common[0]} .. {common[-1]})")
        common = joined
    common = common.sort_values()
    if len(common) < min_bars:
        why = f" ({need})" if need else ""
        raise ValueError(f"data sets {', '.join(map(repr, names))} share {len(common)} bars "
                         f"({common[0]} .. {common[-1]}); at least {min_bars} are needed{why}")
    return {name: frames[name].loc[common] if len(frames[name].index) != len(common)
            or not frames[name].index.equals(common) else frames[name] for name in names}
