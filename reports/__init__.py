"""Reports of finished backtests: QuantStats tearsheet, summary.json, plot, model diagnostics page."""
from .diagnostics import write_diagnostics
from .diagnostics_stats import DIAGNOSTIC_KEYS, diagnostic_figures
from .report import write_report

__all__ = ["DIAGNOSTIC_KEYS", "diagnostic_figures", "write_diagnostics", "write_report"]
