"""call_with_retry / RetryPolicy: exponential backoff, capped, with jitter in a known band; bounded attempts,
then a clear error; errors that are not transient raised at once, without waiting."""
from __future__ import annotations

import dataclasses
import random
import traceback

import ccxt
import pytest

from btdensity import feeds
from btdensity.feeds import FetchError
from btdensity.feeds.redact import redact
from btdensity.feeds.retry import RetryPolicy, call_with_retry

DEFAULT = RetryPolicy()  # the policy fetch_bybit and BybitLiveFeed use unless given another


class Draws:
    """A stand-in for the ``random`` module that hands out given uniform draws and records them."""

    def __init__(self, values) -> None:
        self.values, self.drawn = iter(values), []

    def random(self) -> float:
        self.drawn.append(next(self.values))
        return self.drawn[-1]


def _failing(errors: list[Exception], result: object = "ok"):
    """A callable that raises ``errors`` in turn, then returns ``result``; ``calls`` counts the calls."""
    def fn():
        fn.calls += 1
        if errors:
            raise errors.pop(0)
        return result
    fn.calls = 0
    return fn


def test_default_policy_parameters():
    assert (DEFAULT.attempts, DEFAULT.base_delay, DEFAULT.max_delay, DEFAULT.jitter) == (6, 0.5, 30.0, 0.5)


@pytest.mark.parametrize("draw", [0.0, 0.999999])
def test_delays_double_from_the_base_and_stop_at_the_cap(monkeypatch, draw):
    """With the jitter draw fixed, the waits are the un-jittered schedule scaled by one factor: 0.5 s doubling
    each retry (0.5, 1, 2, 4, 8, 16) until the 30 s cap."""
    sleeps = []
    policy = dataclasses.replace(DEFAULT, attempts=10, sleep=sleeps.append)
    monkeypatch.setattr(feeds.retry, "random", Draws([draw] * 9))
    fn = _failing([ccxt.RequestTimeout("slow")] * 9)
    assert call_with_retry(fn, "kline test", policy) == "ok"
    assert fn.calls == 10 and len(sleeps) == 9
    factor = 1 - 0.5 * draw
    assert sleeps == pytest.approx([factor * d for d in (0.5, 1, 2, 4, 8, 16, 30, 30, 30)], rel=1e-12)
    assert all(b == pytest.approx(2 * a) for a, b in zip(sleeps[:6], sleeps[1:6]))  # doubling...
    assert max(sleeps) <= DEFAULT.max_delay                                            # ...up to the cap


def test_each_delay_lies_in_its_jitter_band(monkeypatch):
    """Real random draws: each wait is its capped base scaled by exactly ``1 - jitter * u`` with the draw u,
    so within ``[(1 - jitter) * base, base]``."""
    rng = random.Random(11)
    draws = Draws(rng.random() for _ in range(100))
    monkeypatch.setattr(feeds.retry, "random", draws)
    sleeps = []
    policy = dataclasses.replace(DEFAULT, attempts=12, sleep=sleeps.append)
    call_with_retry(_failing([ccxt.RateLimitExceeded("429")] * 11), "kline test", policy)
    bases = [min(30.0, 0.5 * 2 ** k) for k in range(11)]
    assert len(sleeps) == len(draws.drawn) == 11
    for wait, base, u in zip(sleeps, bases, draws.drawn):
        assert wait == pytest.approx(base * (1 - 0.5 * u), rel=1e-12)
        assert 0.5 * base <= wait <= base
    assert len(set(round(w / b, 9) for w, b in zip(sleeps, bases))) == 11  # jittered: no two the same factor


def test_jitter_spreads_over_the_whole_band():
    """Many clients retrying at once spread out: the waits for one retry fill ``[base/2, base]``."""
    rng = random.Random(3)
    waits = [DEFAULT.delay(3, rng) for _ in range(2000)]
    assert 2.0 <= min(waits) < 2.05 and 3.95 < max(waits) <= 4.0  # base 0.5 * 2**3 = 4 s, jitter 0.5
    assert sum(waits) / len(waits) == pytest.approx(3.0, abs=0.05)  # uniform over the band
    assert [DEFAULT.delay(k, random.Random(0)) for k in (8, 20)] == [30.0 * (1 - 0.5 * random.Random(0).random())] * 2


@pytest.mark.parametrize("error", [ccxt.NetworkError("net"), ccxt.RequestTimeout("timed out"),
                                   ccxt.RateLimitExceeded("429"), ccxt.DDoSProtection("418 blocked"),
                                   ccxt.ExchangeNotAvailable("503"), ccxt.BadResponse("not JSON"),
                                   ccxt.ExchangeError('bybit {"retCode":10016,"retMsg":"service restarting"}')])
def test_attempts_are_bounded_then_a_clear_error_names_the_last_failure(error):
    sleeps = []
    policy = dataclasses.replace(DEFAULT, sleep=sleeps.append)
    fn = _failing([error] * 50)
    with pytest.raises(FetchError) as err:
        call_with_retry(fn, "bybit kline BTC/USDT:USDT 1h 2024-01-01T00:00Z", policy)
    assert fn.calls == 6 and len(sleeps) == 5  # six attempts, a wait between each two
    name = type(error).__name__
    assert str(err.value) == (f"bybit kline BTC/USDT:USDT 1h 2024-01-01T00:00Z: still failing after 6 attempts; "
                              f"last error: {name}: {error}")
    assert err.value.transient and err.value.__cause__ is error
    assert all(0.5 * b <= s <= b for s, b in zip(sleeps, (0.5, 1, 2, 4, 8)))


def test_success_after_some_failures_waits_only_for_those():
    sleeps = []
    fn = _failing([ccxt.DDoSProtection("blocked"), ccxt.ExchangeNotAvailable("503")], result=[1, 2, 3])
    assert call_with_retry(fn, "x", dataclasses.replace(DEFAULT, sleep=sleeps.append)) == [1, 2, 3]
    assert fn.calls == 3 and len(sleeps) == 2 and 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0


@pytest.mark.parametrize("error", [ccxt.BadSymbol("bybit does not have market symbol X"),
                                   ccxt.AuthenticationError("bad key"),
                                   ccxt.ExchangeError('bybit {"retCode":10001,"retMsg":"params error"}')])
def test_an_error_that_is_not_transient_is_raised_at_once_without_sleeping(error):
    sleeps = []
    fn = _failing([error] * 5)
    with pytest.raises(FetchError) as err:
        call_with_retry(fn, "bybit kline X 1h", dataclasses.replace(DEFAULT, sleep=sleeps.append))
    assert fn.calls == 1 and sleeps == []
    assert str(err.value) == f"bybit kline X 1h: the exchange rejected the request: {type(error).__name__}: {error}"
    assert not err.value.transient and err.value.__cause__ is error


def test_an_error_from_outside_ccxt_is_not_retried_or_wrapped():
    sleeps = []
    fn = _failing([ZeroDivisionError("a bug, not the network")] * 5)
    with pytest.raises(ZeroDivisionError):
        call_with_retry(fn, "x", dataclasses.replace(DEFAULT, sleep=sleeps.append))
    assert fn.calls == 1 and sleeps == []


def test_a_single_attempt_never_sleeps():
    sleeps = []
    fn = _failing([ccxt.RequestTimeout("slow")] * 5)
    with pytest.raises(FetchError, match=r"still failing after 1 attempt.*; last error: RequestTimeout: slow"):
        call_with_retry(fn, "x", RetryPolicy(attempts=1, sleep=sleeps.append))
    assert fn.calls == 1 and sleeps == []


@pytest.mark.parametrize("kwargs", [{"attempts": 0}, {"base_delay": -1.0}, {"max_delay": -0.1}, {"jitter": 1.5}])
def test_invalid_policies_are_refused(kwargs):
    with pytest.raises(ValueError, match="RetryPolicy"):
        RetryPolicy(**kwargs)


@pytest.mark.parametrize("text,expected", [
    ("bybit GET http://alice:s3cret@127.0.0.1:8080/v5/market/kline?symbol=BTCUSDT 503",
     "bybit GET http://***@127.0.0.1:8080/v5/market/kline?symbol=BTCUSDT 503"),
    ("https://api.example.com/v5/order?api_key=AK1&recv_window=5000&sign=SG2&Timestamp=1",
     "https://api.example.com/v5/order?api_key=***&recv_window=5000&sign=***&Timestamp=1"),
    ("?APIKEY=a&apiKey=b&Key=c&client_secret=d&access_token=e&X-BAPI-SIGN=f&signature=g&Password=h&passphrase=i",
     "?APIKEY=***&apiKey=***&Key=***&client_secret=***&access_token=***&X-BAPI-SIGN=***&signature=***&Password=***"
     "&passphrase=***"),
    ("socks5://u@proxy:1080 and HTTP://u:p@h/x", "socks5://***@proxy:1080 and HTTP://***@h/x"),
    ("no credentials: symbol=BTCUSDT, 1h", "no credentials: symbol=BTCUSDT, 1h"),
])
def test_redact_masks_userinfo_and_secret_parameters(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize("error", [ccxt.ExchangeNotAvailable, ccxt.AuthenticationError])
def test_credentials_never_reach_log_lines_or_errors(error, caplog):
    """Retried (transient) or rejected at once: neither the password nor the key is in a log line, the
    error, or the chained ccxt error a traceback would print."""
    url = "http://alice:pa55word@api.example.com/v5/order?api_key=K3Y123&symbol=BTCUSDT"
    fn = _failing([error(f"bybit GET {url} 503 Service Unavailable")] * 10)
    with pytest.raises(FetchError) as err:
        call_with_retry(fn, f"bybit order via {url}", RetryPolicy(attempts=3, sleep=lambda s: None))
    printed = "".join(traceback.format_exception(err.value))
    for text in (caplog.text, str(err.value), printed):
        assert "pa55word" not in text and "K3Y123" not in text and "alice" not in text
    assert "http://***@api.example.com/v5/order?api_key=***&symbol=BTCUSDT" in str(err.value)
    assert caplog.text.count("api_key=***") == (4 if error is ccxt.ExchangeNotAvailable else 0)  # two retries
