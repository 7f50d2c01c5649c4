"""Strategies, sizers, commission schemes and the backtest runner."""
import feeds.btcompat  # noqa: F401  (backtrader fixes first)

from .backtest import BacktestConfig, BacktestResult, backtest, indicator_lines
from .baselines import BuyAndHold, SmaCross
from .commission import FractionalCommission
from .registry import STRATEGIES, get_strategy, register_strategy

__all__ = ["BacktestConfig", "BacktestResult", "BuyAndHold", "FractionalCommission", "STRATEGIES",
           "SmaCross", "backtest", "get_strategy", "indicator_lines", "register_strategy"]
