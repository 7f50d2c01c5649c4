"""Parquet cache of downloaded time series, one file per (exchange, category, symbol, series).

A file holds rows keyed by an int64 millisecond time column ``ts`` plus float columns, and in its
schema metadata the *coverage*: the time intervals that were fully downloaded (so a stretch before
a series' first row is not fetched again, while one never fetched, or one the exchange lacked, is).
Writes are atomic (temporary file in the same directory, fsync, rename). Reads verify Parquet page checksums, the
schema, the row count and the rows themselves; a file that fails any check is reported, moved
aside (``*.corrupt``) and treated as absent, never used.
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from btdensity.atomic import atomic_path

from .complete import merge_rows

__all__ = ["CacheCorrupt", "Coverage", "SeriesCache", "SeriesStore", "cache_path", "empty_frame"]

log = logging.getLogger(__name__)

_FORMAT = "1"
_META_FORMAT = b"btdensity.format"
_META_COVERAGE = b"btdensity.coverage"
_META_ROWS = b"btdensity.rows"
#: a download in progress is written to the cache every this many pages (and on any exit)
CHECKPOINT_PAGES = 10


class CacheCorrupt(ValueError):
    """A cache file that cannot be trusted; the message says which check failed."""


@dataclass(frozen=True)
class Coverage:
    """Disjoint, sorted, half-open ``[start, end)`` millisecond intervals."""

    intervals: tuple[tuple[int, int], ...] = ()

    def add(self, start: int, end: int) -> "Coverage":
        """This coverage with ``[start, end)`` added (touching intervals merge)."""
        if end <= start:
            return self
        merged: list[list[int]] = []
        for lo, hi in sorted(self.intervals + ((int(start), int(end)),)):
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        return Coverage(tuple((lo, hi) for lo, hi in merged))

    def missing(self, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of ``[start, end)`` not covered, in time order."""
        out, cursor = [], int(start)
        for lo, hi in self.intervals:
            if hi <= cursor or lo >= end:
                continue
            if lo > cursor:
                out.append((cursor, min(lo, end)))
            cursor = max(cursor, hi)
        if cursor < end:
            out.append((cursor, int(end)))
        return out

    def contains(self, ts: np.ndarray) -> np.ndarray:
        """Mask of the times in ``ts`` (int64 ms) that lie inside the coverage."""
        inside = np.zeros(len(ts), dtype=bool)
        for lo, hi in self.intervals:
            inside |= (ts >= lo) & (ts < hi)
        return inside


def cache_path(cache_dir: str | os.PathLike, exchange: str, category: str, symbol: str,
               series: str) -> Path:
    """``cache_dir/<exchange>_<category>_<symbol>_<series>.parquet`` with the symbol made file-safe."""
    safe = re.sub(r"[^A-Za-z0-9.]+", "-", symbol).strip("-")
    return Path(cache_dir) / f"{exchange}_{category}_{safe}_{series}.parquet"


def empty_frame(columns: tuple[str, ...]) -> pd.DataFrame:
    """A frame with no rows: ``ts`` (int64 ms) and float ``columns``."""
    frame = pd.DataFrame({c: np.array([], dtype=np.float64) for c in columns})
    frame.insert(0, "ts", np.array([], dtype=np.int64))
    return frame


class SeriesCache:
    """One cache file of rows ``ts`` (int64 ms, strictly increasing) and float ``columns``."""

    def __init__(self, path: str | os.PathLike, columns: tuple[str, ...]) -> None:
        self.path = Path(path)
        self.columns = tuple(columns)

    def load(self) -> tuple[pd.DataFrame, Coverage]:
        """The cached rows and coverage; empty when there is no usable file (a bad one is moved aside)."""
        if not self.path.exists():
            return empty_frame(self.columns), Coverage()
        try:
            return self._read()
        except Exception as exc:  # any failure to read or verify means: do not trust the file
            bad = self.path.with_name(self.path.name + ".corrupt")
            os.replace(self.path, bad)
            log.warning("cache file %s is corrupt (%s); moved to %s and downloading again",
                        self.path, exc, bad.name)
            return empty_frame(self.columns), Coverage()

    def _read(self) -> tuple[pd.DataFrame, Coverage]:
        table = pq.read_table(self.path, page_checksum_verification=True)
        meta = table.schema.metadata or {}
        if meta.get(_META_FORMAT) != _FORMAT.encode():
            raise CacheCorrupt(f"unknown or missing format marker {meta.get(_META_FORMAT)!r}")
        expected = ["ts", *self.columns]
        if table.column_names != expected:
            raise CacheCorrupt(f"columns {table.column_names}, expected {expected}")
        rows = int(meta.get(_META_ROWS, b"-1"))
        if rows != table.num_rows:
            raise CacheCorrupt(f"{table.num_rows} rows, the footer says {rows}")
        coverage = Coverage(tuple((int(lo), int(hi)) for lo, hi in json.loads(meta[_META_COVERAGE])))
        iv = coverage.intervals
        if any(hi <= lo for lo, hi in iv) or any(a[1] >= b[0] for a, b in zip(iv, iv[1:])):
            raise CacheCorrupt(f"malformed coverage {coverage.intervals}")
        frame = table.to_pandas()
        ts = frame["ts"].to_numpy(dtype=np.int64)
        if len(ts) and (np.diff(ts) <= 0).any():
            raise CacheCorrupt("times are not strictly increasing")
        if not coverage.contains(ts).all():
            raise CacheCorrupt("rows outside the recorded coverage")
        values = frame[list(self.columns)].to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            raise CacheCorrupt("non-finite values")
        return frame, coverage

    def save(self, frame: pd.DataFrame, coverage: Coverage) -> None:
        """Write ``frame`` (columns ``ts`` + the cache's columns) and its coverage atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.table({"ts": pa.array(frame["ts"].to_numpy(dtype=np.int64), pa.int64()),
                          **{c: pa.array(frame[c].to_numpy(dtype=np.float64), pa.float64())
                             for c in self.columns}})
        table = table.replace_schema_metadata({
            _META_FORMAT: _FORMAT,
            _META_COVERAGE: json.dumps([list(iv) for iv in coverage.intervals]),
            _META_ROWS: str(table.num_rows),
        })
        with atomic_path(self.path) as tmp:
            pq.write_table(table, tmp, write_page_checksum=True)


class SeriesStore:
    """Rows and coverage of one series (a cache file, or memory only when ``cache`` is None) that a
    download extends page by page.

    ``check(rows)`` validates newly downloaded rows before they are stored (raise to refuse them).
    Pages are merged and written every :data:`CHECKPOINT_PAGES` pages and whenever the download
    ends, also by an error or an interrupt, so an interrupted download resumes where it stopped.
    """

    def __init__(self, cache: SeriesCache | None, columns: tuple[str, ...],
                 check: Callable[[pd.DataFrame], object]) -> None:
        self.cache = cache
        self.check = check
        self.frame, self.coverage = cache.load() if cache is not None else (empty_frame(columns), Coverage())
        self._pending: list[pd.DataFrame] = []
        self._pending_cov = Coverage()

    def rows(self, start: int, end: int) -> pd.DataFrame:
        """Stored rows with ``start <= ts < end``."""
        ts = self.frame["ts"].to_numpy(dtype=np.int64)
        return self.frame[(ts >= start) & (ts < end)].reset_index(drop=True)

    def download(self, pages: Iterator[tuple[int, int, pd.DataFrame | None]]) -> None:
        """Store every ``(start, end, rows)`` page: ``rows`` are all there is in ``[start, end)``; ``rows``
        None is a gap the exchange lacks (nothing is recorded for it, so a later download asks again)."""
        try:
            for start, end, rows in pages:
                if rows is None:
                    continue
                self._pending.append(rows)
                self._pending_cov = self._pending_cov.add(start, end)
                if len(self._pending) >= CHECKPOINT_PAGES:
                    self._flush()
        except BaseException:
            try:
                self._flush()
            except Exception as exc:  # keep the original error; the file keeps its last good state
                log.warning("could not save the partial download: %s", exc)
            raise
        self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        new, covered = pd.concat(self._pending, ignore_index=True), self._pending_cov
        self._pending, self._pending_cov = [], Coverage()
        if len(new):
            self.check(new)  # refused rows are dropped with their coverage
        self.frame = merge_rows(self.frame, new)
        for lo, hi in covered.intervals:
            self.coverage = self.coverage.add(lo, hi)
        if self.cache is not None:
            self.cache.save(self.frame, self.coverage)
