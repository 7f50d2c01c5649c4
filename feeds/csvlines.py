"""A text file read as blocks of whole lines, with a bound on the length of a line, and the fields of
each line: how :func:`feeds.load_csv` reads a file of any size in bounded memory, and stops at the
first line that cannot be a row of bars (too long, too many or too few fields) without reading on."""
from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

import numpy as np

from .ohlcv import DataError

__all__ = ["BLOCK_BYTES", "MAX_LINE_BYTES", "LineBlock", "line_blocks", "row_lines"]

#: bytes read at a time; a block holds the whole lines among them
BLOCK_BYTES = 4 << 20
#: the longest line accepted; a row of bars is a few dozen bytes
MAX_LINE_BYTES = 1 << 20

_NL, _COMMA = ord("\n"), ord(",")


class LineBlock(NamedTuple):
    """Whole lines of a file: ``data`` ends with a newline, ``ends[i]`` is the offset of line
    ``first_line + i``'s newline."""

    first_line: int
    data: bytes
    ends: np.ndarray

    def split_first(self) -> tuple[bytes, LineBlock]:
        """The first line (without its line break) and the block of the lines after it."""
        cut = int(self.ends[0]) + 1
        return self.data[:cut].rstrip(b"\r\n"), LineBlock(self.first_line + 1, self.data[cut:], self.ends[1:] - cut)


def _too_long(source: str, line: int, limit: int) -> DataError:
    return DataError(f"{source}: line {line} is longer than {limit} bytes: not a CSV file of bars?")


def line_blocks(file: BinaryIO, source: str, block_bytes: int | None = None,
                max_line: int | None = None) -> Iterator[LineBlock]:
    """The file's lines, about ``block_bytes`` (default :data:`BLOCK_BYTES`) at a time; a line longer
    than ``max_line`` bytes (default :data:`MAX_LINE_BYTES`) raises :class:`DataError` naming it once
    that many bytes of it are read (the rest is never read). A last line without a line break gets one."""
    block_bytes, max_line = block_bytes or BLOCK_BYTES, max_line or MAX_LINE_BYTES
    rest, line = b"", 1
    while True:
        chunk = file.read(block_bytes)
        buf = rest + chunk if rest else chunk
        if not chunk and buf and not buf.endswith(b"\n"):
            buf += b"\n"
        cut = buf.rfind(b"\n") + 1
        if cut:
            data = buf[:cut] if cut < len(buf) else buf
            ends = np.flatnonzero(np.frombuffer(data, np.uint8) == _NL)
            lengths = np.diff(ends, prepend=-1) - 1
            if lengths.max() > max_line:
                raise _too_long(source, line + int(np.argmax(lengths > max_line)), max_line)
            yield LineBlock(line, data, ends)
            line += len(ends)
        rest = buf[cut:]
        if len(rest) > max_line:
            raise _too_long(source, line, max_line)
        if not chunk:
            return


def _quoted_fields(line: str) -> int:
    try:
        return len(next(csv.reader([line.rstrip("\r")]), []))
    except csv.Error:  # a carriage return inside the line: not a row the csv module can split
        return line.count(",") + 1


def _field_counts(block: LineBlock) -> np.ndarray:
    """Fields on each line: commas + 1, or as the csv module splits the line when there are quotes."""
    if b'"' in block.data:
        lines = block.data.decode("utf-8", "replace").split("\n")[:-1]
        return np.fromiter(map(_quoted_fields, lines), np.int64, len(lines))
    commas = np.flatnonzero(np.frombuffer(block.data, np.uint8) == _COMMA)
    return np.diff(np.searchsorted(commas, block.ends), prepend=0) + 1


def row_lines(block: LineBlock, source: str, columns: int, needed: int) -> np.ndarray:
    """The line numbers of the block's rows (its lines that are not blank).

    A line with more fields than the header's ``columns``, or with fewer than ``needed`` (the fields
    up to the last column a row must have), raises :class:`DataError` naming it.
    """
    fields = _field_counts(block)
    odd = np.flatnonzero((fields > columns) | (fields < needed))
    blank = []
    for i in odd:
        start = int(block.ends[i - 1]) + 1 if i else 0
        if fields[i] <= 1 and not block.data[start:int(block.ends[i])].strip(b" \t\r"):
            blank.append(i)
            continue
        count = int(fields[i])
        raise DataError(f"{source}: line {block.first_line + i} has {count} field{'s' * (count != 1)}, "
                        f"the header has {columns}")
    return np.delete(np.arange(block.first_line, block.first_line + len(fields)), blank)
