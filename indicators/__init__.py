"""backtrader indicators of the models: walk-forward, causal, batched (``once``) and incremental (``next``)."""
from .base import WalkForwardIndicator
from .density import LogDensity
from .energy import Energy
from .features import ALL_FEATURES, DEFAULT_FEATURES, market_features
from .regime import REGIME_NAMES, Regime
from .score_direction import ScoreDirection
from .settings import WalkForwardSettings
from .uncertainty import BNNUncertainty

__all__ = ["ALL_FEATURES", "BNNUncertainty", "DEFAULT_FEATURES", "Energy", "LogDensity", "REGIME_NAMES", "Regime",
           "ScoreDirection", "WalkForwardIndicator", "WalkForwardSettings", "market_features"]
