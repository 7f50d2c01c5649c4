"""``FundingRates``: when perpetual funding settles and at what rate, from a series or a constant.

Bybit settles funding on linear perpetuals every 8 hours, at 00:00, 08:00 and 16:00 UTC (some
symbols more often). A settlement's rate is a fraction of the position's notional per interval:
longs pay ``size * mark price * rate`` when the rate is positive, shorts receive it (and the other
way round when it is negative). :class:`btdensity.strategies.broker.BybitBroker` charges the settlements.
"""
from __future__ import annotations

import math
from typing import Union

import numpy as np
import pandas as pd

__all__ = ["FundingRates", "FundingSource"]

_DAY_NS = 86_400 * 10**9


class FundingRates:
    """Funding settlements: ``between(start, end)`` gives the times and rates in ``(start, end]``.

    Build one with :meth:`constant` (the same rate at every ``interval``-aligned UTC time,
    default 8 h: 00:00, 08:00, 16:00) or :meth:`from_series` (the settlements of
    ``btdensity.feeds.fetch_funding_rates``: a frame with a ``funding_rate`` column or a Series, UTC index).
    A series charges its own settlement times only; there is nothing to charge outside it.

    >>> f = FundingRates.constant(0.0001)
    >>> times, rates = f.between(pd.Timestamp("2024-01-01 07:00", tz="UTC"), pd.Timestamp("2024-01-01 16:00", tz="UTC"))
    >>> [str(pd.Timestamp(t, tz="UTC").time()) for t in times], rates.tolist()
    (['08:00:00', '16:00:00'], [0.0001, 0.0001])
    """

    def __init__(self, times: np.ndarray, rates: np.ndarray, *, rate: float | None = None,
                 interval_ns: int | None = None) -> None:
        self._times = np.asarray(times, dtype=np.int64)
        self._rates = np.asarray(rates, dtype=np.float64)
        self._rate = rate
        self._interval_ns = interval_ns

    @classmethod
    def constant(cls, rate: float, interval: str | pd.Timedelta = "8h") -> "FundingRates":
        """``rate`` (a fraction, e.g. 0.0001 = 0.01 %) at every UTC time that is a multiple of ``interval``."""
        _check_rate(rate, "funding rate")
        try:
            iv = pd.Timedelta(interval)
        except (ValueError, TypeError):
            raise ValueError(f"funding interval {interval!r} is not a duration, e.g. '8h'") from None
        ns = int(iv.value)
        if ns <= 0 or _DAY_NS % ns:
            raise ValueError(f"funding interval {interval!r} must divide a day (e.g. 1h, 4h, 8h)")
        return cls(np.empty(0, np.int64), np.empty(0), rate=float(rate), interval_ns=ns)

    @classmethod
    def from_series(cls, rates: pd.Series | pd.DataFrame) -> "FundingRates":
        """The settlements of a rate series (or a frame's ``funding_rate`` column) indexed by UTC time."""
        if isinstance(rates, pd.DataFrame):
            if "funding_rate" not in rates.columns:
                raise ValueError(f"funding frame needs a 'funding_rate' column; got {list(rates.columns)}")
            rates = rates["funding_rate"]
        if not isinstance(rates, pd.Series) or not isinstance(rates.index, pd.DatetimeIndex):
            raise ValueError("funding rates must be a Series or DataFrame with a DatetimeIndex")
        if rates.index.tz is None:
            raise ValueError("funding rates need a timezone-aware (UTC) index")
        values = rates.to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~(np.abs(values) < 1.0))  # NaN compares false
        if len(bad):
            _check_rate(values[bad[0]], f"funding rate at {rates.index[bad[0]]}")
        times = rates.index.tz_convert("UTC").as_unit("ns").asi8
        if len(times) > 1 and not np.all(np.diff(times) > 0):
            i = int(np.flatnonzero(np.diff(times) <= 0)[0]) + 1
            raise ValueError(f"funding times must be strictly increasing; row {i} ({rates.index[i]}) is not")
        return cls(times, values)

    @property
    def is_constant(self) -> bool:
        """Whether the rate is the same at every settlement."""
        return self._rate is not None

    def between(self, start: pd.Timestamp | int, end: pd.Timestamp | int) -> tuple[np.ndarray, np.ndarray]:
        """Settlement times (int64 ns, UTC) and rates with ``start < time <= end``."""
        lo, hi = _ns(start), _ns(end)
        if hi <= lo:
            return np.empty(0, np.int64), np.empty(0)
        if self._rate is not None:
            iv = self._interval_ns
            times = np.arange(lo // iv + 1, hi // iv + 1, dtype=np.int64) * iv
            return times, np.full(len(times), self._rate)
        a, b = np.searchsorted(self._times, [lo, hi], side="right")
        return self._times[a:b], self._rates[a:b]


#: what ``BacktestConfig(funding=...)`` accepts: a constant rate per 8 h, a rate series or FundingRates
FundingSource = Union[float, pd.Series, pd.DataFrame, FundingRates]


def _ns(when: pd.Timestamp | int) -> int:
    if isinstance(when, (int, np.integer)):
        return int(when)
    ts = pd.Timestamp(when)
    if ts.tz is None:
        raise ValueError(f"time {when!r} must be timezone-aware (UTC)")
    return int(ts.tz_convert("UTC").as_unit("ns").value)


def _check_rate(rate: object, what: str) -> None:
    if not (isinstance(rate, (int, float, np.floating)) and math.isfinite(rate) and abs(rate) < 1.0):
        raise ValueError(f"{what} must be a finite fraction per interval with |rate| < 1 "
                         f"(0.0001 = 0.01 %); got {rate!r}")
