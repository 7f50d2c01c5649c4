"""Strategies, sizers, commission and funding schemes, the Bybit broker and the strategy registry."""
from .baselines import BuyAndHold, SmaCross
from .broker import BybitBroker, FractionalBarPerc
from .commission import BYBIT_FEES, BybitCommission
from .density_gated import DensityGatedStrategy
from .funding import FundingRates
from .model_base import ModelStrategy
from .model_strategies import BNNConfidence, EnergySized, RegimeFilter, ScoreMomentum
from .registry import STRATEGIES, get_strategy, register_strategy
from .sizers import EnergyScaledSizer, UncertaintySizer

__all__ = ["BNNConfidence", "BYBIT_FEES", "BuyAndHold", "BybitBroker", "BybitCommission", "DensityGatedStrategy",
           "EnergyScaledSizer", "EnergySized", "FractionalBarPerc", "FundingRates", "ModelStrategy", "RegimeFilter",
           "STRATEGIES", "ScoreMomentum", "SmaCross", "UncertaintySizer", "get_strategy", "register_strategy"]
