"""Complete windows of an exchange's time series.

An exchange can answer a request with success and no rows, or only some of them, inside a span where it
has rows. So a window that comes back empty or short is asked again (with the backoff of the series'
:class:`feeds.RetryPolicy`) before anything is recorded, and what the exchange still lacks after the
retries is a gap (a :class:`Span` without rows): reported, never recorded as downloaded.

Before a series' first row (a listing) an exchange legitimately has nothing. A span there counts as
complete only when the exchange, asked again with backoff, has no row at all before the first row it
gave. Empty windows at the start of a download are not asked again one by one: one question ("any row
before?") settles them all.
"""
from __future__ import annotations

import logging
from typing import Callable, Iterable, Iterator, NamedTuple, Protocol

import numpy as np
import pandas as pd

from .retry import RetryPolicy

__all__ = ["Series", "Span", "complete", "fill", "format_ms", "format_span", "merge_rows"]

log = logging.getLogger(__name__)

_NO_TS = np.zeros(0, dtype=np.int64)


class Series(Protocol):
    """One series of one market, as :func:`complete` asks for it: rows are frames with an int64 ``ts``
    column (epoch ms), sorted and unique, plus value columns."""

    name: str  # for messages, e.g. "bybit kline BTC/USDT:USDT 1h"
    unit: str  # what a row is, for messages: "candles"
    retry: RetryPolicy

    def fetch(self, start: int, end: int) -> pd.DataFrame:
        """The rows the exchange gives for ``[start, end)`` (transient errors already retried)."""

    def lacking(self, start: int, end: int, ts: np.ndarray) -> list[tuple[int, int]]:
        """The spans of ``[start, end)`` that should hold rows but hold none of the times ``ts``."""

    def has_before(self, t: int) -> bool:
        """Whether the exchange gives any row earlier than ``t`` (one request)."""


class Span(NamedTuple):
    """``[start, end)`` and all the rows the exchange has there; ``rows`` None: a gap the exchange lacks."""

    start: int
    end: int
    rows: pd.DataFrame | None


def format_ms(ms: int) -> str:
    """Epoch milliseconds as a short ISO 8601 UTC string (for messages)."""
    return pd.Timestamp(int(ms), unit="ms", tz="UTC").strftime("%Y-%m-%dT%H:%MZ")


def format_span(start: int, end: int) -> str:
    """``[start, end)`` for messages."""
    return f"[{format_ms(start)}, {format_ms(end)})"


def merge_rows(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """The rows of both, sorted by ``ts``, one per time (the newer copy kept)."""
    both = pd.concat([old, new], ignore_index=True) if len(old) else new
    return both.drop_duplicates("ts", keep="last").sort_values("ts", kind="stable").reset_index(drop=True)


def _ts(rows: pd.DataFrame) -> np.ndarray:
    return rows["ts"].to_numpy(dtype=np.int64)


def _describe(spans: list[tuple[int, int]]) -> str:
    more = f" and {len(spans) - 1} more span(s)" if len(spans) > 1 else ""
    return format_span(*spans[0]) + more


def _asked(series: Series, start: int, end: int, rows: pd.DataFrame) -> Iterator[Span]:
    """``[start, end)`` given its first reply ``rows``: asked again while it lacks rows, then split into
    covered spans and gaps."""
    policy = series.retry
    lacking = series.lacking(start, end, _ts(rows))
    for retry in range(policy.attempts - 1):
        if not lacking:
            break
        wait = policy.delay(retry)
        log.warning("%s: no %s for %s in a successful reply; asking again (%d/%d) in %.2fs", series.name,
                    series.unit, _describe(lacking), retry + 1, policy.attempts - 1, wait)
        policy.sleep(wait)
        rows = merge_rows(rows, series.fetch(start, end))
        lacking = series.lacking(start, end, _ts(rows))
    ts, cursor = _ts(rows), start
    for lo, hi in lacking:
        log.warning("%s: the exchange still has no %s for %s after %d attempts: a gap, not recorded as "
                    "downloaded (asked again next time)", series.name, series.unit, format_span(lo, hi),
                    policy.attempts)
        if lo > cursor:
            yield Span(cursor, lo, rows[(ts >= cursor) & (ts < lo)].reset_index(drop=True))
        yield Span(lo, hi, None)
        cursor = hi
    if cursor < end:
        yield Span(cursor, end, rows[(ts >= cursor) & (ts < end)].reset_index(drop=True))


def _none_before(series: Series, t: int) -> bool:
    """Whether the exchange has no row before ``t``, asked up to the policy's attempts (with backoff)."""
    policy = series.retry
    for retry in range(policy.attempts):
        if series.has_before(t):
            return False
        if retry + 1 < policy.attempts:
            wait = policy.delay(retry)
            log.info("%s: no %s before %s; asking again (%d/%d) in %.2fs", series.name, series.unit,
                     format_ms(t), retry + 1, policy.attempts - 1, wait)
            policy.sleep(wait)
    log.info("%s: no %s before %s after %d attempts: the series starts there", series.name, series.unit,
             format_ms(t), policy.attempts)
    return True


def complete(series: Series, windows: Iterable[tuple[int, int]], known_before: bool = True,
             first_after: int | None = None) -> Iterator[Span]:
    """Spans covering the consecutive ``windows`` in time order, each window asked again while it lacks rows.

    ``known_before``: the exchange has rows before the first window (so none of it is before the listing).
    ``first_after``: the first row known after the windows, if any. Empty leading windows are complete
    when the exchange has no row before the first row found (in them, or ``first_after``); when no row
    is found or known at all and the exchange has none before their end, a listing still to come cannot
    be told from a gap, so nothing is yielded for them; otherwise each is asked again.
    """
    deferred: list[tuple[int, int]] = []  # leading windows that came back empty
    empty = None
    for start, end in windows:
        rows = series.fetch(start, end)
        if not known_before and rows.empty:
            deferred.append((start, end))
            empty = rows
            continue
        if not known_before:
            known_before, first = True, int(rows["ts"].iloc[0])
            lead = deferred[0][0] if deferred else start
            if not series.lacking(lead, first, _NO_TS) or _none_before(series, first):
                if first > lead:
                    yield Span(lead, first, rows.iloc[:0])  # before the first row: nothing to have
                start = first
            else:
                for a, b in deferred:
                    yield from _asked(series, a, b, rows.iloc[:0])
            deferred = []
        yield from _asked(series, start, end, rows)
    if not deferred:
        return
    lead, last = deferred[0][0], deferred[-1][1]
    if not series.lacking(lead, last, _NO_TS) or (first_after is not None and _none_before(series, first_after)):
        yield Span(lead, last, empty)  # nothing to have there, or all before the first row
    elif first_after is None and _none_before(series, last):
        log.warning("%s: no %s at all before %s; nothing recorded for %s", series.name, series.unit,
                    format_ms(last), format_span(lead, last))
    else:
        for a, b in deferred:
            yield from _asked(series, a, b, empty)


def fill(series: Series, stored: np.ndarray, missing: list[tuple[int, int]],
         windows: Callable[[int, int], Iterable[tuple[int, int]]]) -> Iterator[Span]:
    """:func:`complete` over each interval of ``missing`` (split by ``windows``), knowing the times of the
    rows already ``stored``."""
    seen = False
    for a, b in missing:
        after = stored[stored >= b]
        for span in complete(series, windows(a, b), known_before=seen or bool((stored < a).any()),
                             first_after=int(after[0]) if len(after) else None):
            seen = seen or (span.rows is not None and len(span.rows) > 0)
            yield span
