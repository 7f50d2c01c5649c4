"""Strategies, sizers, commission schemes and the backtest runner."""
import feeds.btcompat  # noqa: F401  (backtrader fixes first)

from .backtest import BacktestConfig, BacktestResult, backtest, indicator_lines
from .baselines import BuyAndHold, SmaCross
from .broker import BybitBroker, FractionalBarPerc
from .commission import BYBIT_FEES, BybitCommission
from .density_gated import DensityGatedStrategy
from .model_base import ModelStrategy
from .model_strategies import BNNConfidence, EnergySized, RegimeFilter, ScoreMomentum
from .funding import FundingRates
from .paper import paper_trading
from .registry import STRATEGIES, get_strategy, register_strategy
from .sizers import EnergyScaledSizer, UncertaintySizer

__all__ = ["BNNConfidence", "BYBIT_FEES", "BacktestConfig", "BacktestResult", "BuyAndHold", "BybitBroker",
           "BybitCommission", "DensityGatedStrategy", "EnergySized", "ModelStrategy", "RegimeFilter", "ScoreMomentum",
           "EnergyScaledSizer", "FractionalBarPerc", "FundingRates", "STRATEGIES",
           "SmaCross", "UncertaintySizer", "backtest", "get_strategy", "indicator_lines", "paper_trading",
           "register_strategy"]
