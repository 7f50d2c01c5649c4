"""``BybitLiveFeed``: a live backtrader data feed of closed Bybit candles.

It backfills ``backfill`` closed bars (through :func:`feeds.fetch_bybit`, cached when ``cache_dir``
is given), then polls the exchange: every ``poll_interval`` seconds it reads the exchange's clock
and, once a candle has closed, requests the candles since the last one delivered. Each closed bar is
delivered exactly once and in order. Transient failures (network, timeouts, rate limits, a
malformed reply) are retried; when they outlast the retry budget the feed reports ``CONNBROKEN``
and keeps polling, then ``LIVE`` again once the exchange answers. Backfilled bars arrive with the
status ``DELAYED``, so a strategy can wait for ``LIVE`` before trading (``notify_data``).

A closed candle the exchange does not return (an empty or short reply) is asked for again with
backoff; the feed never moves past a closed candle it has not received. When the retries give up it
logs an ERROR naming the missing candle, reports ``CONNBROKEN`` and holds the later bars back, asking
again on every poll: a strategy must not trade on a series with a silent hole, and the candle usually
arrives late rather than never. If the exchange never fills it (an outage), stop and restart the
feed: the backfill records the hole as a gap and the feed goes on from there.
"""
from __future__ import annotations


import collections
import logging
import time

import backtrader as bt
import numpy as np
import pandas as pd

from .bybit import CandleSource, fetch_bybit, format_ms, to_ms
from .complete import complete
from .ohlcv import DataError
from .retry import FetchError, RetryPolicy
from .timeframes import timeframe_to_bt

__all__ = ["BybitLiveFeed"]

log = logging.getLogger(__name__)


class BybitLiveFeed(bt.feed.DataBase):
    """Live closed candles of a Bybit market for backtrader (``islive()`` is true).

    ``BybitLiveFeed(dataname="BTC/USDT:USDT", interval="1h", backfill=500)``. Parameters:
    ``interval`` (ccxt timeframe string), ``category`` (default: from the symbol), ``backfill``
    (closed bars delivered first), ``cache_dir`` (Parquet cache of the backfill), ``exchange`` (a
    ccxt client; default one honours ``BTDENSITY_BYBIT_URL``), ``retry`` (:class:`feeds.RetryPolicy`),
    ``poll_interval`` (seconds between polls), ``sleep`` (the waiting function, injectable),
    ``until`` (stop after the bar opening at this instant; default: run until stopped).
    """

    params = (
        ("interval", "1h"),
        ("category", None),
        ("backfill", 500),
        ("cache_dir", None),
        ("exchange", None),
        ("retry", None),
        ("poll_interval", 5.0),
        ("sleep", time.sleep),
        ("until", None),
    )

    def islive(self) -> bool:
        """True: cerebro runs bar by bar (no preload, no runonce)."""
        return True

    def haslivedata(self) -> bool:
        """True while bars are waiting to be delivered."""
        return bool(self._queue)

    def start(self) -> None:
        """Open the market, backfill, and position the poll cursor after the last backfilled bar."""
        super().start()
        symbol, p = self.p.dataname, self.p
        if p.backfill < 0:
            raise ValueError(f"backfill must be >= 0 bars; got {p.backfill}")
        if p.poll_interval <= 0:
            raise ValueError(f"poll_interval must be > 0 seconds; got {p.poll_interval}")
        self._src = CandleSource.open(symbol, p.interval, p.category, p.exchange, p.retry or RetryPolicy())
        step = self._src.step_ms
        self._timeframe, self._compression = timeframe_to_bt(pd.Timedelta(step, unit="ms"))
        self._until = to_ms(p.until, "until") if p.until is not None else None
        self._queue: collections.deque[np.ndarray] = collections.deque()
        # cursor: every candle opened before it has been queued (or did not exist)
        self._cursor = self._src.closed_before(self._src.server_time())
        if p.backfill:
            since = self._cursor - p.backfill * step
            try:
                frame = fetch_bybit(symbol, p.interval, since, self._cursor - 1, p.category, p.cache_dir,
                                    self._src.exchange, retry=self._src.retry, progress=False)
            except DataError:  # nothing closed in the backfill window (a new listing)
                frame = None
            if frame is not None:
                ts = frame.index.as_unit("ms").asi8
                self._queue.extend(np.column_stack([ts, frame.to_numpy()]))
                self.put_notification(self.DELAYED)
        self._last_ts = -1
        self._seen = bool(self._queue)  # the exchange has candles before the cursor
        self._waiting_for: int | None = None  # a closed candle not received yet

    def _poll(self) -> None:
        """Queue the candles closed since the cursor, never moving the cursor past one not received
        (transient failures and missing candles: CONNBROKEN, asked again on the next poll)."""
        try:
            end = self._src.closed_before(self._src.server_time())
            if self._until is not None:
                end = min(end, self._until + 1)
            for span in complete(self._src, self._src.windows(self._cursor, end), known_before=self._seen):
                if span.rows is None:
                    self._missing(span.start)
                    return
                self._queue.extend(span.rows.to_numpy(dtype=np.float64))
                self._seen = self._seen or not span.rows.empty
                self._cursor = span.end
        except FetchError as exc:
            if not exc.transient:
                raise
            log.warning("%s: %s; polling again in %.3gs", self.p.dataname, exc, self.p.poll_interval)
            self.put_notification(self.CONNBROKEN)
            return
        if self._waiting_for is not None:
            log.warning("%s: the %s candle of %s arrived; going on", self.p.dataname, self.p.interval,
                        format_ms(self._waiting_for))
            self._waiting_for = None
        self.put_notification(self.LIVE)

    def _missing(self, start: int) -> None:
        """Report the first closed candle at or after ``start`` that the exchange did not return."""
        step = self._src.step_ms
        bar = start + (-start % step)
        attempts = self._src.retry.attempts
        if bar != self._waiting_for:
            log.error("%s: the exchange has not returned the closed %s candle of %s after %d attempts; later "
                      "bars are held back until it does (asked again every poll)", self.p.dataname,
                      self.p.interval, format_ms(bar), attempts)
        else:
            log.warning("%s: still no %s candle of %s; later bars held back", self.p.dataname, self.p.interval,
                        format_ms(bar))
        self._waiting_for = bar
        self.put_notification(self.CONNBROKEN)

    def _finished(self) -> bool:
        return self._until is not None and self._cursor > self._until

    def _load(self) -> bool | None:
        if not self._queue and not self._finished():
            self._poll()
        while self._queue:
            row = self._queue.popleft()
            if row[0] <= self._last_ts:  # never deliver a bar twice
                continue
            self._last_ts = row[0]
            self.lines.datetime[0] = bt.date2num(pd.Timestamp(int(row[0]), unit="ms").to_pydatetime())
            self.lines.open[0], self.lines.high[0], self.lines.low[0] = row[1], row[2], row[3]
            self.lines.close[0], self.lines.volume[0] = row[4], row[5]
            self.lines.openinterest[0] = 0.0
            return True
        if self._finished():
            log.info("%s: reached until=%s", self.p.dataname, format_ms(self._until))
            return False
        self.p.sleep(self.p.poll_interval)
        return None
