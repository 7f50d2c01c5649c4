"""Data in: CSV files, the synthetic sample market, a fast backtrader feed (and Bybit via ccxt)."""
from .csvfile import load_csv
from .dataframe_feed import DataFrameFeed
from .ohlcv import OHLCV_COLUMNS, DataError, GapReport, find_gaps, validate_ohlcv
from .synthetic import REGIMES, synthetic_market
from .timeframes import parse_timeframe

__all__ = ["BybitLiveFeed", "DataError", "DataFrameFeed", "FetchError", "GapReport", "OHLCV_COLUMNS",
           "REGIMES", "RetryPolicy", "fetch_bybit", "fetch_funding_rates", "find_gaps", "load_csv",
           "parse_timeframe", "synthetic_market", "validate_ohlcv"]

# The Bybit names import ccxt (about a second): load them on first use only.
_LAZY = {"fetch_bybit": ".bybit", "fetch_funding_rates": ".funding", "BybitLiveFeed": ".live",
         "FetchError": ".retry", "RetryPolicy": ".retry"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
