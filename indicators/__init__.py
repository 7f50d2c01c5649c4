"""backtrader indicators of the models: walk-forward, causal, batched (``once``) and incremental (``next``), and the
classical baselines with the same lines (``GaussianDensity`` / ``MixtureDensity`` for ``LogDensity``,
``RealizedVolGate`` for the gates and ``Energy``, ``GarchForecast`` and ``HarForecast`` for ``BNNUncertainty``,
``MomentumDirection`` for ``ScoreDirection``, ``PersistenceRegime`` and ``VolatilityRegime`` for ``Regime``);
``LatentRegime``, regimes as clusters of the flow's latent codes; ``BNNHorizons`` forecasts several horizons at once,
``SequenceUncertainty`` reads the last bars' features with a Bayesian sequence model."""
from .adaptive import AdaptiveGate, AdaptiveInterval
from .base import WalkForwardIndicator
from .density import LogDensity
from .density_baselines import GaussianDensity, MixtureDensity
from .energy import Energy
from .features import (ALL_FEATURES, DEFAULT_FEATURES, RISK_FEATURES, SCALE_FEATURES, SEASONAL_FEATURES,
                       market_features)
from .garch import GarchForecast
from .har_forecast import HarForecast
from .horizons import BNNHorizons
from .latent_regime import LatentRegime
from .persistence import PersistenceRegime
from .regime import REGIME_NAMES, Regime
from .score_direction import ScoreDirection
from .settings import WalkForwardSettings
from .statistic_baselines import MomentumDirection, RealizedVolGate
from .scenarios import ScenarioFan, scenario_fans, simulate_scenarios
from .tail_risk import TailRisk
from .uncertainty import BNNUncertainty, SequenceUncertainty
from .volatility_regime import VolatilityRegime

__all__ = ["ALL_FEATURES", "AdaptiveGate", "AdaptiveInterval", "BNNHorizons", "BNNUncertainty",
           "DEFAULT_FEATURES", "Energy", "GarchForecast", "GaussianDensity", "HarForecast", "LatentRegime",
           "LogDensity", "MixtureDensity", "MomentumDirection", "PersistenceRegime", "REGIME_NAMES", "RISK_FEATURES",
           "RealizedVolGate", "Regime", "SCALE_FEATURES", "SEASONAL_FEATURES", "ScenarioFan", "ScoreDirection",
           "SequenceUncertainty", "TailRisk", "VolatilityRegime", "WalkForwardIndicator", "WalkForwardSettings",
           "market_features", "scenario_fans", "simulate_scenarios"]
