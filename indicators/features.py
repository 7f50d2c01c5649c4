"""``market_features``: causal features of OHLCV bars, vectorised with numpy.

The value at bar ``t`` uses bars ``<= t`` only and is NaN until its lookback is full. Every feature is
computed over fixed sliding windows (no cumulative sums, no exponential memory), so a feature of bar
``t`` is the same number whether it is computed on the whole history or on the last ``lookback(spec)``
bars: what makes the batched and the bar-by-bar paths of the indicators agree.

Features (windows in bars):

===============  ==============================================================================
``ret_1``        log return of the last bar
``ret_z``        ``ret_1`` divided by the realised volatility of the 24 bars before it
``ret_4``        log return over 4 bars
``ret_24``       log return over 24 bars
``vol_24``       realised volatility: standard deviation of the last 24 one-bar log returns
``vol_ratio``    log of the 6-bar over the 48-bar realised volatility (short / long)
``volume_z``     z-score of log volume against the 48 bars before it
``range_z``      log(high / low) of the bar over the realised volatility of the 24 bars before it
``range_pos``    position of the close in the 24-bar high-low range (0 = at the low, 1 = at the high)
``rsi_14``       RSI-like ratio: gains over absolute changes of the last 14 closes, in [0, 1]
``lvol_1``       log of |ret_1| (the one-bar volatility of a HAR model), floored
``lvol_6``       log realised volatility (root mean square of one-bar log returns) over 6 bars
``lvol_24``      log realised volatility over 24 bars (a day of hourly bars)
``lvol_48``      log realised volatility over 48 bars
``lvol_168``     log realised volatility over 168 bars (a week of hourly bars)
``lpark_24``     log Parkinson range volatility over 24 bars: sqrt(mean(log(high/low)^2) / (4 log 2))
``lpark_6``      the same over 6 bars
``lpark_168``    the same over 168 bars (a week of hourly bars)
``lgk_24``       log Garman-Klass volatility over 24 bars: sqrt(mean(0.5 log(h/l)^2 - (2 log 2 - 1) log(c/o)^2))
``hour_sin``     sin and cos of the bar's time of day (UTC) as an angle: 2 pi x hours / 24
``hour_cos``
``hour2_sin``    sin and cos of twice that angle (the daily cycle's second harmonic: a 12-hour period)
``hour2_cos``
``week_sin``     sin and cos of the bar's time of the week (UTC, from Monday 00:00) as an angle: 2 pi x days / 7
``week_cos``
===============  ==============================================================================

The seasonal features (``SEASONAL_FEATURES``) read the bars' time stamps (``time``: days since 1970-01-01 UTC,
fractions for the time of day) and no other bar: volatility and volume of liquid markets follow the clock (the
opening and closing hours of the main trading centres, quiet weekends; Andersen & Bollerslev 1997), a cycle a
GARCH model does not see. As angles they have no jump at midnight or on Monday. On daily bars the time of day is
constant (the standardiser makes it 0), on weekly bars the time of the week too.

The ``lvol_*`` / ``lpark_24`` / ``lgk_24`` features are the state a risk model needs (heterogeneous
autoregressive realised volatility, Corsi 2009, at 1, 6, 24 and 168 bars; range-based estimators, Parkinson 1980
and Garman & Klass 1980, several times more efficient than close-to-close): the logs of volatilities floored at
``SCALE_FLOOR`` (a flat stretch gives ``log(SCALE_FLOOR)``, finite).

Degenerate bars. Real minute bars have flat stretches (identical closes, zero volume, high == low for hours),
where a volatility, a range or a volume spread is exactly 0. Every feature is finite there, on any valid OHLCV
data (positive prices, high >= low, volume >= 0), by these definitions:

- a volatility or a standard deviation in a denominator is floored at ``SCALE_FLOOR`` (1e-8): ``ret_z``,
  ``range_z`` and ``volume_z`` divide by ``max(std, SCALE_FLOOR)`` and ``vol_ratio`` is the log of
  ``max(vol_6, SCALE_FLOOR) / max(vol_48, SCALE_FLOOR)``. So a bar that does not move in a flat window has
  ``ret_z = range_z = 0``; ``vol_ratio`` is 0 on a flat 48-bar window and ``log(SCALE_FLOOR / vol_48)`` (large
  negative) when only the last 6 bars are flat; ``volume_z`` is 0 when the volume stays what it was for 48 bars
  (exactly for zero volume, within 1e-6 for another: the rounding of the window's mean); the first move after a
  flat stretch has ``ret_z = ret_1 / SCALE_FLOOR`` bounded to ``±Z_BOUND`` (1e3: no market that traded in its
  window moves a thousand of its standard deviations in one bar; the bound keeps such a bar from reaching the
  models as a 1e5-sigma input). The floor is continuous:
  a nearly flat window (volatility below the floor) gives the same values as an exactly flat one, and a
  window just above it gives nearby values. Returns are log returns, so the floor is relative to the price
  scale (the same for prices of 1e-8 and of 1e8). It sits far above the rounding of log prices (~1e-14) and
  below the volatility of any window in which the price moved by 7e-8 of itself or more (one move of 1e-7 in
  48 bars gives 1.4e-8; a tick of BTC/USDT at 100,000 is 1e-7 of the price): it does not change the features
  of ordinary data, and it is about the largest floor that does not, which keeps the first move after a flat
  stretch as little extreme as the definition allows (a 0.1 % move: ``ret_z`` = 1e5);
- ``range_pos`` is 0.5 (the middle) when the 24-bar high equals the low: the close is then at both ends, and
  no value is continuous there (a nearly flat range can put the close anywhere in [0, 1]);
- ``rsi_14`` is 0.5 when the last 14 closes did not change (no gains, no losses);
- ``volume_z`` takes ``log1p(volume)``: zero volume is 0, not ``-inf``;
- ``ret_*`` and ``vol_24`` need no rule: they are 0 on a flat stretch.

A bar with a missing (NaN) value gives NaN features for the rows whose windows hold it; the indicators turn
such rows into NaN lines without aborting (see ``WalkForwardIndicator``).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

__all__ = ["ALL_FEATURES", "DEFAULT_FEATURES", "RISK_FEATURES", "SCALE_FEATURES", "SEASONAL_FEATURES", "SCALE_FLOOR",
           "VOLATILITY_FEATURES", "Z_BOUND", "lookback", "market_features"]

#: floor of a volatility or standard deviation that divides (see "Degenerate bars" above)
SCALE_FLOOR = 1e-8
#: bound of the z-scores (``ret_z``, ``range_z``, ``volume_z``): far beyond any move of a market that traded in
#: its window, it keeps the first move after a flat stretch from reaching the models as a 1e5-sigma input
Z_BOUND = 1e3


def _windows(x: np.ndarray, window: int) -> np.ndarray:
    """The windows of ``window`` consecutive values of ``x`` as rows of a view (no copy): what numpy's
    ``sliding_window_view`` gives, ten times faster to make, which counts when a live bar needs one row."""
    x = np.ascontiguousarray(x)
    return np.ndarray((x.shape[0] - window + 1, window), dtype=x.dtype, buffer=x, strides=(x.strides[0],) * 2)


def _rolling(x: np.ndarray, window: int, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``fn`` over each trailing window of ``window`` values, aligned to the window's last bar (NaN before)."""
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] >= window:
        out[window - 1:] = fn(_windows(x, window))
    return out


def _std(w: np.ndarray) -> np.ndarray:
    """Sample standard deviation of each row (``ddof=1``), without ``ndarray.std``'s Python-level overhead."""
    n = w.shape[-1]
    d = w - w.sum(axis=-1, keepdims=True) / n
    return np.sqrt((d * d).sum(axis=-1) / (n - 1))


def _lag(x: np.ndarray, k: int) -> np.ndarray:
    out = np.full_like(x, np.nan)
    if k < x.shape[0]:
        out[k:] = x[:-k] if k else x
    return out


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a / b``, NaN where ``b`` is 0 (NaN in, NaN out)."""
    return np.divide(a, b, out=np.full(np.shape(a), np.nan), where=b != 0)


def _floored(scale: np.ndarray) -> np.ndarray:
    """A volatility or standard deviation to divide by: ``max(scale, SCALE_FLOOR)`` (NaN stays NaN)."""
    return np.maximum(scale, SCALE_FLOOR)


def _zscore(x: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``x / max(scale, SCALE_FLOOR)`` bounded to ``[-Z_BOUND, Z_BOUND]`` (NaN stays NaN)."""
    return np.clip(x / _floored(scale), -Z_BOUND, Z_BOUND)


def _angle(time: np.ndarray | None, period_days: float, offset_days: float = 0.0) -> np.ndarray:
    if time is None:
        raise ValueError("the seasonal features (hour_*, week_*) need the bars' time stamps (time=...)")
    return 2.0 * np.pi * np.mod(time + offset_days, period_days) / period_days


def _features(o, h, l, c, v, time=None) -> dict[str, tuple[int, Callable[[], np.ndarray]]]:
    logc = np.log(c)
    r1 = np.concatenate(([np.nan], np.diff(logc)))
    memo: dict[str, np.ndarray] = {}

    def vol24() -> np.ndarray:  # three features use it: computed once per call
        if "vol24" not in memo:
            memo["vol24"] = _rolling(r1, 24, _std)
        return memo["vol24"]

    prev_vol24 = lambda: _lag(vol24(), 1)                        # noqa: E731
    logv = np.log1p(v)

    def volume_z() -> np.ndarray:
        mean = _lag(_rolling(logv, 48, lambda w: w.sum(axis=-1) / w.shape[-1]), 1)
        std = _lag(_rolling(logv, 48, _std), 1)
        return _zscore(logv - mean, std)              # 48 bars of one volume: ~0 if it stays, extreme if not

    def range_pos() -> np.ndarray:
        hi = _rolling(h, 24, lambda w: w.max(axis=-1))
        lo = _rolling(l, 24, lambda w: w.min(axis=-1))
        out = _safe_div(c - lo, hi - lo)
        out[hi == lo] = 0.5                           # a flat range: the close is at both ends
        return out

    def rsi() -> np.ndarray:
        d = np.r_[np.nan, np.diff(c)]
        gains = _rolling(np.maximum(d, 0.0), 14, lambda w: w.sum(axis=-1))
        moves = _rolling(np.abs(d), 14, lambda w: w.sum(axis=-1))
        out = _safe_div(gains, moves)
        out[(moves == 0) & np.isfinite(moves)] = 0.5   # no change in 14 closes
        return out

    def log_rms(x: np.ndarray, window: int) -> np.ndarray:
        """log of the root mean square of ``x`` over ``window`` bars, floored at SCALE_FLOOR."""
        return np.log(_floored(np.sqrt(_rolling(x * x, window, lambda w: w.sum(axis=-1) / w.shape[-1]))))

    def parkinson(window: int) -> np.ndarray:
        """log Parkinson range volatility over ``window`` bars (the bar's own range included)."""
        return log_rms(np.log(h / l) / np.sqrt(4.0 * np.log(2.0)), window)

    def garman_klass() -> np.ndarray:
        hl, co = np.log(h / l), np.log(c / o)
        var = _rolling(0.5 * hl * hl - (2.0 * np.log(2.0) - 1.0) * co * co, 24,
                       lambda w: w.sum(axis=-1) / w.shape[-1])
        return np.log(_floored(np.sqrt(np.maximum(var, 0.0))))    # the estimator can dip below 0 on a bar

    # name -> (lookback in bars: the feature of bar t needs bars t - lookback .. t, computation)
    return {
        "ret_1": (1, lambda: r1),
        "ret_z": (25, lambda: _zscore(r1, prev_vol24())),
        "ret_4": (4, lambda: logc - _lag(logc, 4)),
        "ret_24": (24, lambda: logc - _lag(logc, 24)),
        "vol_24": (24, vol24),
        "vol_ratio": (48, lambda: np.log(_floored(_rolling(r1, 6, _std)) / _floored(_rolling(r1, 48, _std)))),
        "volume_z": (48, volume_z),
        "range_z": (25, lambda: _zscore(np.log(h / l), prev_vol24())),
        "range_pos": (23, range_pos),
        "rsi_14": (14, rsi),
        "lvol_1": (1, lambda: np.log(_floored(np.abs(r1)))),
        "lvol_6": (6, lambda: log_rms(r1, 6)),
        "lvol_24": (24, lambda: log_rms(r1, 24)),
        "lvol_48": (48, lambda: log_rms(r1, 48)),
        "lvol_168": (168, lambda: log_rms(r1, 168)),
        "lpark_6": (5, lambda: parkinson(6)),
        "lpark_24": (23, lambda: parkinson(24)),
        "lpark_168": (167, lambda: parkinson(168)),
        "lgk_24": (23, garman_klass),
        # 1970-01-01 was a Thursday: Monday 00:00 is 3 days after it, modulo a week
        "hour_sin": (0, lambda: np.sin(_angle(time, 1.0))),
        "hour_cos": (0, lambda: np.cos(_angle(time, 1.0))),
        "hour2_sin": (0, lambda: np.sin(2.0 * _angle(time, 1.0))),
        "hour2_cos": (0, lambda: np.cos(2.0 * _angle(time, 1.0))),
        "week_sin": (0, lambda: np.sin(_angle(time, 7.0, 3.0))),
        "week_cos": (0, lambda: np.cos(_angle(time, 7.0, 3.0))),
    }


ALL_FEATURES: tuple[str, ...] = ("ret_1", "ret_z", "ret_4", "ret_24", "vol_24", "vol_ratio", "volume_z",
                                 "range_z", "range_pos", "rsi_14", "lvol_1", "lvol_6", "lvol_24", "lvol_48", "lvol_168",
                                 "lpark_6", "lpark_24", "lpark_168", "lgk_24", "hour_sin", "hour_cos", "hour2_sin",
                                 "hour2_cos", "week_sin", "week_cos")
DEFAULT_FEATURES: tuple[str, ...] = ("ret_z", "ret_4", "ret_24", "vol_24", "vol_ratio", "volume_z", "range_z",
                                     "range_pos")
#: the state of the risk forecasts (``BNNUncertainty``): HAR volatilities, range estimators, the last move
#: the bar's place in the day and the week (need the bars' time stamps)
SEASONAL_FEATURES: tuple[str, ...] = ("hour_sin", "hour_cos", "hour2_sin", "hour2_cos", "week_sin", "week_cos")
RISK_FEATURES: tuple[str, ...] = ("ret_1", "ret_z", "lvol_1", "lvol_6", "lvol_24", "lvol_48", "lpark_24",
                                  "lgk_24", "volume_z")

#: the regressors of ``BNNUncertainty``'s volatility forecast (``standardize=True``) and ``HarForecast``'s: log realised
#: volatility over 6 bars, a day, two days and a week (the HAR components; Corsi 2009), Parkinson range volatility over
#: 6 bars, a day and a week and the day's Garman-Klass volatility (a bar's range says more about its volatility than
#: its close-to-close return), two scale-free surprises (the last return in units of the day's volatility, the
#: volume's z-score), and the time of day as the first two harmonics of the daily cycle (volatility follows the clock:
#: Andersen & Bollerslev 1997; a volume surprise at the busy hours is no surprise). Not the raw last return or
#: ``lvol_1``: a raw return's scale drifts with the market's, and the log of one bar's absolute return has a long left
#: tail (a flat bar sits at the floor), which least squares does not survive (the regression alone, with its
#: residuals' quantiles, on a synthetic market: -2.2 % against GARCH-t without the two, -0.9 % with). On BTC/USDT
#: 2017-19 (seeds 0 / 1) the clock terms moved the BNN's pinball loss against GARCH-t from -2.0 / -2.1 % to
#: -2.4 / -2.4 %, the range volatilities over 6 bars and a week to -2.5 / -2.5 % (the regression alone with its
#: residuals' quantiles: -1.9 → -2.1 → -2.4 %); on two synthetic markets, whose volatility has no daily cycle, both
#: were better on average over two or three network seeds, which move a run there by one to three points
SCALE_FEATURES: tuple[str, ...] = ("ret_z", "volume_z", "lvol_6", "lvol_24", "lvol_48", "lvol_168", "lpark_6",
                                   "lpark_24", "lpark_168", "lgk_24", "hour_sin", "hour_cos", "hour2_sin", "hour2_cos")

#: the HAR state of the regime's volatility forecast (``VolatilityRegime``, ``Regime``'s pool): log realised volatility
#: over a bar, 6 bars, a day and two days of hourly bars, and the day's Parkinson range volatility. Two days, not a
#: week: the lookback stays the default features' 48 bars, so the pool does not delay ``Regime``'s first value (on
#: BTC/USDT 2017-19 the forecast's log loss was 1.164 with 48 bars, 1.170 with 168; on three synthetic markets mixed)
VOLATILITY_FEATURES: tuple[str, ...] = ("lvol_1", "lvol_6", "lvol_24", "lvol_48", "lpark_24")

_LOOKBACK = {name: lb for name, (lb, _) in _features(*(np.ones(1),) * 5).items()}


def _check_spec(spec: Sequence[str]) -> tuple[str, ...]:
    spec = tuple(spec)
    unknown = [s for s in spec if s not in _LOOKBACK]
    if unknown or not spec:
        raise ValueError(f"unknown feature(s) {unknown}; choose from {list(ALL_FEATURES)}")
    if len(set(spec)) != len(spec):
        raise ValueError(f"features must not repeat; got {list(spec)}")
    return spec


def lookback(spec: Sequence[str] = DEFAULT_FEATURES) -> int:
    """Bars before ``t`` that the features of bar ``t`` read: the first ``lookback`` rows are NaN.

    >>> lookback(("ret_1", "ret_4"))
    4
    """
    return max(_LOOKBACK[s] for s in _check_spec(spec))


def market_features(open: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
                    volume: np.ndarray, spec: Sequence[str] = DEFAULT_FEATURES, time: np.ndarray | None = None
                    ) -> np.ndarray:
    """Causal features of bars, an array of shape ``(n_bars, len(spec))`` in the order of ``spec``; ``time``
    (days since 1970-01-01 UTC, one per bar) is needed by the seasonal features only.

    >>> import numpy as np
    >>> c = np.array([100.0, 101.0, 99.0, 100.0, 102.0])
    >>> X = market_features(c, c * 1.01, c * 0.99, c, np.ones(5), spec=("ret_1", "ret_4"))
    >>> np.round(X[:, 1], 4).tolist()
    [nan, nan, nan, nan, 0.0198]
    """
    spec = _check_spec(spec)
    arrays = [np.asarray(a, dtype=np.float64) for a in (open, high, low, close, volume)]
    n = arrays[0].shape[0]
    if any(a.ndim != 1 or a.shape[0] != n for a in arrays):
        raise ValueError("open, high, low, close and volume must be 1-D arrays of the same length; got shapes "
                         f"{[a.shape for a in arrays]}")
    if (arrays[3] <= 0).any() or (arrays[2] <= 0).any() or (arrays[1] <= 0).any():
        raise ValueError("prices must be positive to take log returns")
    if time is not None:
        time = np.asarray(time, dtype=np.float64)
        if time.shape != (n,):
            raise ValueError(f"time must hold one stamp per bar: shape {(n,)}; got {time.shape}")
    out = np.empty((n, len(spec)))
    if n:
        table = _features(*arrays, time=time)
        for j, name in enumerate(spec):
            out[:, j] = table[name][1]()
    return out
