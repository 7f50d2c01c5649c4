"""``fetch_bybit``: Bybit candle history through ccxt, paged, retried, cached and resumable.

Pages are fixed time windows of at most ``limit`` bars (``since`` plus ``until`` on every request),
so a page is complete whatever order or subset of a window the exchange would return first. Only
closed candles are kept (the one in progress at the exchange's clock is dropped), duplicates are
removed, rows are sorted, and gaps are reported in ``df.attrs["gaps"]``. A window that comes back
empty or short is asked again (:mod:`feeds.complete`); candles the exchange still lacks are logged
and left out of the cache's coverage, so the next run asks for them again.

The API base URL can be overridden with the environment variable ``BTDENSITY_BYBIT_URL``
(testnets, proxies, tests).
"""
from __future__ import annotations

import difflib
import logging
import os
from dataclasses import dataclass
from typing import Callable, Iterator, TypeVar

import ccxt
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .cache import SeriesCache, SeriesStore, cache_path
from .complete import Span, fill, format_ms
from .ohlcv import OHLCV_COLUMNS, DataError, validate_ohlcv
from .retry import RetryPolicy, call_with_retry

__all__ = ["BYBIT_URL_ENV", "CATEGORIES", "CandleSource", "bybit_exchange", "candles_to_frame", "fetch_bybit",
           "format_ms", "infer_category", "ohlcv_frame", "open_market", "request", "server_time",
           "timeframe_ms", "to_ms"]

log = logging.getLogger(__name__)

T = TypeVar("T")

BYBIT_URL_ENV = "BTDENSITY_BYBIT_URL"
CATEGORIES = ("linear", "spot", "inverse")
#: Bybit's largest kline page
MAX_LIMIT = 1000
#: a download this many pages long shows a progress bar
_PROGRESS_PAGES = 3


def infer_category(symbol: str, category: str | None = None) -> str:
    """Bybit category of a ccxt symbol: ``BTC/USDT`` spot, ``BTC/USDT:USDT`` linear, ``BTC/USD:BTC``
    inverse; a given ``category`` is checked instead."""
    if category is not None:
        if category not in CATEGORIES:
            raise ValueError(f"category {category!r} is not supported; use one of {list(CATEGORIES)}")
        return category
    if "/" not in symbol:
        raise ValueError(f"symbol {symbol!r} is not a ccxt symbol; use BASE/QUOTE (spot, e.g. 'BTC/USDT') "
                         "or BASE/QUOTE:SETTLE (perpetual, e.g. 'BTC/USDT:USDT')")
    pair, _, settle = symbol.partition(":")
    if not settle:
        return "spot"
    base, quote = pair.split("/", 1)
    return "inverse" if settle.split("-")[0] == base else "linear"


def bybit_exchange(category: str = "linear", url: str | None = None, timeout_ms: int = 10_000) -> ccxt.bybit:
    """A public ``ccxt.bybit`` client that loads only ``category``'s markets.

    ``url`` (default: ``$BTDENSITY_BYBIT_URL`` when set) replaces every API base URL. ccxt's rate
    limiter stays on.
    """
    if category not in CATEGORIES:
        raise ValueError(f"category {category!r} is not supported; use one of {list(CATEGORIES)}")
    exchange = ccxt.bybit({"enableRateLimit": True, "timeout": int(timeout_ms),
                           "options": {"fetchMarkets": {"types": [category]}}})
    url = url or os.environ.get(BYBIT_URL_ENV)
    if url:
        for key in exchange.urls["api"]:
            exchange.urls["api"][key] = url.rstrip("/")
    return exchange


def to_ms(when: object, name: str) -> int:
    """Epoch milliseconds of a user-given instant (str, datetime, Timestamp or int ms; naive is UTC)."""
    if isinstance(when, (int, np.integer)) and not isinstance(when, bool):
        return int(when)
    try:
        ts = pd.Timestamp(when)
    except (ValueError, TypeError):
        raise ValueError(f"{name} {when!r} is not a date or time; use ISO 8601 (2024-01-31T13:00Z), "
                         "a datetime or epoch milliseconds") from None
    if ts is pd.NaT:
        raise ValueError(f"{name} is missing")
    ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
    return int(ts.value // 1_000_000)


@dataclass
class CandleSource:
    """One market's candles from one ccxt exchange, each request retried under ``retry``.

    Built by :meth:`open`, which checks the timeframe and loads the category's markets.
    """

    exchange: ccxt.Exchange
    market: dict
    timeframe: str
    step_ms: int
    retry: RetryPolicy
    unit = "candles"

    @classmethod
    def open(cls, symbol: str, timeframe: str, category: str | None = None,
             exchange: ccxt.Exchange | None = None, retry: RetryPolicy | None = None) -> "CandleSource":
        """Check ``timeframe`` and ``symbol`` against the exchange (a clear ValueError when unknown)."""
        category = infer_category(symbol, category)
        exchange = exchange if exchange is not None else bybit_exchange(category)
        retry = retry or RetryPolicy()
        step_ms = timeframe_ms(exchange, timeframe)
        return cls(exchange, open_market(exchange, symbol, category, retry), timeframe, step_ms, retry)

    @property
    def symbol(self) -> str:
        """The market's ccxt symbol."""
        return self.market["symbol"]

    @property
    def name(self) -> str:
        """The series in messages: ``bybit kline BTC/USDT:USDT 1h``."""
        return f"{self.exchange.id} kline {self.symbol} {self.timeframe}"

    def server_time(self) -> int:
        """The exchange's clock in epoch milliseconds."""
        return server_time(self.exchange, self.retry)

    def closed_before(self, now_ms: int) -> int:
        """End (exclusive) of the open times of candles closed at ``now_ms``: a candle opened at ``t``
        is closed when ``t + step <= now``."""
        return int(now_ms) - self.step_ms + 1

    def page(self, start: int, end: int) -> np.ndarray:
        """Candles opened in ``[start, end)``, at most ``MAX_LIMIT`` bars long: an ``(n, 6)`` float array
        ``ts, open, high, low, close, volume`` sorted by time, duplicates removed (the last copy kept)."""
        base = start - start % self.step_ms  # ccxt rounds ``since`` up to the grid: never past ``start``
        if end - base > MAX_LIMIT * self.step_ms:
            raise ValueError(f"page [{start}, {end}) is longer than {MAX_LIMIT} bars")
        what = f"{self.name} {format_ms(start)} .. {format_ms(end)}"

        def call() -> list:
            # the exchange gets limit=MAX_LIMIT (params win); ccxt trims the parsed reply to its own
            # ``limit``, which must not cut a reply padded with duplicate candles
            rows = self.exchange.fetch_ohlcv(self.symbol, self.timeframe, since=base, limit=2 * MAX_LIMIT,
                                             params={"limit": MAX_LIMIT, "until": end - 1})
            if any(v is None for row in rows for v in row):
                raise ccxt.BadResponse(f"{what}: candle with a missing or non-numeric field")
            return rows

        rows = request(self.exchange, call, what, self.retry)
        arr = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
        arr = arr[(arr[:, 0] >= start) & (arr[:, 0] < end)]
        order = np.argsort(arr[:, 0], kind="stable")
        arr = arr[order]
        keep = np.r_[arr[1:, 0] != arr[:-1, 0], True] if len(arr) else np.zeros(0, dtype=bool)
        return arr[keep]

    def windows(self, start: int, end: int) -> Iterator[tuple[int, int]]:
        """Consecutive windows of at most ``MAX_LIMIT`` bars covering ``[start, end)``."""
        cursor = start
        while cursor < end:
            stop = min(end, cursor - cursor % self.step_ms + MAX_LIMIT * self.step_ms)
            yield cursor, stop
            cursor = stop

    def fetch(self, start: int, end: int) -> pd.DataFrame:
        """:meth:`page` as a frame of ``ts`` and OHLCV columns (:func:`feeds.complete.complete` asks it)."""
        return candles_to_frame(self.page(start, end))

    def lacking(self, start: int, end: int, ts: np.ndarray) -> list[tuple[int, int]]:
        """Runs of candle open times in ``[start, end)`` missing from ``ts``. Every window asked for ends at
        the exchange's clock or before, so each of them is a closed candle the exchange should have."""
        step = self.step_ms
        grid = np.arange(start + (-start % step), end, step, dtype=np.int64)
        miss = grid[~np.isin(grid, ts)]
        if not len(miss):
            return []
        cut = np.flatnonzero(np.diff(miss) != step)
        firsts, lasts = np.r_[miss[0], miss[cut + 1]], np.r_[miss[cut], miss[-1]]
        return [(int(a), int(min(b + step, end))) for a, b in zip(firsts, lasts)]

    def has_before(self, t: int) -> bool:
        """Whether the exchange has a candle opened before ``t`` (one request for the latest one)."""
        def call() -> list:
            return self.exchange.fetch_ohlcv(self.symbol, self.timeframe, limit=1, params={"until": t - 1})

        rows = request(self.exchange, call, f"{self.name} before {format_ms(t)}", self.retry)
        return any(row[0] is not None and row[0] < t for row in rows)


def timeframe_ms(exchange: ccxt.Exchange, timeframe: str) -> int:
    """Bar length of ``timeframe`` in ms; ValueError listing the supported ones when unsupported.

    Calendar months (``1M``) are not supported: their length varies.
    """
    supported = [tf for tf in exchange.timeframes if not tf.endswith("M")]
    if timeframe not in supported:
        raise ValueError(f"timeframe {timeframe!r} is not supported by {exchange.id}; "
                         f"use one of {', '.join(supported)}")
    return int(exchange.parse_timeframe(timeframe) * 1000)


def open_market(exchange: ccxt.Exchange, symbol: str, category: str, retry: RetryPolicy) -> dict:
    """The ccxt market of ``symbol``, loading only ``category``'s markets when none are loaded yet.

    An unknown symbol raises ValueError naming the closest known symbols.
    """
    if not exchange.markets:
        what = f"{exchange.id} load_markets({category})"
        options = exchange.options.setdefault("fetchMarkets", {})
        if isinstance(options, dict):
            options["types"] = [category]

        def load() -> dict:
            markets = exchange.load_markets(reload=True)
            if not markets:
                raise ccxt.BadResponse(f"{what}: no markets in the reply")
            return markets

        request(exchange, load, what, retry)
    return _find_market(exchange, symbol, category)


def server_time(exchange: ccxt.Exchange, retry: RetryPolicy) -> int:
    """The exchange's clock in epoch milliseconds."""
    return request(exchange, exchange.fetch_time, f"{exchange.id} time", retry)


def _find_market(exchange: ccxt.Exchange, symbol: str, category: str) -> dict:
    if symbol in exchange.markets:
        return exchange.markets[symbol]
    symbols = sorted(exchange.markets)
    hint = ""
    by_id = exchange.markets_by_id.get(symbol) if exchange.markets_by_id else None
    if by_id:
        hint = f" ({symbol!r} is the exchange's id of {by_id[0]['symbol']!r}: use that)"
    close = difflib.get_close_matches(symbol, symbols, n=5, cutoff=0.5)
    suggestion = f"closest known: {', '.join(close)}" if close else f"{len(symbols)} {category} symbols are listed"
    raise ValueError(f"unknown {exchange.id} {category} symbol {symbol!r}{hint}; {suggestion}")


def request(exchange: ccxt.Exchange, fn: Callable[[], T], what: str, retry: RetryPolicy) -> T:
    """``fn()`` (one ccxt call) with retries; a reply that was not JSON with ``retCode`` 0 counts as a bad response.

    (ccxt returns an empty result for a body it cannot parse, which would read as "no data".)
    """
    exchange.enableLastJsonResponse = True

    def verified() -> T:
        exchange.last_json_response = None
        result = fn()
        reply = exchange.last_json_response
        if not isinstance(reply, dict) or str(reply.get("retCode")) != "0" or result is None:
            raise ccxt.BadResponse(f"{what}: the reply was not the JSON the API promised")
        return result

    return call_with_retry(verified, what, retry)


def candles_to_frame(arr: np.ndarray) -> pd.DataFrame:
    """An ``(n, 6)`` candle array as a cache frame (``ts`` + OHLCV columns)."""
    frame = pd.DataFrame(arr[:, 1:], columns=list(OHLCV_COLUMNS))
    frame.insert(0, "ts", arr[:, 0].astype(np.int64))
    return frame


def ohlcv_frame(frame: pd.DataFrame, source: str, step_ms: int, report_gaps: bool = True) -> pd.DataFrame:
    """A cache frame as the validated OHLCV frame every feed returns (UTC index, gaps in attrs; logged unless
    ``report_gaps`` is false)."""
    index = pd.DatetimeIndex(pd.to_datetime(frame["ts"].to_numpy(dtype=np.int64), unit="ms", utc=True))
    out = pd.DataFrame(frame[list(OHLCV_COLUMNS)].to_numpy(dtype=np.float64),
                       index=index.as_unit("ns"), columns=list(OHLCV_COLUMNS))
    return validate_ohlcv(out, source=source, step=pd.Timedelta(step_ms, unit="ms"), report_gaps=report_gaps)


def fetch_bybit(symbol: str, timeframe: str, since: object, until: object = None,
                category: str | None = None, cache_dir: str | os.PathLike | None = None,
                exchange: ccxt.Exchange | None = None, *, retry: RetryPolicy | None = None,
                progress: bool = True) -> pd.DataFrame:
    """Closed Bybit candles of ``symbol`` opened in ``[since, until]`` (``until`` default: now).

    ``category`` is ``"linear"``, ``"spot"`` or ``"inverse"`` (default: inferred from the symbol).
    With ``cache_dir`` bars are cached in Parquet: only ranges not yet downloaded are requested, a
    fully cached range with an explicit ``until`` makes no request at all, and an interrupted
    download keeps what it fetched. A window that comes back empty or short is asked again; candles
    the exchange still lacks are logged as a gap and asked for again on the next run. Returns the
    :func:`feeds.load_csv` frame (UTC index, float OHLCV columns, ``attrs["gaps"]``). Raises ValueError
    for an unknown symbol or timeframe and :class:`feeds.FetchError` when the exchange rejects a
    request or stays unreachable.
    """
    category = infer_category(symbol, category)
    exchange = exchange if exchange is not None else bybit_exchange(category)
    step_ms = timeframe_ms(exchange, timeframe)
    lo = to_ms(since, "since")
    hi = to_ms(until, "until") + 1 if until is not None else None
    if hi is not None and hi <= lo:
        raise ValueError(f"until ({format_ms(hi - 1)}) is before since ({format_ms(lo)})")
    source = f"bybit {category} {symbol} {timeframe}"
    cache = (SeriesCache(cache_path(cache_dir, exchange.id, category, symbol, timeframe), OHLCV_COLUMNS)
             if cache_dir is not None else None)
    # downloaded pages are checked as they arrive; their gaps are reported once, for the range returned
    store = SeriesStore(cache, OHLCV_COLUMNS, lambda rows: ohlcv_frame(rows, source, step_ms, report_gaps=False))
    if hi is None or store.coverage.missing(lo, hi):
        src = CandleSource.open(symbol, timeframe, category, exchange, retry)
        hi = min(hi if hi is not None else np.iinfo(np.int64).max, src.closed_before(src.server_time()))
        missing = store.coverage.missing(lo, hi)
        total = sum(_bars_in(a, b, step_ms) for a, b in missing)
        with tqdm(total=total, unit="bar", desc=source, leave=False,
                  disable=not progress or total < _PROGRESS_PAGES * MAX_LIMIT) as bar:
            store.download(_tracked(src, store, missing, bar))
    rows = store.rows(lo, hi)
    if rows.empty:
        raise DataError(f"{source}: no closed candles between {format_ms(lo)} and {format_ms(hi - 1)}")
    return ohlcv_frame(rows, source, step_ms)


def _bars_in(start: int, end: int, step_ms: int) -> int:
    """How many candles open in ``[start, end)`` (open times are multiples of ``step_ms``)."""
    return -(-end // step_ms) + (-start // step_ms)


def _tracked(src: CandleSource, store: SeriesStore, missing: list[tuple[int, int]], bar: tqdm) -> Iterator[Span]:
    for span in fill(src, store.frame["ts"].to_numpy(dtype=np.int64), missing, src.windows):
        bar.update(_bars_in(span.start, span.end, src.step_ms))
        yield span
