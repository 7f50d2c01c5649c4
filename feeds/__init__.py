"""Data in: CSV files, the synthetic sample market, a fast backtrader feed (and Bybit via ccxt)."""
from . import btcompat  # noqa: F401  (backtrader fixes first)
from .csvfile import load_csv
from .dataframe_feed import DataFrameFeed
from .ohlcv import OHLCV_COLUMNS, DataError, GapReport, find_gaps, validate_ohlcv
from .synthetic import REGIMES, synthetic_market
from .timeframes import parse_timeframe

__all__ = ["DataError", "DataFrameFeed", "GapReport", "OHLCV_COLUMNS", "REGIMES", "find_gaps",
           "load_csv", "parse_timeframe", "synthetic_market", "validate_ohlcv"]
