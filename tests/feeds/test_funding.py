"""fetch_funding_rates against the fake Bybit (conftest.py): windows, coverage splits, faults, cache."""
from __future__ import annotations

import pandas as pd
import pytest

from btdensity.feeds import fetch_funding_rates
from btdensity.feeds.complete import format_span
from btdensity.feeds.funding import FUNDING_LIMIT

from .conftest import PAGE_FAULTS

HOUR = 3_600_000
T0 = 1_704_067_200_000
FUNDING = "/v5/market/funding/history"


def _funding_requests(server) -> list[dict]:
    return [q for p, q in server.fake.requests if p.endswith("funding/history")]


def test_exact_history_in_time_windows(bybit_server, make_exchange, fast_retry):
    until = T0 + 120 * 24 * HOUR  # 361 settlements, 8 h apart
    rates = fetch_funding_rates("BTC/USDT:USDT", T0, until, exchange=make_exchange(), retry=fast_retry)
    truth = bybit_server.fake.expected_funding(T0, until)
    assert len(truth) == 361
    pd.testing.assert_series_equal(rates["funding_rate"], truth)
    assert rates.attrs["gaps"].count == 0
    requests = _funding_requests(bybit_server)
    assert len(requests) == 4  # windows of FUNDING_LIMIT / 2 intervals: 361 / 100
    assert all(int(q["limit"]) == FUNDING_LIMIT and "endTime" in q for q in requests)


def test_truncated_pages_are_split_until_complete(bybit_server, make_exchange, fast_retry):
    # hourly settlements while the market announces 8 h: every 800 h window overflows the page limit
    bybit_server.fake.funding_ms = HOUR
    until = T0 + 1000 * HOUR
    rates = fetch_funding_rates("ETH/USDT:USDT", T0, until, exchange=make_exchange(), retry=fast_retry)
    truth = bybit_server.fake.expected_funding(T0, until)
    assert len(truth) == 1001
    pd.testing.assert_series_equal(rates["funding_rate"], truth)
    spans = [(int(q["endTime"]) + 1 - int(q["startTime"])) // HOUR for q in _funding_requests(bybit_server)]
    # 800 h -> 400 h -> 200 h (a full page: may be cut) -> 100 h; the last window is 200 h + 1 ms
    assert spans == [800, 400, 200, 100, 100, 200, 100, 100, 400, 200, 100, 100, 200, 100, 100, 200, 100, 100]


@pytest.mark.parametrize("fault", ["429", "503", "malformed", "badnumber", "retcode:10006"])
def test_faults_are_survived(bybit_server, make_exchange, fast_retry, fault):
    bybit_server.fake.inject("ok", path="/v5/market/funding/history")
    bybit_server.fake.inject(fault, path="/v5/market/funding/history", times=2)
    until = T0 + 90 * 24 * HOUR
    rates = fetch_funding_rates("BTC/USDT:USDT", T0, until, exchange=make_exchange(), retry=fast_retry)
    pd.testing.assert_series_equal(rates["funding_rate"], bybit_server.fake.expected_funding(T0, until))


@pytest.mark.parametrize("fault", PAGE_FAULTS)
def test_a_window_lacking_settlements_once_is_asked_again(bybit_server, make_exchange, fast_retry, tmp_path, fault):
    fake = bybit_server.fake
    fake.inject("ok", path=FUNDING)
    fake.inject(fault, path=FUNDING)  # the second window comes back empty, null or halved, once
    until = T0 + 90 * 24 * HOUR
    rates = fetch_funding_rates("BTC/USDT:USDT", T0, until, cache_dir=tmp_path, exchange=make_exchange(),
                                retry=fast_retry)
    pd.testing.assert_series_equal(rates["funding_rate"], fake.expected_funding(T0, until))
    assert [int(q["startTime"]) for q in _funding_requests(bybit_server)] == [
        T0, T0 + 800 * HOUR, T0 + 800 * HOUR, T0 + 1600 * HOUR]


@pytest.mark.parametrize("fault", PAGE_FAULTS)
def test_settlements_the_exchange_keeps_lacking_are_a_gap_filled_by_the_next_run(bybit_server, make_exchange,
                                                                                 fast_retry, tmp_path, fault, caplog):
    fake = bybit_server.fake
    fake.fail_pages(fault, T0 + 800 * HOUR, T0 + 1600 * HOUR, path=FUNDING)
    until = T0 + 90 * 24 * HOUR
    kw = dict(cache_dir=tmp_path, exchange=make_exchange(), retry=fast_retry)
    rates = fetch_funding_rates("BTC/USDT:USDT", T0, until, **kw)["funding_rate"]
    hole = (T0 + 800 * HOUR, T0 + (1600 if fault != "half" else 1200) * HOUR)  # "half" keeps the newer half
    truth = fake.expected_funding(T0, until)
    ms = truth.index.as_unit("ms").asi8
    pd.testing.assert_series_equal(rates, truth[(ms < hole[0]) | (ms >= hole[1])])
    assert f"still has no settlements for {format_span(*hole)} after 4 attempts: a gap" in caplog.text
    fake.page_faults.clear()
    n = len(_funding_requests(bybit_server))
    again = fetch_funding_rates("BTC/USDT:USDT", T0, until, **kw)["funding_rate"]
    pd.testing.assert_series_equal(again, truth)
    assert [int(q["startTime"]) for q in _funding_requests(bybit_server)[n:]] == [hole[0]]  # the hole only


def test_cache_gaps_and_open_end(bybit_server, make_exchange, fast_retry, tmp_path):
    fake = bybit_server.fake
    fake.missing = {T0 + 16 * HOUR}
    since = fake.now - 30 * 24 * HOUR
    kw = dict(cache_dir=tmp_path, exchange=make_exchange(), retry=fast_retry)
    first = fetch_funding_rates("BTC/USDT:USDT", T0, since, **kw)
    assert (first.attrs["gaps"].count, first.attrs["gaps"].missing_bars) == (1, 1)
    n = len(_funding_requests(bybit_server))
    again = fetch_funding_rates("BTC/USDT:USDT", T0 + 8 * HOUR, since, **kw)
    assert len(_funding_requests(bybit_server)) == n  # cached: no request
    pd.testing.assert_frame_equal(again, first.iloc[1:], check_freq=False)
    latest = fetch_funding_rates("BTC/USDT:USDT", T0, **kw)  # up to the exchange's clock
    assert len(_funding_requests(bybit_server)) == n + 1
    pd.testing.assert_series_equal(latest["funding_rate"], fake.expected_funding(T0, fake.now))
    assert latest.index[-1] <= pd.Timestamp(fake.now, unit="ms", tz="UTC")


def test_only_perpetuals(bybit_server, make_exchange):
    with pytest.raises(ValueError, match="spot symbol and has no funding"):
        fetch_funding_rates("BTC/USDT", T0, T0 + HOUR, exchange=make_exchange("spot"))
