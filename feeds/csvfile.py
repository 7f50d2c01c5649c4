"""``load_csv``: OHLCV from a CSV file, validated, with a UTC index."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from .ohlcv import DataError, validate_ohlcv

__all__ = ["load_csv"]

TIME_COLUMNS = ("datetime", "timestamp", "date")
#: epoch values above this are milliseconds (1e11 seconds would be the year 5138)
_MS_THRESHOLD = 1e11


def _parse_times(raw: pd.Series, source: str, column: str) -> pd.DatetimeIndex:
    text = raw.astype("string").str.strip()
    numeric = pd.to_numeric(text, errors="coerce")
    if numeric.notna().all():
        values = numeric.to_numpy(dtype=np.float64)
        unit = "ms" if np.nanmax(np.abs(values)) > _MS_THRESHOLD else "s"
        return pd.DatetimeIndex(pd.to_datetime(values, unit=unit, utc=True)).as_unit("ns")
    parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    bad = parsed.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{source}: unparsable date {raw.iloc[i]!r} in column {column!r} at row {i + 2}; "
                        "use ISO 8601 (2024-01-31T13:00:00Z) or epoch seconds / milliseconds")
    return pd.DatetimeIndex(parsed).as_unit("ns")


def load_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Load OHLCV bars from a CSV file.

    Columns (any case): one of ``datetime``, ``timestamp``, ``date`` (epoch seconds or milliseconds,
    or ISO 8601; naive times are taken as UTC), and ``open, high, low, close, volume``. Returns a
    float DataFrame indexed by UTC time. Rows are numbered as the file's lines (the header is line 1).
    Impossible data raises :class:`feeds.DataError` naming the row; gaps are reported in
    ``df.attrs["gaps"]``.
    """
    source = os.fspath(path)
    if not os.path.isfile(source):
        raise FileNotFoundError(f"CSV file not found: {source}")
    try:
        raw = pd.read_csv(source, dtype=str, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{source}: not a readable CSV file ({exc})") from None
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    if raw.empty:
        raise DataError(f"{source}: no rows")
    time_col = next((c for c in TIME_COLUMNS if c in raw.columns), None)
    if time_col is None:
        raise DataError(f"{source}: no time column; expected one of {list(TIME_COLUMNS)}, "
                        f"found {list(raw.columns)}")
    if raw[time_col].isna().any():
        i = int(np.flatnonzero(raw[time_col].isna().to_numpy())[0])
        raise DataError(f"{source}: missing date in column {time_col!r} at row {i + 2}")
    index = _parse_times(raw[time_col], source, time_col)
    frame = raw.drop(columns=[time_col])
    frame.index = index
    frame.index.name = "datetime"
    return validate_ohlcv(frame, source=source, row_offset=2)
