"""Performance figures of a backtest, computed as QuantStats computes them for the tearsheet: the one place the
figures of ``summary.json``, the printed table and the sweeps come from. With several assets the trading figures
count every asset, and :func:`asset_figures` gives each asset's own (they add up to the portfolio's)."""
from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
import pandas as pd

__all__ = ["ASSET_KEYS", "PERFORMANCE_KEYS", "SUMMARY_KEYS", "TRADING_KEYS", "asset_figures", "average_holding_bars",
           "bars_per_day", "daily_returns", "fees_per_year", "performance", "periods_per_year", "summarize",
           "trading_figures", "turnover_per_year", "volatility", "years"]

PERFORMANCE_KEYS = ("final_value", "total_return", "cagr", "sharpe", "sortino", "max_drawdown", "calmar")
#: what trading costs: turnover and fees per year (multiples / fractions of the average equity), holding time
TRADING_KEYS = ("turnover_per_year", "fees_per_year", "avg_holding_days")
#: the figures of each asset of a portfolio (``summary.json``'s ``assets``); ``pnl``, ``total_return``, ``fees_paid``,
#: ``funding_paid``, ``turnover_per_year``, ``fees_per_year`` and ``n_trades`` add up to the portfolio's
ASSET_KEYS = ("pnl", "total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown", "calmar", "avg_weight",
              "turnover_per_year", "fees_paid", "fees_per_year", "funding_paid", "n_trades", "buy_and_hold_return")
SUMMARY_KEYS = ("final_value", "total_return", "cagr", "sharpe", "sortino", "max_drawdown", "calmar",
                "n_trades", "win_rate", "exposure", "fees_paid", "funding_paid", *TRADING_KEYS, "bars", "start",
                "end", "runtime_s", "benchmark")


def periods_per_year(index: pd.DatetimeIndex) -> int:
    """365 for markets that trade every day (any weekend bar), 252 for weekday-only data."""
    return 365 if (index.day_of_week >= 5).any() else 252


def bars_per_day(index: pd.DatetimeIndex) -> float:
    """Bars in a day of the data: one day over the median step between bars (at least 1: daily or longer bars)."""
    step = float(np.median((index[1:] - index[:-1]).total_seconds())) if len(index) > 1 else 86400.0
    return max(86400.0 / step, 1.0) if step > 0 else 1.0


def years(index: pd.DatetimeIndex) -> float:
    """The span of ``index`` in years of trading: its bars over ``periods_per_year × bars_per_day``."""
    return len(index) / (periods_per_year(index) * bars_per_day(index)) if len(index) else 0.0


def _traded(positions: pd.Series, close: pd.Series) -> float:
    """The value traded: |change of position| x close, summed over the bars (the first position counts whole)."""
    close = close.reindex(positions.index).to_numpy(dtype=np.float64)
    return float(np.nansum(np.abs(np.diff(positions.to_numpy(dtype=np.float64), prepend=0.0)) * close))


def turnover_per_year(result: Any) -> float:
    """Traded value (|change of position| × close, summed) over the average equity, per year: 2 is a round trip
    of the whole portfolio a year. Reads ``positions``, ``prices`` and ``values`` (every asset's ``asset_positions``
    and ``asset_prices`` when there are several)."""
    if getattr(result, "asset_positions", None) is not None:
        traded = sum(_traded(result.asset_positions[name], result.asset_prices[name]["close"])
                     for name in result.assets)
    else:
        traded = _traded(result.positions, result.prices["close"])
    span = years(result.values.index)
    return traded / float(result.values.mean()) / span if span > 0 else 0.0


def fees_per_year(result: Any) -> float:
    """Fees paid per year as a fraction of the average equity (0.05: fees cost 5 % of the account a year).
    Reads ``fees_paid`` and ``values``."""
    span = years(result.values.index)
    return float(result.fees_paid) / float(result.values.mean()) / span if span > 0 else 0.0


def average_holding_bars(positions: pd.Series | pd.DataFrame) -> float:
    """The mean length, in bars, of the spells with a position of one sign (a flip starts a new spell; a resize
    does not); a spell still open at the end counts to the last bar. 0 without positions. A frame (one column per
    asset) pools the spells of every asset.

    >>> average_holding_bars(pd.Series([0, 1, 2, 2, 0, -1, -1, 1, 0.0]))
    2.0
    >>> average_holding_bars(pd.DataFrame({"a": [1, 1, 1, 0.0], "b": [0, 1, 0, 1.0]}))
    1.6666666666666667
    """
    sign = np.sign(positions.to_numpy(dtype=np.float64))
    if not sign.any():
        return 0.0
    if sign.ndim == 1:
        sign = sign[:, None]
    before = np.vstack([np.zeros((1, sign.shape[1])), sign[:-1]])
    starts = int(((sign != 0) & (sign != before)).sum())
    return float((sign != 0).sum() / starts)


def trading_figures(result: Any) -> dict[str, float]:
    """``turnover_per_year``, ``fees_per_year`` and ``avg_holding_days`` of a result with ``positions``, ``prices``
    and ``fees_paid`` (``{}`` for one without, such as a window of a sweep)."""
    if not all(hasattr(result, name) for name in ("positions", "prices", "fees_paid")):
        return {}
    return {"turnover_per_year": _finite(turnover_per_year(result)), "fees_per_year": _finite(fees_per_year(result)),
            "avg_holding_days": average_holding_bars(_all_positions(result)) / bars_per_day(result.values.index)}


def _all_positions(result: Any) -> pd.Series | pd.DataFrame:
    """Every asset's positions (a frame) when there are several, else the positions."""
    several = getattr(result, "asset_positions", None)
    return result.positions if several is None else several


def daily_returns(values: pd.Series, initial: float) -> pd.Series:
    """Compound a per-bar equity curve to daily returns (the first day is measured from ``initial``).

    Uses each UTC day's last value, so intraday returns compound, never sum.
    """
    daily = values.resample("D").last().dropna()
    prev = daily.shift(1)
    prev.iloc[0] = initial
    out = daily / prev - 1.0
    out.index = out.index.tz_localize(None)
    return out


def _finite(x: float) -> float:
    x = float(x)
    return x if math.isfinite(x) else 0.0


def performance(values: pd.Series, initial: float, periods: int) -> dict[str, float]:
    """Final value, total return, CAGR, Sharpe, Sortino, max drawdown (negative) and Calmar.

    Ratios use daily compounded returns annualised with ``periods`` days a year, as QuantStats defines them (the
    tearsheet's figures; a test holds the two equal): Sharpe = mean / standard deviation (ddof 1) x sqrt(periods),
    Sortino = mean / sqrt(mean of squared negative returns) x sqrt(periods), CAGR = growth ** (periods / days) - 1.
    Computed here with numpy: importing QuantStats costs a second and a half, which only the tearsheet needs to pay.
    A ratio that is undefined (no variation, no drawdown) is reported as 0.
    """
    rets = daily_returns(values, initial).to_numpy(dtype=np.float64)
    final = float(values.iloc[-1])
    with np.errstate(all="ignore"):
        equity = np.cumprod(1.0 + rets)
        drawdown = float((equity / np.maximum.accumulate(np.r_[1.0, equity])[1:] - 1.0).min())
        growth = float(equity[-1])
        cagr = growth ** (periods / rets.size) - 1.0 if growth >= 0 else math.nan
        scale = math.sqrt(periods)
        std = float(np.std(rets, ddof=1)) if rets.size > 1 else math.nan
        downside = math.sqrt(float(np.sum(rets[rets < 0] ** 2)) / rets.size)
        mean = float(rets.mean())
        figures = {
            "final_value": final,
            "total_return": final / initial - 1.0,
            "cagr": cagr,
            "sharpe": mean / std * scale if std > 0 else math.nan,
            "sortino": mean / downside * scale if downside > 0 else math.nan,
            "max_drawdown": min(drawdown, 0.0),
            "calmar": cagr / abs(drawdown) if drawdown < 0 else 0.0,
        }
    return {k: _finite(v) for k, v in figures.items()}


def volatility(values: pd.Series, initial: float, periods: int) -> float:
    """The annualised volatility of an equity curve: the standard deviation of its daily compounded returns times
    √``periods`` (0 with fewer than two days)."""
    rets = daily_returns(values, initial)
    return _finite(rets.std() * math.sqrt(periods)) if len(rets) > 1 else 0.0


def asset_figures(result: Any, initial: float) -> dict[str, dict[str, float]]:
    """Each asset's figures in a portfolio backtest (``{}`` with one asset), keys ``ASSET_KEYS``.

    An asset's *sleeve* is its P&L on the whole starting cash: the equity curve ``initial + asset_pnl``. Its
    performance figures (``total_return`` = the asset's P&L over the starting cash, ``cagr``, ``volatility``,
    ``sharpe``, ``sortino``, ``max_drawdown``, ``calmar``) are :func:`performance`'s of that curve, so the assets'
    ``pnl`` and ``total_return`` add up to the portfolio's. ``avg_weight`` is the mean of the asset's position
    value over the portfolio's value; ``turnover_per_year`` and ``fees_per_year`` are over the *portfolio's* average
    equity, so they add up to its figures too, as ``fees_paid``, ``funding_paid`` and ``n_trades`` do;
    ``buy_and_hold_return`` is the asset's own price change over the run.
    """
    if getattr(result, "asset_positions", None) is None:
        return {}
    periods = periods_per_year(result.values.index)
    span = years(result.values.index)
    equity = float(result.values.mean())
    weights = result.asset_weights
    trades = result.trades
    out: dict[str, dict[str, float]] = {}
    for name in result.assets:
        pnl = result.asset_pnl[name]
        sleeve = initial + pnl
        close = result.asset_prices[name]["close"]
        fees = float(result.asset_fees[name])
        figures = {"pnl": float(pnl.iloc[-1]), **performance(sleeve, initial, periods),
                   "volatility": volatility(sleeve, initial, periods),
                   "avg_weight": _finite(weights[name].mean()),
                   "turnover_per_year": _finite(_traded(result.asset_positions[name], close) / equity / span)
                   if span > 0 else 0.0,
                   "fees_paid": fees, "fees_per_year": _finite(fees / equity / span) if span > 0 else 0.0,
                   "funding_paid": float(result.asset_funding[name]),
                   "n_trades": int((trades["asset"] == name).sum()) if "asset" in trades else 0,
                   "buy_and_hold_return": _finite(close.iloc[-1] / close.iloc[0] - 1.0)}
        out[name] = {key: figures[key] for key in ASSET_KEYS}
    return out


class Scored(Protocol):
    """What :func:`summarize` reads (a ``BacktestResult``, or a window of one)."""

    values: pd.Series       # broker value at each bar's close, UTC index
    benchmark: pd.Series    # buy-and-hold value of the same bars
    trades: pd.DataFrame    # closed trades, with a ``pnlcomm`` column
    runtime_s: float
    exposure: float


def summarize(result: Scored, initial: float) -> dict[str, Any]:
    """The figures of ``summary.json``: performance of the strategy and, under ``benchmark``, of buy-and-hold,
    trades, exposure and span; ``fees_paid`` / ``funding_paid`` and the :func:`trading_figures` when the result
    has them; with several assets also ``volatility`` and, under ``assets``, :func:`asset_figures`."""
    periods = periods_per_year(result.values.index)
    trades = result.trades
    n_trades = int(len(trades))
    summary: dict[str, Any] = performance(result.values, initial, periods)
    summary.update({
        "n_trades": n_trades,
        "win_rate": float((trades["pnlcomm"] > 0).mean()) if n_trades else 0.0,
        "exposure": float(result.exposure),
        "bars": int(len(result.values)),
        "start": result.values.index[0].isoformat(),
        "end": result.values.index[-1].isoformat(),
        "runtime_s": float(result.runtime_s),
        "periods_per_year": periods,
        "benchmark": performance(result.benchmark, initial, periods),
    })
    for key in ("fees_paid", "funding_paid"):
        if hasattr(result, key):
            summary[key] = float(getattr(result, key))
    summary.update(trading_figures(result))
    assets = asset_figures(result, initial)
    if assets:   # a portfolio: each asset's figures, and the portfolio's volatility to compare theirs with
        summary["volatility"] = volatility(result.values, initial, periods)
        summary["assets"] = assets
    return summary
