"""btdensity: deep probabilistic models of the market as walk-forward backtrader indicators.

``import btdensity`` (or any of its subpackages) applies the backtrader compatibility fixes once
(:mod:`btdensity.compat`); nothing has to be imported before backtrader. The common names are
available at the top level and load on first use, so ``import btdensity.feeds`` stays light:

>>> from btdensity import LogDensity, DataFrameFeed, synthetic_market, backtest   # doctest: +SKIP

Subpackages, in the direction of their imports: ``feeds`` and ``models`` (nothing of ours) <-
``indicators`` <- ``strategies`` <- ``runner`` <- ``reports`` / ``sweeps`` <- the command line
(``btdensity.run_backtest``, installed as the ``btdensity`` command).
"""
from __future__ import annotations

import importlib

from . import compat as _compat  # noqa: F401  (backtrader fixes, before anything imports backtrader)

__version__ = "0.3.0"

#: top-level name -> the subpackage that defines it (imported on first use)
_EXPORTS = {
    **dict.fromkeys(("EnergyModel", "JointEnergyClassifier", "GaussianRBM", "RealNVP", "ScoreModel",
                     "BayesianNN", "Prediction", "SequenceBNN"), "models"),
    **dict.fromkeys(("Energy", "LogDensity", "ScoreDirection", "BNNUncertainty", "Regime", "WalkForwardIndicator",
                     "WalkForwardSettings", "market_features", "GaussianDensity", "MixtureDensity",
                     "GarchForecast", "RealizedVolGate", "MomentumDirection", "PersistenceRegime", "LatentRegime",
                     "BNNHorizons", "SequenceUncertainty", "VolatilityRegime"), "indicators"),
    **dict.fromkeys(("DensityGatedStrategy", "EnergyScaledSizer", "UncertaintySizer", "BuyAndHold", "SmaCross",
                     "BybitCommission", "register_strategy"), "strategies"),
    **dict.fromkeys(("load_csv", "synthetic_market", "fetch_bybit", "DataFrameFeed", "BybitLiveFeed"), "feeds"),
    **dict.fromkeys(("backtest", "BacktestConfig", "BacktestResult", "paper_trading"), "runner"),
    **dict.fromkeys(("write_report",), "reports"),
    **dict.fromkeys(("sweep",), "sweeps"),
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
