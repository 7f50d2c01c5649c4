"""``DataFrameFeed``: a numpy-backed backtrader data feed for OHLCV frames.

``bt.feeds.PandasData`` reads every field of every bar through ``DataFrame.iloc``. This feed converts
the frame once to plain float lists (datetimes through backtrader's own ``date2num``, so values are
identical to any other feed's) and, when preloading with no filters, bulk-fills the line buffers
instead of loading bar by bar. Bar length (timeframe / compression) is read off the index.
"""
from __future__ import annotations


import backtrader as bt
import numpy as np
import pandas as pd

from .ohlcv import OHLCV_COLUMNS
from .timeframes import timeframe_to_bt

__all__ = ["DataFrameFeed", "frame_to_columns"]

_LINES = ("datetime",) + OHLCV_COLUMNS + ("openinterest",)


def frame_to_columns(df: pd.DataFrame) -> dict[str, list[float]]:
    """The frame's bars as plain lists per backtrader line, datetimes as backtrader numbers (UTC)."""
    missing = [c for c in OHLCV_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"DataFrameFeed needs columns {list(OHLCV_COLUMNS)}; missing {missing}")
    if not isinstance(df.index, pd.DatetimeIndex):
        raise ValueError("DataFrameFeed needs a DatetimeIndex (use feeds.load_csv or validate_ohlcv)")
    index = df.index.tz_convert("UTC").tz_localize(None) if df.index.tz is not None else df.index
    cols = {"datetime": [bt.date2num(ts) for ts in index.to_pydatetime()]}
    for name in OHLCV_COLUMNS:
        cols[name] = df[name].to_numpy(dtype=np.float64).tolist()
    oi = df["openinterest"] if "openinterest" in df.columns else None
    cols["openinterest"] = (oi.to_numpy(dtype=np.float64).tolist() if oi is not None
                            else [0.0] * len(df))
    return cols


class DataFrameFeed(bt.feed.DataBase):
    """backtrader feed over an OHLCV DataFrame with a (UTC) DatetimeIndex.

    ``DataFrameFeed(dataname=df)``; ``timeframe`` / ``compression`` default to the index spacing.
    Datetimes are UTC, as backtrader keeps them. ``auto_timeframe=False`` keeps the given
    ``timeframe`` / ``compression`` instead.
    """

    params = (("auto_timeframe", True),)

    def __init__(self) -> None:
        df = self.p.dataname
        if not isinstance(df, pd.DataFrame):
            raise ValueError(f"DataFrameFeed(dataname=...) needs a pandas DataFrame, got {type(df).__name__}")
        self._cols = frame_to_columns(df)
        self._n = len(df)
        if len(df) > 1 and self.p.auto_timeframe:
            step = pd.Timedelta(np.median(np.diff(df.index.asi8)), unit=df.index.unit)
            self.p.timeframe, self.p.compression = timeframe_to_bt(step)
            self._timeframe, self._compression = self.p.timeframe, self.p.compression

    def start(self) -> None:
        super().start()
        self._row = 0

    def _load(self) -> bool:
        i = self._row
        if i >= self._n:
            return False
        lines, cols = self.lines, self._cols
        for name in _LINES:
            getattr(lines, name)[0] = cols[name][i]
        self._row = i + 1
        return True

    def _bulk_ok(self) -> bool:
        if self._filters or self._ffilters or self._tzinput is not None or self._row:
            return False
        dts = self._cols["datetime"]
        return not dts or (self.fromdate <= dts[0] and self.todate >= dts[-1])

    def preload(self) -> None:
        """Fill the line buffers at once when nothing (filters, date bounds, input tz) needs bar-by-bar loading."""
        if not self._bulk_ok():
            return super().preload()
        for name in _LINES:
            getattr(self.lines, name).array.extend(self._cols[name])
        self._row = self._n
        self._last()
        self.home()
