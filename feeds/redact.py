"""Credentials out of messages: the user and password of a URL (``http://user:pass@host``) and the values of
query parameters whose names look secret (``api_key``, ``token``, ``sign``, ...) are masked in any text.

ccxt puts the full request URL in its exception messages, so every log line and error that can carry
one goes through :func:`redact` (and :func:`scrub` for an exception that is raised on or chained).
"""
from __future__ import annotations

import re

__all__ = ["MASK", "SECRET_NAMES", "redact", "scrub"]

MASK = "***"
#: a parameter is secret when its name (lower case, ``-`` read as ``_``) ends with one of these
SECRET_NAMES = ("key", "secret", "token", "signature", "sign", "password", "passphrase")

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/?#@]+@")
_PARAM = re.compile(r"(?<![\w.\-])([\w.\-]+)=([^&\s#\"'<>,;()\[\]{}]+)")


def _mask_param(match: re.Match) -> str:
    name = match.group(1)
    if name.lower().replace("-", "_").endswith(SECRET_NAMES):
        return f"{name}={MASK}"
    return match.group(0)


def redact(text: object) -> str:
    """``text`` with URL userinfo and secret-looking parameter values masked.

    >>> redact("GET http://alice:pw@host:8080/v5?symbol=BTCUSDT&api_key=K&X-BAPI-SIGN=abc 503")
    'GET http://***@host:8080/v5?symbol=BTCUSDT&api_key=***&X-BAPI-SIGN=*** 503'
    """
    return _PARAM.sub(_mask_param, _USERINFO.sub(rf"\1{MASK}@", str(text)))


def scrub(exc: BaseException) -> BaseException:
    """Redact the string arguments of ``exc`` and of the exceptions it chains to (``__cause__``,
    ``__context__``), in place, so a printed traceback carries no credentials either; returns ``exc``."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        try:
            e.args = tuple(redact(a) if isinstance(a, str) else a for a in e.args)
        except (AttributeError, TypeError):  # an exception type with read-only args
            pass
        stack += [e.__cause__, e.__context__]
    return exc
