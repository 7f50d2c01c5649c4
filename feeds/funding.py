"""``fetch_funding_rates``: funding-rate history of a Bybit perpetual, paged by time window.

ccxt's ``fetch_funding_rate_history`` answers depend on ``limit`` (ccxt issue #27745: without an
explicit end it derives one from ``limit`` and trims the result to ``limit``), so every request here
gives both ends of a window and the window is split in two whenever the reply is as long as the
page limit, i.e. whenever it may have been cut short. A window that comes back empty, or whose
settlements stop short of either end by more than an interval, is asked again (:mod:`feeds.complete`);
what the exchange still lacks is logged and not recorded as downloaded. Rows are cached like candles.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import ccxt
import numpy as np
import pandas as pd

from .bybit import bybit_exchange, format_ms, infer_category, open_market, request, server_time, to_ms
from .cache import SeriesCache, SeriesStore, cache_path
from .complete import fill
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


@dataclass
class _Funding:
    """The funding history of one perpetual as :func:`feeds.complete.complete` asks for it."""

    exchange: ccxt.Exchange
    market: dict
    interval_ms: int
    retry: RetryPolicy
    unit = "settlements"

    @property
    def name(self) -> str:
        return f"{self.exchange.id} funding {self.market['symbol']}"

    def fetch(self, start: int, end: int) -> pd.DataFrame:
        """Settlements in ``[start, end)``; a reply as long as the page limit may be cut: split and ask both halves."""
        rows = _window(self.exchange, self.market, start, end, self.retry)
        if len(rows) < FUNDING_LIMIT or end - start <= 1:
            return rows
        mid = (start + end) // 2
        return pd.concat([self.fetch(start, mid), self.fetch(mid, end)], ignore_index=True)

    def lacking(self, start: int, end: int, ts: np.ndarray) -> list[tuple[int, int]]:
        """Nothing where a settlement is due, or settlements that stop short of an end of ``[start, end)`` by
        more than the interval (or the widest spacing in the reply: intervals were longer in the past)."""
        if not len(ts):
            return [(start, end)] if start + (-start % self.interval_ms) < end else []
        slack = max(self.interval_ms, int(np.diff(ts).max()) if len(ts) > 1 else 0)
        out = [(start, int(ts[0]))] if ts[0] - start >= slack else []
        return out + ([(int(ts[-1]) + 1, end)] if end - ts[-1] > slack else [])

    def has_before(self, t: int) -> bool:
        """Whether the exchange has a settlement before ``t`` (one request for the latest one)."""
        def call() -> list:
            return self.exchange.fetch_funding_rate_history(self.market["symbol"], limit=1, params={"until": t - 1})

        rows = request(self.exchange, call, f"{self.name} before {format_ms(t)}", self.retry)
        return any(r.get("timestamp") is not None and r["timestamp"] < t for r in rows)


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
        series = _Funding(exchange, market, interval_ms, retry)
        store.download(fill(series, store.frame["ts"].to_numpy(dtype=np.int64), store.coverage.missing(lo, hi),
                            lambda a, b: [(s, min(b, s + span)) for s in range(a, b, span)]))
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
