"""``fetch_funding_rates``: funding-rate history of a Bybit perpetual, paged by time window.

ccxt's ``fetch_funding_rate_history`` answers depend on ``limit`` (ccxt issue #27745: without an
explicit end it derives one from ``limit`` and trims the result to ``limit``), so every request here
gives both ends of a window and the window is split in two whenever the reply is as long as the
page limit, i.e. whenever it may have been cut short. Rows are cached like candles.
"""
from __future__ import annotations

import logging
import os

import ccxt
import numpy as np
import pandas as pd

from .bybit import bybit_exchange, format_ms, infer_category, open_market, request, server_time, to_ms
from .cache import SeriesCache, SeriesStore, cache_path
from .ohlcv import DataError, find_gaps
from .retry import RetryPolicy

__all__ = ["FUNDING_LIMIT", "fetch_funding_rates"]

#: Bybit's largest funding-history page
FUNDING_LIMIT = 200
_COLUMNS = ("funding_rate",)

log = logging.getLogger(__name__)


def _check(rows: pd.DataFrame) -> None:
    rates = rows["funding_rate"].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(rates) | (np.abs(rates) >= 1.0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"impossible funding rate {rates[i]!r} at {format_ms(int(rows['ts'].iloc[i]))}")


def _window(exchange: ccxt.Exchange, market: dict, start: int, end: int, retry: RetryPolicy) -> pd.DataFrame:
    """Funding rows with ``start <= ts < end`` from one request."""
    what = f"{exchange.id} funding {market['symbol']} {format_ms(start)} .. {format_ms(end)}"

    def call() -> list:
        rows = exchange.fetch_funding_rate_history(market["symbol"], since=start, limit=FUNDING_LIMIT,
                                                   params={"until": end - 1})
        if any(r.get("timestamp") is None or r.get("fundingRate") is None for r in rows):
            raise ccxt.BadResponse(f"{what}: entry with a missing or non-numeric field")
        return rows

    rows = request(exchange, call, what, retry)
    frame = pd.DataFrame({"ts": np.array([r["timestamp"] for r in rows], dtype=np.int64),
                          "funding_rate": np.array([r["fundingRate"] for r in rows], dtype=np.float64)})
    frame = frame[(frame["ts"] >= start) & (frame["ts"] < end)]
    return frame.drop_duplicates("ts", keep="last").sort_values("ts").reset_index(drop=True)


def fetch_funding_rates(symbol: str, since: object, until: object = None,
                        cache_dir: str | os.PathLike | None = None, exchange: ccxt.Exchange | None = None,
                        *, retry: RetryPolicy | None = None) -> pd.DataFrame:
    """Funding rates of a Bybit perpetual settled in ``[since, until]`` (``until`` default: now).

    Returns a frame indexed by UTC settlement time with a float column ``funding_rate`` (a fraction
    per funding interval); missing settlements are reported in ``attrs["gaps"]``. With
    ``cache_dir`` only ranges not yet downloaded are requested.
    """
    category = infer_category(symbol)
    if category == "spot":
        raise ValueError(f"{symbol!r} is a spot symbol and has no funding; use a perpetual, "
                         "e.g. 'BTC/USDT:USDT'")
    exchange = exchange if exchange is not None else bybit_exchange(category)
    retry = retry or RetryPolicy()
    lo = to_ms(since, "since")
    hi = to_ms(until, "until") + 1 if until is not None else None
    if hi is not None and hi <= lo:
        raise ValueError(f"until ({format_ms(hi - 1)}) is before since ({format_ms(lo)})")
    cache = (SeriesCache(cache_path(cache_dir, exchange.id, category, symbol, "funding"), _COLUMNS)
             if cache_dir is not None else None)
    store = SeriesStore(cache, _COLUMNS, _check)
    interval_ms: int | None = None  # from the market when it is loaded; else the median spacing
    if hi is None or store.coverage.missing(lo, hi):
        market = open_market(exchange, symbol, category, retry)
        if not market.get("swap"):
            raise ValueError(f"{symbol!r} is not a perpetual swap; funding rates exist for perpetuals only")
        interval_ms = int(market["info"].get("fundingInterval") or 480) * 60_000
        # a settlement at ``t`` is known once the exchange clock has reached ``t``
        hi = min(hi if hi is not None else np.iinfo(np.int64).max, server_time(exchange, retry) + 1)
        # half the page limit per window: room for a shorter funding interval in the past
        span = interval_ms * FUNDING_LIMIT // 2

        def pages():
            for a, b in store.coverage.missing(lo, hi):
                todo = [(s, min(b, s + span)) for s in range(a, b, span)]
                while todo:
                    start, end = todo.pop(0)
                    rows = _window(exchange, market, start, end, retry)
                    if len(rows) >= FUNDING_LIMIT and end - start > 1:
                        mid = (start + end) // 2
                        todo[:0] = [(start, mid), (mid, end)]  # possibly cut short: split and refetch
                        continue
                    yield start, end, rows

        store.download(pages())
    rows = store.rows(lo, hi)
    if rows.empty:
        raise DataError(f"bybit {symbol} funding: no settlements between {format_ms(lo)} and {format_ms(hi - 1)}")
    index = pd.DatetimeIndex(pd.to_datetime(rows["ts"].to_numpy(dtype=np.int64), unit="ms", utc=True),
                             name="datetime").as_unit("ns")
    out = pd.DataFrame({"funding_rate": rows["funding_rate"].to_numpy(dtype=np.float64)}, index=index)
    gaps = find_gaps(index, pd.Timedelta(interval_ms, unit="ms") if interval_ms else None)
    out.attrs["gaps"] = gaps
    if gaps.count:
        log.warning("bybit %s funding: %s", symbol, gaps)
    return out
