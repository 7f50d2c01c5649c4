"""Strategies, the risk overlay (``RiskScale``, the ``RiskManaged`` mixin, the rebalance rule), sizers, commission
and funding schemes, the Bybit broker and the strategy registry."""
from .baselines import BuyAndHold, SmaCross
from .broker import BybitBroker, FractionalBarPerc
from .commission import BYBIT_FEES, BybitCommission
from .density_gated import DensityGatedStrategy
from .energy_reversion import EnergyReversion
from .funding import FundingRates
from .managed import HeldDirection, RiskManaged
from .model_base import ModelStrategy
from .model_strategies import BNNConfidence, EnergySized, RegimeFilter, ScoreMomentum
from .overlay import RiskScale
from .portfolio import UncertaintyPortfolio
from .rebalance import RebalanceRule, round_trip_cost
from .registry import STRATEGIES, get_strategy, register_strategy
from .signal import SignalStrategy
from .sizers import EnergyScaledSizer, RiskScaleSizer, UncertaintySizer
from .var_sizer import VaRBudgetSizer

__all__ = ["BNNConfidence", "BYBIT_FEES", "BuyAndHold", "BybitBroker", "BybitCommission",
           "DensityGatedStrategy", "EnergyReversion", "EnergyScaledSizer", "EnergySized",
           "FractionalBarPerc", "FundingRates", "HeldDirection", "ModelStrategy", "RebalanceRule",
           "RegimeFilter", "RiskManaged", "RiskScale", "RiskScaleSizer", "STRATEGIES", "ScoreMomentum",
           "SignalStrategy", "SmaCross", "UncertaintyPortfolio", "UncertaintySizer", "VaRBudgetSizer",
           "get_strategy", "register_strategy", "round_trip_cost"]
