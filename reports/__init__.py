"""Reports of finished backtests: QuantStats tearsheet, summary.json, plot."""
from .metrics import daily_returns, performance, periods_per_year
from .report import SUMMARY_KEYS, summarize, write_report

__all__ = ["SUMMARY_KEYS", "daily_returns", "performance", "periods_per_year", "summarize", "write_report"]
