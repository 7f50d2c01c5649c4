"""Reports of finished backtests: QuantStats tearsheet, summary.json, plot, model diagnostics page."""
from .diagnostics import write_diagnostics
from .diagnostics_stats import DIAGNOSTIC_KEYS, diagnostic_figures
from .metrics import daily_returns, performance, periods_per_year
from .report import SUMMARY_KEYS, summarize, write_report

__all__ = ["DIAGNOSTIC_KEYS", "SUMMARY_KEYS", "daily_returns", "diagnostic_figures", "performance",
           "periods_per_year", "summarize", "write_diagnostics", "write_report"]
