"""The OHLCV frame every feed returns, and its validation: a UTC index and float columns, rejected
with a message naming the row when the data is impossible."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["OHLCV_COLUMNS", "DataError", "GapReport", "find_gaps", "resample_ohlcv", "validate_ohlcv"]

log = logging.getLogger(__name__)

OHLCV_COLUMNS = ("open", "high", "low", "close", "volume")


class DataError(ValueError):
    """Market data that cannot be used as it is; the message says which row and why."""


@dataclass(frozen=True)
class GapReport:
    """Missing bars: ``count`` gaps, the ``largest`` of them, for bars of length ``step``."""

    count: int
    largest: pd.Timedelta
    step: pd.Timedelta
    missing_bars: int

    def __str__(self) -> str:
        if not self.count:
            return "no gaps"
        return (f"{self.count} gap(s), {self.missing_bars} missing bar(s) of {self.step}; "
                f"largest {self.largest}")


def find_gaps(index: pd.DatetimeIndex, step: pd.Timedelta | None = None) -> GapReport:
    """Gaps in a sorted index: spacings longer than ``step`` (default: the median spacing)."""
    if len(index) < 2:
        return GapReport(0, pd.Timedelta(0), step or pd.Timedelta(0), 0)
    diffs = index[1:] - index[:-1]
    step = step if step is not None else pd.Timedelta(np.median(diffs.asi8), unit=index.unit)
    gaps = diffs[diffs > step]
    if len(gaps) == 0:
        return GapReport(0, pd.Timedelta(0), step, 0)
    missing = int(sum(g // step - 1 for g in gaps))
    return GapReport(len(gaps), gaps.max(), step, missing)


def _where(df: pd.DataFrame, mask: np.ndarray, row_offset: int | np.ndarray) -> str:
    i = int(np.flatnonzero(mask)[0])
    more = int(mask.sum()) - 1
    tail = f" (and {more} more row(s))" if more else ""
    row = i + row_offset if np.ndim(row_offset) == 0 else row_offset[i]
    return f"row {row} ({df.index[i]}){tail}"


def validate_ohlcv(df: pd.DataFrame, source: str = "data", row_offset: int | np.ndarray = 1,
                   step: pd.Timedelta | None = None, report_gaps: bool = True) -> pd.DataFrame:
    """Check an OHLCV frame with a DatetimeIndex in UTC; return it with float64 columns, sorted.

    Raises :class:`DataError` naming the first bad row (``row_offset`` is the number of the first
    row, e.g. 2 for a CSV file's line numbers, or an array of the number of each row). Gaps are
    allowed: they are reported in ``df.attrs["gaps"]`` and logged (unless ``report_gaps`` is false: a caller that
    validates part of a series and reports the whole later). ``step`` is the expected bar length (default: the
    median spacing).
    """
    missing = [c for c in OHLCV_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing}; need {list(OHLCV_COLUMNS)}")
    if len(df) == 0:
        raise DataError(f"{source}: no rows")
    idx = df.index
    if not isinstance(idx, pd.DatetimeIndex) or idx.tz is None:
        raise DataError(f"{source}: the index must be a UTC DatetimeIndex")
    diffs = np.diff(idx.asi8)
    if (diffs == 0).any():
        mask = np.r_[False, diffs == 0]
        raise DataError(f"{source}: duplicate timestamp at {_where(df, mask, row_offset)}")
    if (diffs < 0).any():
        mask = np.r_[False, diffs < 0]
        raise DataError(f"{source}: timestamps go backwards at {_where(df, mask, row_offset)}; "
                        "rows must be in increasing time order")
    out = pd.DataFrame(index=idx)
    for col in OHLCV_COLUMNS:
        values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            raise DataError(f"{source}: column {col!r} is missing, NaN or not a number at "
                            f"{_where(df, bad, row_offset)}")
        out[col] = values
    prices = out[["open", "high", "low", "close"]].to_numpy()
    bad = (prices <= 0).any(axis=1)
    if bad.any():
        raise DataError(f"{source}: non-positive price at {_where(df, bad, row_offset)}")
    if (out["volume"].to_numpy() < 0).any():
        raise DataError(f"{source}: negative volume at {_where(df, out['volume'].to_numpy() < 0, row_offset)}")
    o, h, l, c = prices.T
    bad = h < l
    if bad.any():
        raise DataError(f"{source}: high < low at {_where(df, bad, row_offset)}")
    bad = (h < np.maximum(o, c)) | (l > np.minimum(o, c))
    if bad.any():
        raise DataError(f"{source}: open/close outside the high-low range at {_where(df, bad, row_offset)}")
    for col in df.columns:
        if col not in OHLCV_COLUMNS:
            out[col] = df[col].to_numpy()
    out.index.name = "datetime"
    gaps = find_gaps(out.index, step)
    out.attrs["gaps"] = gaps
    if gaps.count and report_gaps:
        log.warning("%s: %s", source, gaps)
    return out


def resample_ohlcv(df: pd.DataFrame, step: pd.Timedelta) -> pd.DataFrame:
    """Aggregate bars to a coarser bar length (open first, high max, low min, close last, volume sum).

    Bins are labelled by their start, as exchanges label candles; empty bins (gaps) are dropped.
    """
    native = pd.Timedelta(np.median(np.diff(df.index.asi8)), unit=df.index.unit) if len(df) > 1 else step
    if step < native:
        raise DataError(f"cannot resample {native} bars to the finer timeframe {step}")
    if step == native:
        return df
    agg = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    out = df[list(OHLCV_COLUMNS)].resample(step, label="left", closed="left").agg(agg)
    out = out.dropna(subset=["open"])
    out.attrs["gaps"] = find_gaps(out.index, step)
    return out
