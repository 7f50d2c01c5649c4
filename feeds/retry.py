"""Bounded retries with exponential backoff and jitter for exchange requests.

Transient failures (the network, timeouts, rate limits, an exchange briefly unavailable, a reply that
is not the JSON the exchange promised) are retried; everything else is raised at once as a
:class:`FetchError` whose message says what was being fetched and why it failed. Credentials in the URLs
ccxt puts in its messages are masked (:func:`feeds.redact.redact`) in every log line and error.
"""
from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Callable, TypeVar

import ccxt

from .redact import redact, scrub

__all__ = ["BYBIT_TRANSIENT_RETCODES", "TRANSIENT_ERRORS", "FetchError", "RetryPolicy", "call_with_retry",
           "is_transient"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: ccxt errors worth another attempt. ``BadResponse`` is a reply that is not valid JSON (a proxy's
#: error page, a truncated body): ccxt would otherwise hand it back as an empty result.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    ccxt.NetworkError,  # includes RequestTimeout, RateLimitExceeded, DDoSProtection, ExchangeNotAvailable
    ccxt.BadResponse,
)


#: Bybit ``retCode`` values that say "try again" but that ccxt raises as a plain ``ExchangeError`` (Bybit v5
#: error codes: 10000 server timeout; 10016 internal server error, or the service is restarting)
BYBIT_TRANSIENT_RETCODES = frozenset({10000, 10016})


def is_transient(exc: Exception) -> bool:
    """Whether ``exc`` is worth another attempt: one of :data:`TRANSIENT_ERRORS`, or an exchange error carrying
    one of :data:`BYBIT_TRANSIENT_RETCODES` (ccxt puts the reply's JSON body in the message)."""
    if isinstance(exc, TRANSIENT_ERRORS):
        return True
    if not isinstance(exc, ccxt.ExchangeError):
        return False
    text = str(exc)
    start = text.find("{")
    try:
        code = json.loads(text[start:]).get("retCode") if start >= 0 else None
    except (ValueError, AttributeError):
        return False
    return code in BYBIT_TRANSIENT_RETCODES


class FetchError(OSError):
    """A request that failed for good: rejected by the exchange (``transient`` false), or failing
    transiently past the retry budget (``transient`` true: trying again later may succeed).

    An ``OSError`` (input/output that failed), so command-line tools report it in one line.
    """

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all; the k-th retry waits ``min(max_delay, base_delay * 2**k)`` scaled
    by a random factor in ``[1 - jitter, 1]`` (so simultaneous clients spread out)."""

    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.5
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be >= 1; got {self.attempts}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("RetryPolicy delays must be >= 0")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"RetryPolicy.jitter must be in [0, 1]; got {self.jitter}")

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        cap = min(self.max_delay, self.base_delay * 2.0 ** retry)
        return cap * (1.0 - self.jitter * (rng or random).random())


def call_with_retry(fn: Callable[[], T], what: str, policy: RetryPolicy) -> T:
    """Call ``fn`` until it succeeds, retrying the errors :func:`is_transient` accepts under ``policy``.

    ``what`` names the request in log lines and errors ("kline BTC/USDT:USDT 1h from ...").
    Raises :class:`FetchError` (chained to the cause, whose message is redacted too) when the error
    is not transient or the attempts are used up.
    """
    attempt = 0
    while True:
        try:
            return fn()
        except ccxt.BaseError as exc:
            scrub(exc)
            what = redact(what)
            if not is_transient(exc):
                raise FetchError(f"{what}: the exchange rejected the request: {type(exc).__name__}: {exc}") from exc
            attempt += 1
            if attempt == policy.attempts:
                raise FetchError(f"{what}: still failing after {policy.attempts} attempts; last error: "
                                 f"{type(exc).__name__}: {exc}", transient=True) from exc
            wait = policy.delay(attempt - 1)
            log.warning("%s: %s (%s); retry %d/%d in %.2fs", what, type(exc).__name__, exc,
                        attempt, policy.attempts - 1, wait)
            policy.sleep(wait)
