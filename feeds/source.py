"""``load_source``: turn a ``--data`` spec (``sample``, a CSV path or ``bybit:SYMBOL``) into an OHLCV frame
for a time span."""
from __future__ import annotations

import pandas as pd

from .csvfile import load_csv
from .ohlcv import DataError, resample_ohlcv
from .synthetic import synthetic_market
from .timeframes import parse_timeframe

__all__ = ["DEFAULT_SAMPLE_BARS", "load_source", "to_utc"]

#: bars of the embedded sample market: one year of hourly bars
DEFAULT_SAMPLE_BARS = 8760


def to_utc(when: str | pd.Timestamp | None, name: str) -> pd.Timestamp | None:
    """Parse a user-given instant (naive means UTC)."""
    if when is None:
        return None
    try:
        ts = pd.Timestamp(when)
    except (ValueError, TypeError):
        raise ValueError(f"{name} {when!r} is not a date or time; use ISO 8601, e.g. 2024-01-31 or "
                         "2024-01-31T13:00") from None
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")


def load_source(spec: str, *, timeframe: str | None = None, since: str | None = None,
                until: str | None = None, seed: int = 0, bars: int | None = None,
                cache_dir: str | None = None, progress: bool = True) -> pd.DataFrame:
    """Load the bars a backtest runs on.

    ``spec`` is ``"sample"`` (the synthetic market of ``bars`` bars, default one hourly year, at
    ``timeframe``), a CSV path (resampled to ``timeframe`` when one is given) or ``bybit:SYMBOL``
    (closed Bybit candles from ``since`` through :func:`feeds.fetch_bybit`, cached in ``cache_dir``,
    a progress bar unless ``progress`` is false). Only bars with ``since <= time <= until`` are
    kept: a run with ``until`` sees no data after that instant.
    """
    start, end = to_utc(since, "since"), to_utc(until, "until")
    if start is not None and end is not None and end < start:
        raise ValueError(f"until ({end}) is before since ({start})")
    if spec == "sample":
        df = synthetic_market(bars or DEFAULT_SAMPLE_BARS, freq=timeframe or "1h", seed=seed)
    elif spec.lower().endswith(".csv"):
        df = load_csv(spec)
        if timeframe:
            df = resample_ohlcv(df, parse_timeframe(timeframe))
    elif spec.startswith("bybit:"):
        from .bybit import fetch_bybit  # imports ccxt: only when used

        if since is None:
            raise ValueError("--data bybit:SYMBOL needs --since, the first bar to download (e.g. 2024-01-01)")
        df = fetch_bybit(spec[len("bybit:"):], timeframe or "1h", start, end, cache_dir=cache_dir,
                         progress=progress)
    else:
        raise ValueError(f"--data {spec!r} is not understood; use 'sample', a path to a .csv file or "
                         "bybit:SYMBOL (e.g. bybit:BTC/USDT:USDT)")
    df = df.loc[start:end] if (start is not None or end is not None) else df
    if len(df) < 2:
        raise DataError(f"{spec}: fewer than 2 bars between {since or 'the start'} and {until or 'the end'}")
    return df
