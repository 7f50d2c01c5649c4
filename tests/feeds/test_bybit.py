"""fetch_bybit with the real ccxt client against the local fake Bybit (fixtures in conftest.py):
exact pages, closed candles only, every injected fault survived, clear errors."""
from __future__ import annotations

import logging
import traceback

import pandas as pd
import pytest

from btdensity.feeds import OHLCV_COLUMNS, DataError, FetchError, fetch_bybit
from btdensity.feeds.bybit import BYBIT_URL_ENV, bybit_exchange, infer_category
from btdensity.feeds.cache import SeriesCache, cache_path
from btdensity.feeds.complete import format_span

from .conftest import PAGE_FAULTS

HOUR = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00Z; the fake's clock is T0 + 6000 h + 17 min


def _kline(server) -> int:
    return server.fake.count("/v5/market/kline")


def _kline_queries(server) -> list[dict]:
    return [q for p, q in server.fake.requests if p.endswith("kline")]


def test_5000_bars_exact_and_complete_in_five_requests(bybit_server, make_exchange, fast_retry):
    df = fetch_bybit("BTC/USDT:USDT", "1h", T0, T0 + 4999 * HOUR, exchange=make_exchange(),
                     retry=fast_retry, progress=False)
    pd.testing.assert_frame_equal(df, bybit_server.fake.expected("BTCUSDT", HOUR, T0, T0 + 4999 * HOUR))
    assert len(df) == 5000 and df.attrs["gaps"].count == 0
    assert _kline(bybit_server) == 5  # 5000 bars / 1000 per page
    instruments = [q for p, q in bybit_server.fake.requests if p.endswith("instruments-info")]
    assert [q["category"] for q in instruments] == ["linear", "linear"]  # listed + pre-launch, one category
    assert {p for p, _ in bybit_server.fake.requests} == {
        "/v5/market/instruments-info", "/v5/market/time", "/v5/market/kline"}


def test_keeps_closed_candles_only(bybit_server, make_exchange, fast_retry):
    now = bybit_server.fake.now
    df = fetch_bybit("ETH/USDT:USDT", "1h", now - 30 * HOUR, exchange=make_exchange(), retry=fast_retry,
                     progress=False)
    last_closed = now - now % HOUR - HOUR  # the candle opened at now - now % HOUR is in progress
    assert df.index[-1] == pd.Timestamp(last_closed, unit="ms", tz="UTC")
    pd.testing.assert_frame_equal(df, bybit_server.fake.expected("ETHUSDT", HOUR, now - 30 * HOUR, now))
    # the server did serve the in-progress candle
    served = bybit_server.fake.kline({"interval": "60", "symbol": "ETHUSDT", "category": "linear",
                                      "start": str(now - 2 * HOUR), "end": str(now)})["list"]
    assert int(served[0][0]) == now - now % HOUR


@pytest.mark.parametrize("category,symbol,symbol_id", [("spot", "BTC/USDT", "BTCUSDT"),
                                                       ("inverse", "BTC/USD:BTC", "BTCUSD")])
def test_other_categories_load_only_their_markets(bybit_server, make_exchange, fast_retry, category,
                                                  symbol, symbol_id):
    assert infer_category(symbol) == category
    df = fetch_bybit(symbol, "15m", T0, T0 + 99 * 900_000, exchange=make_exchange(category),
                     retry=fast_retry, progress=False)
    truth = bybit_server.fake.expected(symbol_id, 900_000, T0, T0 + 99 * 900_000)
    cols = ["open", "high", "low", "close"] if category == "inverse" else list(truth.columns)
    pd.testing.assert_frame_equal(df[cols], truth[cols])  # (inverse volume is in the base coin)
    assert {q["category"] for p, q in bybit_server.fake.requests if p.endswith("instruments-info")} == {category}


#: each injected fault and the error the real ccxt client (or fetch_bybit's reply check) raises for it
FAULT_ERRORS = {
    "408": "RequestTimeout", "418": "DDoSProtection", "429": "RateLimitExceeded", "500": "ExchangeNotAvailable",
    "502": "ExchangeNotAvailable", "503": "ExchangeNotAvailable", "504": "RequestTimeout",
    "timeout": "RequestTimeout", "reset": "NetworkError", "malformed": "BadResponse", "badnumber": "BadResponse",
    "retcode:10006": "RateLimitExceeded", "retcode:10018": "RateLimitExceeded",
    "retcode:10016": "ExchangeError", "retcode:10000": "ExchangeError",  # Bybit's "try again" codes
}


@pytest.mark.parametrize("fault", list(FAULT_ERRORS))
def test_every_transient_fault_is_survived_exactly(bybit_server, make_exchange, fast_retry, fault, caplog):
    caplog.set_level(logging.WARNING, logger="btdensity.feeds.retry")
    fake = bybit_server.fake
    fake.inject("ok")  # first page fine, the second fails twice
    fake.inject(fault, times=2)
    fake.inject(fault, path="/v5/market/time")
    fake.inject(fault, path="/v5/market/instruments-info")
    exchange = make_exchange(timeout_ms=1000 if fault == "timeout" else 10_000)
    df = fetch_bybit("BTC/USDT:USDT", "1h", T0, T0 + 2499 * HOUR, exchange=exchange, retry=fast_retry,
                     progress=False)
    pd.testing.assert_frame_equal(df, fake.expected("BTCUSDT", HOUR, T0, T0 + 2499 * HOUR))
    assert _kline(bybit_server) == 3 + 2
    assert not fake.faults
    # the two failed kline requests were retried as the ccxt error the fault stands for
    retried = [r.args[1] for r in caplog.records if r.name == "btdensity.feeds.retry" and " kline " in r.args[0]]
    assert retried == [FAULT_ERRORS[fault]] * 2


def test_progress_bar_on_stderr_for_long_downloads_and_none_when_off(bybit_server, make_exchange, fast_retry,
                                                                     capsys, monkeypatch):
    from btdensity import feeds
    from tqdm import tqdm

    class EveryUpdate(tqdm):  # the real bar, redrawn on every update (not at most every 0.1 s)
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "mininterval": 0, "miniters": 1})

    monkeypatch.setattr(feeds.bybit, "tqdm", EveryUpdate)
    capsys.readouterr()
    fetch_bybit("BTC/USDT:USDT", "1h", T0, T0 + 4999 * HOUR, exchange=make_exchange(), retry=fast_retry)
    out = capsys.readouterr()
    assert out.out == ""
    frames = [f for f in out.err.split("\r") if f.strip()]  # tqdm redraws its line with carriage returns
    assert all(f.startswith("bybit linear BTC/USDT:USDT 1h: ") for f in frames)
    # one frame at the start, one per page of 1000 bars, counting the 5000 bars downloaded
    assert [f.split("|")[2].split()[0] for f in frames] == [f"{k}/5000" for k in (0, 1000, 2000, 3000, 4000, 5000)]
    assert "100%|" in frames[-1] and "bar/s" in frames[-1]
    assert out.err.endswith("\r")  # leave=False: the bar is erased when the download is done

    # progress=False (what run_backtest.py --quiet sets) writes nothing; nor does a short download
    fetch_bybit("ETH/USDT:USDT", "1h", T0, T0 + 4999 * HOUR, exchange=make_exchange(), retry=fast_retry,
                progress=False)
    fetch_bybit("SOL/USDT:USDT", "1h", T0, T0 + 1999 * HOUR, exchange=make_exchange(), retry=fast_retry)
    assert capsys.readouterr() == ("", "")
    assert _kline(bybit_server) == 5 + 5 + 2


def test_duplicate_and_out_of_order_candles(bybit_server, make_exchange, fast_retry):
    bybit_server.fake.duplicates = bybit_server.fake.shuffle = True
    df = fetch_bybit("BTC/USDT:USDT", "1h", T0, T0 + 2499 * HOUR, exchange=make_exchange(), retry=fast_retry,
                     progress=False)
    pd.testing.assert_frame_equal(df, bybit_server.fake.expected("BTCUSDT", HOUR, T0, T0 + 2499 * HOUR))


def test_persistent_fault_raises_clearly_and_keeps_a_valid_resumable_cache(bybit_server, make_exchange,
                                                                           fast_retry, tmp_path):
    fake = bybit_server.fake
    fake.inject("ok", times=2)
    fake.inject("503", times=100)
    with pytest.raises(FetchError, match=r"kline BTC/USDT:USDT 1h .* still failing after 4 attempts") as err:
        fetch_bybit("BTC/USDT:USDT", "1h", T0, T0 + 4999 * HOUR, cache_dir=tmp_path, exchange=make_exchange(),
                    retry=fast_retry, progress=False)
    assert err.value.transient
    assert _kline(bybit_server) == 2 + 4
    fake.clear_faults()
    df = fetch_bybit("BTC/USDT:USDT", "1h", T0, T0 + 4999 * HOUR, cache_dir=tmp_path, exchange=make_exchange(),
                     retry=fast_retry, progress=False)
    pd.testing.assert_frame_equal(df, fake.expected("BTCUSDT", HOUR, T0, T0 + 4999 * HOUR))
    assert _kline(bybit_server) == 6 + 3  # resumed: only the three pages not yet cached


def test_rejected_request_is_not_retried(bybit_server, make_exchange, fast_retry):
    bybit_server.fake.inject("retcode:10001")
    with pytest.raises(FetchError, match="rejected the request") as err:
        fetch_bybit("BTC/USDT:USDT", "1h", T0, T0 + 99 * HOUR, exchange=make_exchange(), retry=fast_retry,
                    progress=False)
    assert not err.value.transient and _kline(bybit_server) == 1


def test_unknown_symbol_names_the_closest(bybit_server, make_exchange, fast_retry):
    with pytest.raises(ValueError, match=r"unknown bybit linear symbol 'BTC/USDC:USDT'.*BTC/USDT:USDT"):
        fetch_bybit("BTC/USDC:USDT", "1h", T0, exchange=make_exchange(), retry=fast_retry)
    with pytest.raises(ValueError, match=r"'ETHUSDT' is the exchange's id of 'ETH/USDT:USDT'"):
        fetch_bybit("ETHUSDT", "1h", T0, category="linear", exchange=make_exchange(), retry=fast_retry)
    with pytest.raises(ValueError, match="not a ccxt symbol"):
        fetch_bybit("ETHUSDT", "1h", T0, exchange=make_exchange(), retry=fast_retry)
    assert _kline(bybit_server) == 0


def test_unsupported_timeframe_lists_the_supported(bybit_server, make_exchange):
    with pytest.raises(ValueError, match=r"timeframe '2d' is not supported by bybit; use one of 1m, 3m, .*1h.*1w$"):
        fetch_bybit("BTC/USDT:USDT", "2d", T0, exchange=make_exchange())
    assert bybit_server.fake.requests == []  # checked before any request


def test_gaps_are_asked_again_reported_and_not_recorded_as_downloaded(bybit_server, make_exchange, fast_retry,
                                                                      tmp_path, caplog):
    fake = bybit_server.fake
    fake.missing = {T0 + 100 * HOUR, T0 + 101 * HOUR, T0 + 700 * HOUR}
    kw = dict(cache_dir=tmp_path, exchange=make_exchange(), retry=fast_retry, progress=False)
    df = fetch_bybit("BTC/USDT:USDT", "1h", T0, T0 + 999 * HOUR, **kw)
    assert len(df) == 997
    assert (df.attrs["gaps"].count, df.attrs["gaps"].missing_bars) == (2, 3)
    pd.testing.assert_frame_equal(df, fake.expected("BTCUSDT", HOUR, T0, T0 + 999 * HOUR))
    assert _kline(bybit_server) == fast_retry.attempts  # the page, asked again while it lacked candles
    assert "still has no candles for [2024-01-05T04:00Z, 2024-01-05T06:00Z) after 4 attempts" in caplog.text
    assert "still has no candles for [2024-01-30T04:00Z, 2024-01-30T05:00Z) after 4 attempts" in caplog.text
    reports = [r for r in caplog.records if r.name == "btdensity.feeds.ohlcv" and "gap(s)" in r.getMessage()]
    assert len(reports) == 1                                 # the gap summary once (it was logged twice)
    coverage = SeriesCache(cache_path(tmp_path, "bybit", "linear", "BTC/USDT:USDT", "1h"), OHLCV_COLUMNS).load()[1]
    assert coverage.missing(T0, T0 + 999 * HOUR + 1) == [(T0 + 100 * HOUR, T0 + 102 * HOUR),
                                                              (T0 + 700 * HOUR, T0 + 701 * HOUR)]
    again = fetch_bybit("BTC/USDT:USDT", "1h", T0, T0 + 999 * HOUR, **kw)
    pd.testing.assert_frame_equal(again, df)
    gaps = [(int(q["start"]), int(q["end"])) for q in _kline_queries(bybit_server)[fast_retry.attempts:]]
    assert set(gaps) == {(T0 + 100 * HOUR, T0 + 102 * HOUR - 1), (T0 + 700 * HOUR, T0 + 701 * HOUR - 1)}  # only those


@pytest.mark.parametrize("page", [0, 1])
@pytest.mark.parametrize("fault", PAGE_FAULTS)
def test_a_page_lacking_candles_once_is_asked_again(bybit_server, make_exchange, fast_retry, tmp_path, fault, page,
                                                    caplog):
    """An empty, null or half page (the first or a middle one) is asked again: no bar lost, none twice."""
    fake = bybit_server.fake
    fake.inject("ok", times=page)
    fake.inject(fault)
    df = fetch_bybit("BTC/USDT:USDT", "1h", T0, T0 + 2499 * HOUR, cache_dir=tmp_path, exchange=make_exchange(),
                     retry=fast_retry, progress=False)
    pd.testing.assert_frame_equal(df, fake.expected("BTCUSDT", HOUR, T0, T0 + 2499 * HOUR))
    # the first page lacking its older candles also asks whether any candle precedes its first one
    assert _kline(bybit_server) == 3 + (2 if page == 0 else 1) and not fake.faults
    assert "in a successful reply; asking again (1/3)" in caplog.text and "a gap" not in caplog.text
    coverage = SeriesCache(cache_path(tmp_path, "bybit", "linear", "BTC/USDT:USDT", "1h"), OHLCV_COLUMNS).load()[1]
    assert coverage.intervals == ((T0, T0 + 2499 * HOUR + 1),)


@pytest.mark.parametrize("page", [0, 1])
@pytest.mark.parametrize("fault", PAGE_FAULTS)
def test_candles_the_exchange_keeps_lacking_are_a_gap_filled_by_the_next_run(bybit_server, make_exchange, fast_retry,
                                                                             tmp_path, fault, page, caplog):
    fake = bybit_server.fake
    lo = T0 + page * 1000 * HOUR
    fake.fail_pages(fault, lo, lo + 1000 * HOUR)  # every answer for that page lacks candles
    kw = dict(cache_dir=tmp_path, retry=fast_retry, progress=False)
    df = fetch_bybit("BTC/USDT:USDT", "1h", T0, T0 + 2499 * HOUR, exchange=make_exchange(), **kw)
    hole = (lo, lo + (1000 if fault != "half" else 500) * HOUR)  # "half" keeps the newer half
    truth = fake.expected("BTCUSDT", HOUR, T0, T0 + 2499 * HOUR)
    ms = truth.index.as_unit("ms").asi8
    pd.testing.assert_frame_equal(df, truth[(ms < hole[0]) | (ms >= hole[1])], check_freq=False)
    assert f"still has no candles for {format_span(*hole)} after 4 attempts: a gap" in caplog.text
    coverage = SeriesCache(cache_path(tmp_path, "bybit", "linear", "BTC/USDT:USDT", "1h"), OHLCV_COLUMNS).load()[1]
    assert coverage.missing(T0, T0 + 2499 * HOUR + 1) == [hole]  # not recorded as downloaded

    fake.page_faults.clear()  # the exchange has them now: the next run asks for the hole only
    n = _kline(bybit_server)
    again = fetch_bybit("BTC/USDT:USDT", "1h", T0, T0 + 2499 * HOUR, exchange=make_exchange(), **kw)
    pd.testing.assert_frame_equal(again, truth)
    assert [(int(q["start"]), int(q["end"])) for q in _kline_queries(bybit_server)[n:]] == [(hole[0], hole[1] - 1)]


def test_before_the_first_candle_is_not_a_gap(bybit_server, make_exchange, fast_retry, tmp_path, caplog):
    """Before a listing the exchange has nothing: confirmed once (asked again with backoff), then recorded."""
    fake = bybit_server.fake
    fake.listed = T0 + 1050 * HOUR
    kw = dict(cache_dir=tmp_path, exchange=make_exchange(), retry=fast_retry, progress=False)
    df = fetch_bybit("BTC/USDT:USDT", "1h", T0 - 500 * HOUR, T0 + 1999 * HOUR, **kw)
    pd.testing.assert_frame_equal(df, fake.expected("BTCUSDT", HOUR, T0, T0 + 1999 * HOUR))
    assert df.index[0] == pd.Timestamp(fake.listed, unit="ms", tz="UTC") and "a gap" not in caplog.text
    # three pages, each empty window once, then "any candle before the first?" asked fast_retry.attempts times
    assert _kline(bybit_server) == 3 + fast_retry.attempts
    n = len(fake.requests)
    assert fetch_bybit("BTC/USDT:USDT", "1h", T0 - 500 * HOUR, T0 + 1999 * HOUR, **kw).equals(df)
    assert len(fake.requests) == n  # all recorded as downloaded
    # earlier still, all empty: settled by the first cached candle (none before it), then recorded too
    for _ in range(2):
        with pytest.raises(DataError, match="no closed candles"):
            fetch_bybit("BTC/USDT:USDT", "1h", T0 - 2500 * HOUR, T0 - 400 * HOUR, **kw)
    assert _kline(bybit_server) == 3 + fast_retry.attempts + 2 + fast_retry.attempts  # two more windows
    assert "a gap" not in caplog.text


def test_before_listing_and_empty_ranges(bybit_server, make_exchange, fast_retry):
    fake = bybit_server.fake
    fake.listed = T0 + 50 * HOUR
    df = fetch_bybit("BTC/USDT:USDT", "1h", T0, T0 + 99 * HOUR, exchange=make_exchange(), retry=fast_retry,
                     progress=False)
    assert df.index[0] == pd.Timestamp(T0 + 50 * HOUR, unit="ms", tz="UTC") and len(df) == 50
    with pytest.raises(DataError, match="no closed candles"):
        fetch_bybit("BTC/USDT:USDT", "1h", T0, T0 + 10 * HOUR, exchange=make_exchange(), retry=fast_retry)
    with pytest.raises(ValueError, match="before since"):
        fetch_bybit("BTC/USDT:USDT", "1h", T0, T0 - HOUR, exchange=make_exchange())


def test_requests_go_through_the_rate_limiter(bybit_server, make_exchange, fast_retry):
    exchange = make_exchange()
    assert exchange.enableRateLimit
    costs, throttle = [], exchange.throttle
    exchange.throttle = lambda cost=None: (costs.append(cost), throttle(cost))
    fetch_bybit("BTC/USDT:USDT", "1h", T0, T0 + 1999 * HOUR, exchange=exchange, retry=fast_retry, progress=False)
    assert len(costs) == len(bybit_server.fake.requests) == 2 + 1 + 2
    assert all(c >= 1 for c in costs)  # Bybit's per-endpoint costs


def test_base_url_from_environment(bybit_server, monkeypatch):
    monkeypatch.setenv(BYBIT_URL_ENV, bybit_server.url)
    exchange = bybit_exchange("linear")
    assert set(exchange.urls["api"].values()) == {bybit_server.url}
    assert exchange.fetch_time() == bybit_server.fake.now


def test_credentials_in_the_api_url_are_never_printed(bybit_server, monkeypatch, fast_retry, caplog):
    """A proxy URL with a user and password: the real ccxt client puts it in its errors; retried faults
    and the final error show it masked."""
    host = bybit_server.url.split("//")[1]
    monkeypatch.setenv(BYBIT_URL_ENV, f"http://alice:pa55word@{host}")
    fake = bybit_server.fake
    fake.inject("503", times=2)  # retried, then the page comes
    df = fetch_bybit("BTC/USDT:USDT", "1h", T0, T0 + 99 * HOUR, retry=fast_retry, progress=False)
    assert len(df) == 100
    fake.inject("503", times=100)
    with pytest.raises(FetchError, match="still failing") as err:
        fetch_bybit("ETH/USDT:USDT", "1h", T0, T0 + 99 * HOUR, retry=fast_retry, progress=False)
    printed = "".join(traceback.format_exception(err.value))
    for text in (caplog.text, str(err.value), printed):
        assert "pa55word" not in text and "alice" not in text
    assert f"GET http://***@{host}/v5/market/kline?" in str(err.value)
    assert caplog.text.count(f"http://***@{host}/v5/market/kline?") == 2 + fast_retry.attempts - 1


def test_command_line_backtest_and_paper_trading_against_the_local_server(bybit_server, monkeypatch, tmp_path,
                                                                         capsys, request):
    import json

    from btdensity import run_backtest

    monkeypatch.setenv(BYBIT_URL_ENV, bybit_server.url)
    root = logging.getLogger()
    request.addfinalizer(lambda level=root.level: root.setLevel(level))  # main() --quiet changes it globally
    fake = bybit_server.fake
    common = ["--data", "bybit:BTC/USDT:USDT", "--timeframe", "1h", "--cache-dir", str(tmp_path / "cache"),
              "--quiet", "--no-plot"]
    assert run_backtest.main(common + ["--since", "2024-01-01", "--until", "2024-03-01T23:00",
                                       "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    truth = fake.expected("BTCUSDT", HOUR, T0, T0 + (31 + 29 + 1) * 24 * HOUR - HOUR)
    assert summary["bars"] == len(truth) == 61 * 24
    assert summary["benchmark"]["total_return"] == pytest.approx(truth["close"].iloc[-1] / truth["close"].iloc[0] - 1)
    assert fake.count("kline") == 2

    # --live: the server clock runs at 2 simulated hours per second; two live bars, then --until stops.
    # No --backfill: the models' warm-up for --train-bars 50 (the features' lookback, a week for BNNUncertainty's
    # volatility regression, + 50 + Regime's 24-bar horizon + 1) is loaded first
    warmup = 168 + 50 + 24 + 1
    fake.now = fake.now - fake.now % HOUR + 59 * 60_000
    until = pd.Timestamp(fake.now - 59 * 60_000 + HOUR, unit="ms", tz="UTC")  # opens 1 min from now
    fake.clock_speed = 7200.0
    capsys.readouterr()
    assert run_backtest.main([a for a in common if a != "--quiet"] + [
        "--live", "--strategy", "buy_and_hold", "--train-bars", "50", "--poll-interval", "0.05",
        "--until", until.isoformat()]) == 0
    out = capsys.readouterr().out
    # the warm-up's bars up to the clock at the start, then every bar through the one opening at --until
    backfill = [q for p, q in fake.requests if p.endswith("kline")][2]
    cursor = int(backfill["end"]) + 1
    assert int(backfill["start"]) <= cursor - warmup * HOUR
    live = (until.value // 1_000_000 - (cursor + -cursor % HOUR)) // HOUR + 1
    assert live in (1, 2)
    assert f"after {warmup + live} bars (last {until.tz_localize(None).isoformat()})" in out
