"""``synthetic_market``: a deterministic OHLCV market with ground truth, the embedded sample data set.

Prices follow a four-state Markov regime chain (calm / normal / volatile / crisis) with regime drift
and volatility, GARCH(1,1) volatility clustering inside each regime and Student-t shocks (fat tails).
Volume rises with volatility and follows a daily cycle; high and low bracket open and close.
Anomalies are injected on top: price jumps, volume spikes and flash crashes that recover on the next
bar. The columns ``regime`` (the state's name), ``anomaly`` (bool) and ``anomaly_kind`` are the truth, and so are
``drift`` and ``sigma``: the law the bar's log return (close over the previous close) was drawn from,
``drift + sigma · T`` with ``T`` a unit-variance Student-t with ``SHOCK_DF`` degrees of freedom (an anomaly's
move comes on top of it).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .ohlcv import validate_ohlcv
from .timeframes import parse_timeframe

__all__ = ["REGIMES", "ANOMALY_KINDS", "SHOCK_DF", "synthetic_market"]

REGIMES = ("calm", "normal", "volatile", "crisis")
ANOMALY_KINDS = ("jump", "volume_spike", "flash_crash")

# Per-hour parameters; other bar lengths are scaled from them.
_VOL = np.array([0.0025, 0.005, 0.010, 0.020])          # return std per hour
_DRIFT = np.array([0.00004, 0.00008, -0.00005, -0.0006])  # mean log return per hour
_SWITCH = np.array([                                      # hourly transition intensities
    [0.0, 0.004, 0.0, 0.0],
    [0.0015, 0.0, 0.002, 0.0],
    [0.0, 0.006, 0.0, 0.0015],
    [0.0, 0.0, 0.02, 0.0],
])
_GARCH_A, _GARCH_B = 0.07, 0.90   # shock and persistence of the in-regime variance multiplier
SHOCK_DF = 4.0                     # Student-t degrees of freedom of the shocks
_START = pd.Timestamp("2023-01-01", tz="UTC")


def _regime_path(rng: np.random.Generator, n: int, hours: float, allowed: np.ndarray) -> np.ndarray:
    rates = np.minimum(_SWITCH * hours, 0.5) * np.outer(allowed, allowed)
    trans = rates + np.diag(1.0 - rates.sum(axis=1))
    cum = np.cumsum(trans, axis=1)
    u = rng.random(n)
    path = np.empty(n, dtype=np.int64)
    state = 1 if allowed[1] else int(np.flatnonzero(allowed)[0])
    for t in range(n):
        path[t] = state
        state = int(np.searchsorted(cum[state], u[t], side="right"))
        state = min(state, len(REGIMES) - 1)
    return path


def _garch_multiplier(shocks: np.ndarray) -> np.ndarray:
    """Unit-mean GARCH(1,1) variance multiplier driven by the standardised shocks."""
    h = np.empty_like(shocks)
    omega = 1.0 - _GARCH_A - _GARCH_B
    prev = 1.0
    for t, z in enumerate(shocks):
        h[t] = prev
        prev = omega + _GARCH_A * prev * z * z + _GARCH_B * prev
    return h


def _place_anomalies(rng: np.random.Generator, n: int, rate: float, warmup: int) -> np.ndarray:
    """Bar indices of anomalies: at least 6 bars apart, none in the warm-up, room for a recovery bar."""
    count = int(rng.binomial(max(n - warmup - 1, 0), rate)) if n > warmup + 1 else 0
    chosen: list[int] = []
    for cand in rng.permutation(np.arange(warmup, n - 1)):
        if len(chosen) == count:
            break
        if all(abs(cand - c) >= 6 for c in chosen):
            chosen.append(int(cand))
    return np.sort(np.array(chosen, dtype=np.int64))


def synthetic_market(n_bars: int = 8760, freq: str = "1h", seed: int = 0, *,
                     start: str | pd.Timestamp = _START, price0: float = 20_000.0,
                     anomaly_rate: float = 0.004, regimes: tuple[str, ...] = REGIMES) -> pd.DataFrame:
    """Generate ``n_bars`` of a synthetic 24/7 market, deterministically for a given ``seed``.

    Returns a UTC-indexed frame with float ``open, high, low, close, volume`` and the ground truth:
    ``regime`` (one of ``REGIMES``), ``anomaly`` (bool) and ``anomaly_kind`` ('' or one of
    ``ANOMALY_KINDS``), ``drift`` and ``sigma`` (the mean and standard deviation of the bar's log return before any
    anomaly: the regime's drift, and its volatility times the GARCH multiplier). A flash crash marks two bars: the
    crash and its recovery. ``regimes`` restricts the chain to a subset of states (switches to the others are
    removed): one regime gives a stationary market, the known truth for "in distribution".

    >>> df = synthetic_market(500, seed=1)
    >>> df.shape, bool((df.high >= df[["open", "close"]].max(axis=1)).all())
    ((500, 10), True)
    """
    if int(n_bars) < 2:
        raise ValueError(f"n_bars must be at least 2; got {n_bars}")
    if not 0.0 <= anomaly_rate < 0.1:
        raise ValueError(f"anomaly_rate must be in [0, 0.1); got {anomaly_rate}")
    unknown = [r for r in regimes if r not in REGIMES]
    if unknown or not regimes:
        raise ValueError(f"regimes must be a non-empty subset of {REGIMES}; got {tuple(regimes)}")
    allowed = np.array([r in regimes for r in REGIMES], dtype=np.float64)
    n = int(n_bars)
    step = parse_timeframe(freq)
    hours = step / pd.Timedelta(hours=1)
    rng = np.random.default_rng(seed)

    regime = _regime_path(rng, n, hours, allowed)
    t_scale = np.sqrt((SHOCK_DF - 2.0) / SHOCK_DF)      # unit-variance Student-t
    shocks = rng.standard_t(SHOCK_DF, size=n) * t_scale
    sigma = _VOL[regime] * np.sqrt(hours) * np.sqrt(_garch_multiplier(shocks))
    log_ret = _DRIFT[regime] * hours + sigma * shocks

    index = pd.date_range(pd.Timestamp(start), periods=n, freq=step, tz="UTC" if pd.Timestamp(start).tz is None
                          else None, unit="ns")
    hour_of_day = index.hour.to_numpy() + index.minute.to_numpy() / 60.0
    daily_cycle = 0.25 * np.cos(2 * np.pi * (hour_of_day - 15.0) / 24.0)
    log_volume = (np.log(100.0 * hours) + 0.8 * np.log(sigma / (_VOL[1] * np.sqrt(hours)))
                  + 0.6 * np.abs(shocks) - 0.5 + daily_cycle + 0.25 * rng.standard_normal(n))
    volume = np.exp(log_volume)

    # Intrabar excursions beyond the open/close envelope, in units of the bar's sigma.
    up = np.abs(rng.standard_normal(n)) * 0.5 * sigma
    down = np.abs(rng.standard_normal(n)) * 0.5 * sigma

    kind = np.full(n, "", dtype=object)
    for i in _place_anomalies(rng, n, anomaly_rate, warmup=min(200, n // 4)):
        choice = ANOMALY_KINDS[int(rng.integers(len(ANOMALY_KINDS)))]
        size = rng.uniform(10.0, 16.0) * sigma[i]
        if choice == "jump":
            log_ret[i] += size if rng.random() < 0.5 else -size
            volume[i] *= rng.uniform(3.0, 6.0)
            kind[i] = choice
        elif choice == "volume_spike":
            volume[i] *= rng.uniform(12.0, 30.0)
            kind[i] = choice
        else:  # flash crash: a deep drop, then the next bar takes back most of it
            log_ret[i] -= size
            log_ret[i + 1] += 0.9 * size
            down[i] += 0.5 * size
            volume[i] *= rng.uniform(6.0, 12.0)
            volume[i + 1] *= rng.uniform(3.0, 6.0)
            kind[i] = kind[i + 1] = choice

    close = price0 * np.exp(np.cumsum(log_ret))
    open_ = np.r_[price0, close[:-1]]
    high = np.maximum(open_, close) * np.exp(up)
    low = np.minimum(open_, close) * np.exp(-down)

    df = pd.DataFrame({
        "open": open_, "high": high, "low": low, "close": close, "volume": volume,
        "regime": pd.Categorical(np.array(REGIMES, dtype=object)[regime], categories=list(REGIMES)),
        "anomaly": kind != "",
        "anomaly_kind": kind.astype(str),
        "drift": _DRIFT[regime] * hours,
        "sigma": sigma,
    }, index=index)
    df.index.name = "datetime"
    return validate_ohlcv(df, source="synthetic_market", step=step)
