"""A local HTTP server that speaks the Bybit v5 public market API (the endpoints ccxt 4.5.90's bybit
client calls: instruments-info, kline, funding/history, time), with a settable clock and injectable
faults, plus fixtures that start it on loopback and point a real ``ccxt.bybit`` client at it.

Candles are a deterministic function of (symbol, interval, open time); ``FakeBybit.expected`` builds
the frame of closed candles the server holds for a range: the known truth tests compare against.
"""
from __future__ import annotations

import json
import math
import random
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pandas as pd
import pytest

from btdensity.feeds import OHLCV_COLUMNS
from btdensity.feeds.bybit import bybit_exchange
from btdensity.feeds.retry import RetryPolicy

HOUR = 3_600_000
FUNDING_MS = 8 * HOUR
T0 = 1_704_067_200_000  # 2024-01-01T00:00Z
INTERVALS = {"1": 60_000, "3": 180_000, "5": 300_000, "15": 900_000, "30": 1_800_000, "60": HOUR,
             "120": 2 * HOUR, "240": 4 * HOUR, "360": 6 * HOUR, "720": 12 * HOUR, "D": 24 * HOUR}
BASE_PRICE = {"BTC": 40_000.0, "ETH": 2_300.0, "SOL": 100.0}
#: successful replies that lack rows: ``list: []``, ``list: null``, the newer half of the rows only
PAGE_FAULTS = ("empty", "null", "half")
#: the body of the ``"418"`` fault: a Cloudflare-style block page, not JSON
CLOUDFLARE_BLOCK_PAGE = ("<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare</title></head>"
                         "<body><h1>Sorry, you have been blocked</h1><p>Cloudflare Ray ID: 8a1b2c3d4e5f6789</p>"
                         "</body></html>")


def _instrument(category: str, base: str, quote: str, settle: str | None) -> dict:
    item = {"symbol": base + quote, "baseCoin": base, "quoteCoin": quote, "status": "Trading",
            "lotSizeFilter": {"basePrecision": "0.000001", "minOrderQty": "0.001", "maxOrderQty": "100",
                              "qtyStep": "0.001", "minNotionalValue": "5"},
            "priceFilter": {"tickSize": "0.01", "minPrice": "0.01", "maxPrice": "1000000"}}
    if category != "spot":
        item.update({"contractType": "LinearPerpetual" if category == "linear" else "InversePerpetual",
                     "settleCoin": settle, "fundingInterval": 480, "launchTime": "1585526400000",
                     "leverageFilter": {"minLeverage": "1", "maxLeverage": "100", "leverageStep": "0.01"}})
    return item


INSTRUMENTS = {
    "linear": [_instrument("linear", b, "USDT", "USDT") for b in ("BTC", "ETH", "SOL")],
    "spot": [_instrument("spot", b, "USDT", None) for b in ("BTC", "ETH")],
    "inverse": [_instrument("inverse", "BTC", "USD", "BTC")],
}


def candle(symbol_id: str, step: int, t: int) -> list[float]:
    """The closed candle ``[t, open, high, low, close, volume]`` of a market (deterministic)."""
    base = next(v for k, v in BASE_PRICE.items() if symbol_id.startswith(k))
    k = t // step

    def price(i: int) -> float:
        return round(base * math.exp(0.03 * math.sin(i * 0.05) + 0.01 * math.sin(i * 0.31)), 2)

    o, c = price(k), price(k + 1)
    h = round(max(o, c) * (1 + 0.002 * (1 + math.sin(k * 0.7))), 2)
    lo = round(min(o, c) * (1 - 0.002 * (1 + math.cos(k * 0.9))), 2)
    volume = round(10 + (k * 7919 % 101) / 10, 3)
    return [t, o, max(h, o, c), min(lo, o, c), c, volume]


def funding_rate(t: int) -> float:
    """The funding rate settled at ``t`` (deterministic)."""
    return round(0.0001 * math.sin(t / FUNDING_MS * 0.13) + 0.00005, 8)


class FakeBybit:
    """State and behaviour of the fake exchange. All times in epoch ms.

    ``now``: the server clock (candles exist up to it; the one in progress is served too, with
    provisional values, as Bybit does). ``listed``: first candle. ``missing``: open times with no
    candle (an exchange outage). ``duplicates`` / ``shuffle``: kline pages repeat candles / come
    in random order. ``inject(kind, path, times)`` queues faults: HTTP statuses ``"408"``, ``"429"``,
    ``"500"``, ``"502"``, ``"503"``, ``"504"`` (an HTML body), ``"418"`` (a Cloudflare-style block page),
    ``"timeout"`` (reply after ``timeout_sleep`` s), ``"reset"`` (close the connection),
    ``"malformed"`` (truncated JSON), ``"badnumber"`` (a non-numeric field), ``"retcode:N"``, the
    successful replies that lack rows :data:`PAGE_FAULTS` (``"empty"``: ``list: []``, ``"null"``:
    ``list: null``, ``"half"``: only the newer half of the rows), and ``"ok"`` (a normal reply: queue
    ``"ok"`` first to let some requests through). ``fail_pages(kind, lo, hi)``: every request for a
    page starting in ``[lo, hi)`` gets the page fault ``kind`` (the exchange lacks those rows until
    ``page_faults`` is cleared; requests without a start, "the latest row before t", are spared).
    ``clock_speed``: let the clock run (simulated seconds per wall second) for tests of real-time
    loops. ``funding_ms``: spacing of funding settlements (the instruments still announce 8 h).
    """

    def __init__(self, now: int, listed: int = T0 - 400 * 24 * HOUR) -> None:
        self._now, self._wall, self.clock_speed = now, time.monotonic(), 0.0
        self.listed = listed
        self.missing: set[int] = set()
        self.duplicates = False
        self.shuffle = False
        self.timeout_sleep = 2.0  # well past the client timeout the "timeout" fault tests use
        self.funding_ms = FUNDING_MS
        self.requests: list[tuple[str, dict]] = []
        self.faults: deque[tuple[str, str]] = deque()
        self.page_faults: list[tuple[str, str, int, int]] = []
        self.lock = threading.Lock()
        self.rng = random.Random(7)

    @property
    def now(self) -> int:
        """The server clock; with ``clock_speed`` > 0 it also runs that many times faster than the wall clock."""
        return self._now + int((time.monotonic() - self._wall) * self.clock_speed * 1000)

    @now.setter
    def now(self, value: int) -> None:
        self._now, self._wall = int(value), time.monotonic()

    def inject(self, kind: str, path: str = "/v5/market/kline", times: int = 1) -> None:
        with self.lock:
            self.faults.extend([(path, kind)] * times)

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def fail_pages(self, kind: str, lo: int, hi: int, path: str = "/v5/market/kline") -> None:
        """Every request to ``path`` for a page starting in ``[lo, hi)`` gets the page fault ``kind``."""
        assert kind in PAGE_FAULTS
        with self.lock:
            self.page_faults.append((path, kind, lo, hi))

    def page_fault(self, path: str, q: dict) -> str | None:
        """The persistent page fault of a request, if any."""
        start = q.get("start", q.get("startTime"))
        with self.lock:
            return next((kind for p, kind, lo, hi in self.page_faults
                         if p == path and start is not None and lo <= int(start) < hi), None)

    def count(self, path: str) -> int:
        """Requests received for an endpoint (``kline``, ``time``, ...)."""
        return sum(1 for p, _ in self.requests if p.endswith(path))

    def take_fault(self, path: str) -> str | None:
        with self.lock:
            for i, (p, kind) in enumerate(self.faults):
                if p == path:
                    del self.faults[i]
                    return kind
        return None

    # -- endpoints -------------------------------------------------------------------------------
    def instruments(self, q: dict) -> dict:
        category = q["category"]
        items = [] if q.get("status") == "PreLaunch" else INSTRUMENTS[category]
        return {"category": category, "list": items}

    def kline(self, q: dict) -> dict:
        step = INTERVALS[q["interval"]]
        limit = min(int(q.get("limit", 200)), 1000)
        start = int(q.get("start", 0))
        end = min(int(q.get("end", self.now)), self.now)
        first = max(start, self.listed)
        first += -first % step
        rows = []
        for t in range(first, end + 1, step):
            if t in self.missing:
                continue
            row = candle(q["symbol"], step, t)
            if t + step > self.now:  # in progress: provisional values
                row[4] = round(row[1] * 1.0003, 2)
                row[2], row[3] = max(row[1:5]), min(row[1:5])
            rows.append(row)
        rows = rows[-limit:][::-1]  # the newest ``limit``, newest first
        if self.duplicates and rows:
            rows = rows + [rows[len(rows) // 2], rows[-1]]
        if self.shuffle:
            self.rng.shuffle(rows)
        return {"symbol": q["symbol"], "category": q["category"],
                "list": [[str(r[0])] + [repr(float(v)) for v in r[1:]] + [repr(float(r[5]) * r[4])]
                         for r in rows]}

    def funding(self, q: dict) -> dict:
        limit = min(int(q.get("limit", 200)), 200)
        start, end = int(q.get("startTime", 0)), min(int(q.get("endTime", self.now)), self.now)
        first = max(start, self.listed)
        first += -first % self.funding_ms
        rows = [t for t in range(first, end + 1, self.funding_ms) if t not in self.missing][-limit:][::-1]
        return {"category": q["category"],
                "list": [{"symbol": q["symbol"], "fundingRate": repr(funding_rate(t)),
                          "fundingRateTimestamp": str(t)} for t in rows]}

    # -- truth -----------------------------------------------------------------------------------
    def expected_funding(self, since: int, until: int) -> pd.Series:
        """Funding settlements with ``since <= t <= until`` that the clock has reached."""
        first = max(since, self.listed)
        first += -first % self.funding_ms
        ts = [t for t in range(first, min(until, self.now) + 1, self.funding_ms) if t not in self.missing]
        index = pd.DatetimeIndex(pd.to_datetime(np.array(ts, dtype=np.int64), unit="ms", utc=True),
                                 name="datetime").as_unit("ns")
        return pd.Series([funding_rate(t) for t in ts], index=index, name="funding_rate", dtype=np.float64)

    def expected(self, symbol_id: str, step: int, since: int, until: int) -> pd.DataFrame:
        """Closed candles with ``since <= t <= until`` as an OHLCV frame."""
        first = max(since, self.listed)
        first += -first % step
        rows = [candle(symbol_id, step, t) for t in range(first, until + 1, step)
                if t not in self.missing and t + step <= self.now]
        arr = np.array(rows, dtype=np.float64).reshape(-1, 6)
        index = pd.DatetimeIndex(pd.to_datetime(arr[:, 0].astype(np.int64), unit="ms", utc=True)).as_unit("ns")
        frame = pd.DataFrame(arr[:, 1:], index=index, columns=list(OHLCV_COLUMNS))
        frame.index.name = "datetime"
        return frame


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: str) -> None:
        data = body.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout fault)

    def do_GET(self) -> None:
        fake = self.server.fake
        url = urlsplit(self.path)
        q = dict(parse_qsl(url.query))
        with fake.lock:
            fake.requests.append((url.path, q))
        fault = fake.take_fault(url.path)
        fault = None if fault == "ok" else fault
        if fault in ("408", "429", "500", "502", "503", "504"):
            return self._send(int(fault), "<html>busy</html>")
        if fault == "418":  # what a CDN's bot protection answers a client it has blocked
            return self._send(418, CLOUDFLARE_BLOCK_PAGE)
        if fault == "reset":
            self.close_connection = True
            return
        if fault == "malformed":
            return self._send(200, '{"retCode":0,"retMsg":"OK","result":{"list":[["17')
        if fault is not None and fault.startswith("retcode:"):
            code = int(fault.split(":")[1])
            return self._send(200, json.dumps({"retCode": code, "retMsg": f"injected error {code}",
                                               "result": {}, "retExtInfo": {}, "time": fake.now}))
        if fault == "timeout":
            time.sleep(fake.timeout_sleep)
        handlers = {"/v5/market/instruments-info": fake.instruments, "/v5/market/kline": fake.kline,
                    "/v5/market/funding/history": fake.funding,
                    "/v5/market/time": lambda q: {"timeSecond": str(fake.now // 1000),
                                                  "timeNano": str(fake.now * 1_000_000)}}
        if url.path not in handlers:
            return self._send(404, json.dumps({"retCode": 10404, "retMsg": "not found"}))
        result = handlers[url.path](q)
        if fault == "badnumber" and result.get("list"):
            result["list"][0][1] = "n/a"
        fault = fault if fault in PAGE_FAULTS else fake.page_fault(url.path, q)
        if fault is not None:  # replies are newest first: "half" keeps the newer half
            rows = result["list"]
            result["list"] = {"empty": [], "null": None, "half": rows[:len(rows) // 2]}[fault]
        self._send(200, json.dumps({"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {},
                                    "time": fake.now}))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeBybit


@pytest.fixture
def bybit_server():
    """A running fake Bybit on 127.0.0.1 (``.url``, ``.fake``); its clock starts at 2024-01-01 + 6000 h."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = FakeBybit(now=T0 + 6000 * HOUR + 17 * 60_000)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_port}"
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def fast_retry() -> RetryPolicy:
    """Four attempts with millisecond backoff, so fault tests stay fast."""
    return RetryPolicy(attempts=4, base_delay=0.002, max_delay=0.01)


@pytest.fixture
def make_exchange(bybit_server):
    """``make_exchange(category, timeout_ms)``: a real ccxt.bybit client pointed at the fake server,
    its rate limiter kept on but set to 1 ms per request unit (a loopback server needs no 20 ms
    spacing). The default timeout is generous, so a loaded machine cannot turn a slow reply into an
    unplanned fault; tests of the ``"timeout"`` fault pass 1000 ms (the fake then sleeps 2 s)."""
    def make(category: str = "linear", timeout_ms: int = 10_000):
        exchange = bybit_exchange(category, url=bybit_server.url, timeout_ms=timeout_ms)
        exchange.rateLimit = 1
        return exchange
    return make
