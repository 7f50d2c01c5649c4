"""The Parquet cache: coverage arithmetic against brute force, atomic writes, corruption detection,
incremental and resumed downloads through fetch_bybit (fake Bybit from conftest.py)."""
from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from btdensity.feeds import fetch_bybit
from btdensity.feeds.cache import Coverage, SeriesCache, cache_path

HOUR = 3_600_000
T0 = 1_704_067_200_000
COLS = ("open", "high", "low", "close", "volume")


def test_coverage_matches_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(200):
        cov, points = Coverage(), set()
        for _ in range(rng.integers(0, 6)):
            lo = int(rng.integers(0, 60))
            hi = lo + int(rng.integers(0, 15))
            cov = cov.add(lo, hi)
            points |= set(range(lo, hi))
        lo, hi = sorted(int(v) for v in rng.integers(0, 80, size=2))
        missing = cov.missing(lo, hi)
        assert set().union(*(set(range(a, b)) for a, b in missing)) == set(range(lo, hi)) - points
        assert all(a < b for a, b in missing) and all(m[1] < n[0] for m, n in zip(missing, missing[1:]))
        assert all(b[0] > a[1] for a, b in zip(cov.intervals, cov.intervals[1:]))  # disjoint, merged
        ts = np.arange(80)
        assert set(ts[cov.contains(ts)].tolist()) == points


def _frame(n: int, start: int = T0) -> pd.DataFrame:
    ts = start + HOUR * np.arange(n, dtype=np.int64)
    price = 100 + np.arange(n, dtype=np.float64)
    frame = pd.DataFrame({"open": price, "high": price + 1, "low": price - 1, "close": price + 0.5,
                          "volume": np.full(n, 3.0)})
    frame.insert(0, "ts", ts)
    return frame


def test_round_trip_and_atomic_write(tmp_path):
    cache = SeriesCache(tmp_path / "x.parquet", COLS)
    frame, cov = _frame(500), Coverage().add(T0, T0 + 500 * HOUR)
    cache.save(frame, cov)
    loaded, loaded_cov = cache.load()
    pd.testing.assert_frame_equal(loaded, frame)
    assert loaded_cov == cov
    assert sorted(os.listdir(tmp_path)) == ["x.parquet"]  # no temporary file left behind


def test_failed_write_leaves_the_previous_file(tmp_path, monkeypatch):
    cache = SeriesCache(tmp_path / "x.parquet", COLS)
    cache.save(_frame(100), Coverage().add(T0, T0 + 100 * HOUR))

    def crash(table, where, **kwargs):
        with open(where, "wb") as fh:
            fh.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", crash)
    with pytest.raises(OSError, match="disk full"):
        cache.save(_frame(200), Coverage().add(T0, T0 + 200 * HOUR))
    monkeypatch.undo()
    loaded, cov = cache.load()
    assert len(loaded) == 100 and cov.intervals == ((T0, T0 + 100 * HOUR),)
    assert sorted(os.listdir(tmp_path)) == ["x.parquet"]


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_data_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 4] ^= 0x5A  # inside the column data pages (the footer is at the end)
    path.write_bytes(bytes(data))


def _rows_outside_coverage(path):
    SeriesCache(path, COLS).save(_frame(300), Coverage().add(T0, T0 + 100 * HOUR))


def _wrong_columns(path):
    SeriesCache(path, ("open", "close")).save(_frame(300)[["ts", "open", "close"]],
                                              Coverage().add(T0, T0 + 300 * HOUR))


@pytest.mark.parametrize("damage", [_truncate, _flip_data_byte, _rows_outside_coverage, _wrong_columns])
def test_damaged_file_is_detected_and_set_aside(tmp_path, damage, caplog):
    caplog.set_level(logging.WARNING, logger="btdensity.feeds.cache")
    path = tmp_path / "x.parquet"
    SeriesCache(path, COLS).save(_frame(300), Coverage().add(T0, T0 + 300 * HOUR))
    damage(path)
    frame, cov = SeriesCache(path, COLS).load()
    assert len(frame) == 0 and cov == Coverage()
    assert "corrupt" in caplog.text
    assert not path.exists() and (tmp_path / "x.parquet.corrupt").exists()


def test_cached_range_makes_no_request_and_overlap_fetches_only_the_new_part(bybit_server, make_exchange,
                                                                             fast_retry, tmp_path):
    fake, kw = bybit_server.fake, dict(cache_dir=tmp_path, retry=fast_retry, progress=False)
    first = fetch_bybit("BTC/USDT:USDT", "1h", T0, T0 + 999 * HOUR, exchange=make_exchange(), **kw)
    assert fake.count("kline") == 1
    n_requests = len(fake.requests)
    again = fetch_bybit("BTC/USDT:USDT", "1h", T0 + 10 * HOUR, T0 + 900 * HOUR, exchange=make_exchange(), **kw)
    assert len(fake.requests) == n_requests  # fully cached with an explicit end: no request at all
    pd.testing.assert_frame_equal(again, first.loc[pd.Timestamp(T0 + 10 * HOUR, unit="ms", tz="UTC"):
                                                   pd.Timestamp(T0 + 900 * HOUR, unit="ms", tz="UTC")])
    wider = fetch_bybit("BTC/USDT:USDT", "1h", T0 - 200 * HOUR, T0 + 2499 * HOUR, exchange=make_exchange(), **kw)
    pd.testing.assert_frame_equal(wider, fake.expected("BTCUSDT", HOUR, T0 - 200 * HOUR, T0 + 2499 * HOUR))
    klines = [q for p, q in fake.requests if p.endswith("kline")][1:]
    # only [T0 - 200 h, T0) and (T0 + 999 h, T0 + 2499 h]: one page and two pages, each starting on the
    # bar grid at or before its first missing instant
    assert [int(q["start"]) for q in klines] == [T0 - 200 * HOUR, T0 + 999 * HOUR, T0 + 1999 * HOUR]


def test_open_ended_call_fetches_only_new_closed_bars(bybit_server, make_exchange, fast_retry, tmp_path):
    fake, kw = bybit_server.fake, dict(cache_dir=tmp_path, retry=fast_retry, progress=False)
    since = fake.now - 48 * HOUR
    before = fetch_bybit("ETH/USDT:USDT", "1h", since, exchange=make_exchange(), **kw)
    fake.now += 3 * HOUR
    after = fetch_bybit("ETH/USDT:USDT", "1h", since, exchange=make_exchange(), **kw)
    assert len(after) == len(before) + 3
    pd.testing.assert_frame_equal(after, fake.expected("ETHUSDT", HOUR, since, fake.now))
    second = [q for p, q in fake.requests if p.endswith("kline")][1:]
    assert len(second) == 1 and int(second[0]["start"]) == before.index[-1].value // 1_000_000


def test_corrupt_cache_file_is_refetched(bybit_server, make_exchange, fast_retry, tmp_path):
    kw = dict(cache_dir=tmp_path, retry=fast_retry, progress=False)
    fetch_bybit("BTC/USDT:USDT", "1h", T0, T0 + 1999 * HOUR, exchange=make_exchange(), **kw)
    path = cache_path(tmp_path, "bybit", "linear", "BTC/USDT:USDT", "1h")
    _flip_data_byte(path)
    df = fetch_bybit("BTC/USDT:USDT", "1h", T0, T0 + 1999 * HOUR, exchange=make_exchange(), **kw)
    pd.testing.assert_frame_equal(df, bybit_server.fake.expected("BTCUSDT", HOUR, T0, T0 + 1999 * HOUR))
    assert bybit_server.fake.count("kline") == 2 + 2
    assert SeriesCache(path, COLS).load()[1].intervals == ((T0, T0 + 1999 * HOUR + 1),)  # until inclusive


def test_interrupted_download_keeps_its_pages_and_resumes(bybit_server, make_exchange, fast_retry, tmp_path):
    exchange, calls = make_exchange(), []
    fetch_ohlcv = exchange.fetch_ohlcv

    def interrupted(*args, **kwargs):
        calls.append(kwargs["since"])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return fetch_ohlcv(*args, **kwargs)

    exchange.fetch_ohlcv = interrupted
    kw = dict(cache_dir=tmp_path, retry=fast_retry, progress=False)
    with pytest.raises(KeyboardInterrupt):
        fetch_bybit("BTC/USDT:USDT", "1h", T0, T0 + 4999 * HOUR, exchange=exchange, **kw)
    frame, cov = SeriesCache(cache_path(tmp_path, "bybit", "linear", "BTC/USDT:USDT", "1h"), COLS).load()
    assert len(frame) == 2000 and cov.intervals == ((T0, T0 + 2000 * HOUR),)  # the two pages fetched
    df = fetch_bybit("BTC/USDT:USDT", "1h", T0, T0 + 4999 * HOUR, exchange=make_exchange(), **kw)
    pd.testing.assert_frame_equal(df, bybit_server.fake.expected("BTCUSDT", HOUR, T0, T0 + 4999 * HOUR))
    assert bybit_server.fake.count("kline") == 2 + 3
