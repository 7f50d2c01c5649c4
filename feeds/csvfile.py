"""``load_csv``: OHLCV from a CSV file, read a block of lines at a time (bounded memory), validated,
with a UTC index."""
from __future__ import annotations

import csv
import io
import itertools
import os

import numpy as np
import pandas as pd

from .csvlines import LineBlock, line_blocks, row_lines
from .ohlcv import OHLCV_COLUMNS, DataError, validate_ohlcv

__all__ = ["load_csv"]

TIME_COLUMNS = ("datetime", "timestamp", "date")
#: epoch values from this magnitude on are milliseconds (1e11 seconds would be the year 5138)
_MS_THRESHOLD = 1e11
_UNIT_NAMES = {"s": "seconds", "ms": "milliseconds"}
_NS_PER = {"s": 1e9, "ms": 1e6}
_FIRST, _LAST = pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC")
_RANGE = f"dates must lie between {_FIRST.ceil('D').date()} and {_LAST.floor('D').date()}"


def _shown(value: object, width: int = 40) -> str:
    """``repr`` of a value from the file, cut to ``width`` characters (a field can be a megabyte)."""
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def _out_of_bounds(text: str) -> bool:
    """Whether ``text`` is an ISO 8601 date pandas cannot hold (pandas 2 coerces those to NaT)."""
    try:
        pd.to_datetime(text, utc=True, format="ISO8601")
    except pd.errors.OutOfBoundsDatetime:
        return True
    except (ValueError, TypeError):
        pass
    return False


class _Times:
    """The time column, parsed a block at a time: every row must be in the format of the first row
    (ISO 8601 or epoch numbers) and, for epoch numbers, in its unit (seconds or milliseconds)."""

    def __init__(self, source: str, column: str) -> None:
        self.source, self.column = source, column
        self.first: tuple[int, str, str | None] | None = None  # row, text, epoch unit (None: ISO 8601)

    def _error(self, problem: str, text: str, row: int, hint: str = "") -> DataError:
        return DataError(f"{self.source}: {problem} {_shown(text)} in column {self.column!r} at row {row}{hint}")

    def parse(self, text: pd.Series, rows: np.ndarray) -> np.ndarray:
        """Nanoseconds since the epoch, UTC, of each row (``rows``: their line numbers)."""
        missing = text.isna().to_numpy()
        if missing.any():
            raise DataError(f"{self.source}: missing date in column {self.column!r} at row "
                            f"{rows[np.argmax(missing)]}")
        text = text.str.strip()
        if self.first is None:
            number = pd.to_numeric(text.iloc[:1], errors="coerce").iloc[0]
            unit = None if pd.isna(number) else "ms" if abs(number) >= _MS_THRESHOLD else "s"
            self.first = (int(rows[0]), text.iloc[0], unit)
        if self.first[2] is None:
            return self._iso(text, rows)
        return self._epoch(text, rows, self.first[2])

    def _unparsable(self, text: pd.Series, rows: np.ndarray, i: int) -> DataError:
        return self._error("unparsable date", text.iloc[i], rows[i], "; use ISO 8601 (2024-01-31T13:00:00Z) "
                           "or epoch seconds / milliseconds, one format for the whole column")

    def _iso(self, text: pd.Series, rows: np.ndarray) -> np.ndarray:
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        bad = parsed.isna().to_numpy()
        out = ((parsed < _FIRST) | (parsed > _LAST)).to_numpy()
        if bad.any() or out.any():
            i = int(np.argmax(bad | out))
            if bad[i] and not _out_of_bounds(text.iloc[i]):
                raise self._unparsable(text, rows, i)
            raise self._error("date", text.iloc[i], rows[i], f" is out of range: {_RANGE}")
        return pd.DatetimeIndex(parsed).as_unit("ns").asi8

    def _epoch(self, text: pd.Series, rows: np.ndarray, unit: str) -> np.ndarray:
        values = pd.to_numeric(text, errors="coerce").to_numpy()
        bad = np.isnan(values) if values.dtype.kind == "f" else np.zeros(len(values), bool)
        if bad.any():
            raise self._unparsable(text, rows, int(np.argmax(bad)))
        is_ms = np.abs(values) >= _MS_THRESHOLD
        ns = values * np.where(is_ms, _NS_PER["ms"], _NS_PER["s"])
        out = (ns < _FIRST.value) | (ns > _LAST.value)
        mixed = is_ms != (unit == "ms")
        if (out | mixed).any():
            i = int(np.argmax(out | mixed))
            own = _UNIT_NAMES["ms" if is_ms[i] else "s"]
            if out[i]:
                year = 1970 + ns[i] / 1e9 / 31_556_952  # seconds in a mean Gregorian year
                when = f": the year {np.floor(year):.0f}" if abs(year) < 1e5 else ""
                raise self._error("date", text.iloc[i], rows[i], f" is out of range (epoch {own}{when}); {_RANGE}")
            first_row, first_text, _ = self.first
            read = pd.Timestamp(int(ns[i]), tz="UTC")
            raise self._error("epoch time", text.iloc[i], rows[i], f" reads as {own} ({read}), but row {first_row} "
                              f"({_shown(first_text)}) as {_UNIT_NAMES[unit]}: the column mixes units; use one for "
                              "the whole file")
        return pd.DatetimeIndex(pd.to_datetime(values, unit=unit, utc=True)).as_unit("ns").asi8


def _header(line: bytes, source: str) -> list[str]:
    """The column names of the header line, stripped and lower-case; unnamed ones as pandas names them."""
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{source}: line 1 is not UTF-8 text: not a CSV file of bars?") from None
    names = [n.strip().lower() or f"unnamed: {i}" for i, n in enumerate(next(csv.reader([text]), []))]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(f"{source}: the header names column {_shown(name, 24)} twice")
        seen.add(name)
    return names


class _Reader:
    """Rows of a CSV file with a known header, read block by block into column arrays."""

    def __init__(self, source: str, columns: list[str]) -> None:
        self.source, self.columns = source, columns
        time_col = next((c for c in TIME_COLUMNS if c in columns), None)
        if time_col is None:
            found = [_shown(c, 24) for c in columns[:8]] + (["..."] if len(columns) > 8 else [])
            raise DataError(f"{source}: no time column; expected one of {list(TIME_COLUMNS)}, "
                            f"found [{', '.join(found)}]")
        missing = [c for c in OHLCV_COLUMNS if c not in columns]
        if missing:
            raise DataError(f"{source}: missing column(s) {missing} in the header; need {list(OHLCV_COLUMNS)}")
        self.time_col, self.times = time_col, _Times(source, time_col)
        self.needed = 1 + max(columns.index(c) for c in (time_col, *OHLCV_COLUMNS))
        self.dtypes = {c: np.float64 if c in OHLCV_COLUMNS else str for c in columns}
        self.parts: dict[str, list] = {c: [] for c in columns}
        self.next_row = 2          # while the rows are lines 2, 3, ... (no blank line between them)
        self.numbers: list[np.ndarray] | None = None   # else the line number of every row

    def add(self, block: LineBlock) -> None:
        """Parse a block of lines, checking the fields of each line and the time of each row."""
        rows = row_lines(block, self.source, len(self.columns), self.needed)
        if not len(rows):
            return
        frame = self._parse(block, rows)
        self.parts[self.time_col].append(self.times.parse(frame[self.time_col], rows))
        for col in self.columns:
            if col in OHLCV_COLUMNS:
                self.parts[col].append(pd.to_numeric(frame[col], errors="coerce").to_numpy(np.float64))
            elif col != self.time_col:
                self.parts[col].append(frame[col])
        if self.numbers is None and rows[0] == self.next_row and rows[-1] - rows[0] == len(rows) - 1:
            self.next_row += len(rows)
        else:
            if self.numbers is None:
                self.numbers = [np.arange(2, self.next_row)]
            self.numbers.append(rows)

    def _parse(self, block: LineBlock, rows: np.ndarray) -> pd.DataFrame:
        def read(dtypes: dict) -> pd.DataFrame:
            return pd.read_csv(io.BytesIO(block.data), header=None, names=self.columns, index_col=False,
                               dtype=dtypes, skipinitialspace=True, encoding="utf-8")
        where = f"lines {block.first_line}-{block.first_line + len(block.ends) - 1}"
        try:
            frame = read(self.dtypes)
        except UnicodeDecodeError as exc:
            raise self._not_utf8(block, exc) from None
        except pd.errors.ParserError as exc:
            raise DataError(f"{self.source}: {where} are not readable CSV ({' '.join(str(exc).split())})") from None
        except ValueError:  # a price that is not a number: read as text, the validation names its row
            frame = read(dict.fromkeys(self.columns, str))
        if len(frame) != len(rows):
            raise DataError(f"{self.source}: {where} do not read as one row per line: a quoted value with a "
                            "line break, or a lone carriage return?")
        return frame

    def _not_utf8(self, block: LineBlock, exc: UnicodeDecodeError) -> DataError:
        try:
            block.data.decode("utf-8")
        except UnicodeDecodeError as own:
            exc = own  # pandas' offsets are into its own buffer, not the block
        line = block.first_line + block.data.count(b"\n", 0, exc.start)
        return DataError(f"{self.source}: line {line} is not UTF-8 text: not a CSV file of bars?")

    def frame(self) -> pd.DataFrame:
        """The rows read, validated (:func:`feeds.validate_ohlcv`); the parts are released as they are joined."""
        if not self.parts[self.time_col]:
            raise DataError(f"{self.source}: no rows")
        data = {}
        for col in self.columns:
            parts, self.parts[col] = self.parts[col], []
            joined = np.concatenate(parts) if isinstance(parts[0], np.ndarray) else pd.concat(parts).array
            del parts
            if col == self.time_col:
                index = pd.DatetimeIndex(pd.to_datetime(joined, unit="ns", utc=True), name="datetime")
            else:
                data[col] = joined
        frame = pd.DataFrame(data, index=index, copy=False)
        del data
        rows = 2 if self.numbers is None else np.concatenate(self.numbers)
        return validate_ohlcv(frame, source=self.source, row_offset=rows)


def load_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Load OHLCV bars from a CSV file.

    Columns (any case): one of ``datetime``, ``timestamp``, ``date`` (epoch seconds or milliseconds,
    one unit for the whole file, or ISO 8601; naive times are taken as UTC), and ``open, high, low,
    close, volume``. Returns a float DataFrame indexed by UTC time. Rows are numbered as the file's
    lines (the header is line 1). The file is read a few megabytes at a time, so memory stays a small
    multiple of the bars' own size. Impossible data raises :class:`feeds.DataError` naming the row
    (a line longer than a megabyte, or with more fields than the header, as soon as it is read);
    gaps are reported in ``df.attrs["gaps"]``.
    """
    source = os.fspath(path)
    if not os.path.isfile(source):
        raise FileNotFoundError(f"CSV file not found: {source}")
    with open(source, "rb") as file:
        blocks = line_blocks(file, source)
        first = next(blocks, None)
        if first is None:
            raise DataError(f"{source}: empty file")
        header, first = first.split_first()
        reader = _Reader(source, _header(header, source))
        for block in itertools.chain([first], blocks):
            reader.add(block)
    return reader.frame()
