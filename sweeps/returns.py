"""The per-bar returns of each trial, kept in the sweep folder so selection-bias figures need no rerun.

A trial's returns are those of its equity curve over the scored span (from ``score_from``, or the whole
run), the first one measured from the starting cash. A worker encodes them as a small Parquet file
(``time`` delta-encoded, ``return`` as float32 with byte-stream-split, zstd: about 22 kB for a year of
hourly bars) and returns the bytes; the sweep writes them atomically to ``returns/<trial id>.parquet``
before the trial's line goes to ``results.jsonl``, so every finished trial, also after a resume, has them.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from btdensity.atomic import atomic_path
from btdensity.runner.metrics import daily_returns, periods_per_year

__all__ = ["RETURNS_DIR", "bar_returns", "daily_matrix", "decode_returns", "encode_returns", "read_returns",
           "returns_path", "write_returns"]

#: sub-folder of the sweep folder that holds one Parquet file of per-bar returns per trial
RETURNS_DIR = "returns"


def bar_returns(values: pd.Series, initial: float) -> pd.Series:
    """Per-bar returns of an equity curve (UTC index), the first measured from ``initial``; float32."""
    v = values.to_numpy(dtype=float)
    prev = np.r_[float(initial), v[:-1]]
    return pd.Series((v / prev - 1.0).astype(np.float32), index=values.index, name="return")


def encode_returns(returns: pd.Series) -> bytes:
    """``returns`` (UTC-indexed) as the bytes of a compact Parquet file with columns ``time`` and ``return``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"time": pa.array(returns.index), "return": pa.array(returns.to_numpy(dtype=np.float32))})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", use_dictionary=False,
                   column_encoding={"time": "DELTA_BINARY_PACKED", "return": "BYTE_STREAM_SPLIT"})
    return buf.getvalue()


def decode_returns(data: bytes | str | os.PathLike) -> pd.Series:
    """The returns series of :func:`encode_returns`' bytes, or of such a file."""
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data) if isinstance(data, bytes) else data)
    index = pd.DatetimeIndex(table.column("time").to_pandas())
    return pd.Series(table.column("return").to_numpy(), index=index, name="return")


def returns_path(folder: str | os.PathLike, trial_id: str) -> Path:
    """Where the returns of trial ``trial_id`` of the sweep in ``folder`` are kept."""
    return Path(folder) / RETURNS_DIR / f"{trial_id}.parquet"


def write_returns(folder: str | os.PathLike, trial_id: str, data: bytes) -> Path:
    """Store the encoded returns of a trial atomically; returns the file's path."""
    path = returns_path(folder, trial_id)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def read_returns(folder: str | os.PathLike, trial_id: str) -> pd.Series:
    """The per-bar returns of trial ``trial_id`` of the sweep in ``folder``."""
    return decode_returns(returns_path(folder, trial_id))


def daily_matrix(folder: str | os.PathLike, trial_ids: Sequence[str]) -> tuple[pd.DataFrame, int]:
    """Daily compounded returns of the trials (one column per id), as
    :func:`btdensity.runner.metrics.daily_returns` computes them for the suite's Sharpe ratio, and the
    periods per year that annualise them. The trials of a selection group share their bars, so their days;
    a day without a return (after an account was wiped out) counts as 0."""
    columns, periods = {}, 365
    for tid in trial_ids:
        bars = read_returns(folder, tid)
        periods = periods_per_year(bars.index)
        columns[tid] = daily_returns(np.cumprod(1.0 + bars.astype(float)), 1.0)
    days = pd.DataFrame(columns)
    return days.replace([np.inf, -np.inf], np.nan).fillna(0.0), periods
