"""Timeframe strings ("1m", "15m", "1h", "4h", "1d", "1w") and their backtrader / pandas equivalents."""
from __future__ import annotations

import re

import pandas as pd

__all__ = ["parse_timeframe", "timeframe_to_bt"]

_UNITS = {"m": "min", "min": "min", "h": "h", "d": "D", "w": "W"}
_RE = re.compile(r"^\s*(\d+)\s*(m|min|h|d|w)\s*$", re.IGNORECASE)


def parse_timeframe(timeframe: str) -> pd.Timedelta:
    """Return the bar length of ``timeframe``.

    >>> parse_timeframe("4h")
    Timedelta('0 days 04:00:00')
    """
    match = _RE.match(str(timeframe))
    if not match or int(match.group(1)) < 1:
        raise ValueError(f"timeframe {timeframe!r} is not understood; use a count and a unit, "
                         "e.g. '1m', '15m', '1h', '4h', '1d', '1w'")
    count, unit = int(match.group(1)), _UNITS[match.group(2).lower()]
    return pd.Timedelta(count, unit=unit) if unit != "W" else pd.Timedelta(weeks=count)


def timeframe_to_bt(step: pd.Timedelta) -> tuple[int, int]:
    """backtrader ``(TimeFrame, compression)`` for a bar length."""
    import backtrader as bt

    seconds = int(step.total_seconds())
    if seconds <= 0:
        raise ValueError(f"bar length must be positive; got {step}")
    if seconds % (7 * 86400) == 0:
        return bt.TimeFrame.Weeks, seconds // (7 * 86400)
    if seconds % 86400 == 0:
        return bt.TimeFrame.Days, seconds // 86400
    if seconds % 60 == 0:
        return bt.TimeFrame.Minutes, seconds // 60
    return bt.TimeFrame.Seconds, seconds
