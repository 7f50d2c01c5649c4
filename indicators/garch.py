"""``GarchForecast``: the classical risk forecast, GARCH(1,1) with Student-t errors, with the lines of
``BNNUncertainty`` that a strategy reads (``mean``, ``lower``, ``upper``, and ``std``), walk-forward like it."""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from btdensity.models.garch import GarchT

from .classical_forecast import ClassicalForecast
from .trailing import log_returns, trailing_windows

__all__ = ["GarchForecast"]

log = logging.getLogger(__name__)

#: a fitted ``beta^memory`` above this is logged: the row's start still weighs on the forecast
TRUNCATION_WARNING = 1e-3


class GarchForecast(ClassicalForecast):
    """Predictive ``mean`` and ``std`` of the log return over the next ``horizon`` bars under GARCH(1,1)-t, and the
    central interval ``lower`` … ``upper`` at ``level``.

    Walk-forward as the model indicators: the model fitted at ``T_k`` (on the one-bar log returns of its training
    window, fit rows and held-out tail together: nothing is early-stopped or calibrated on the tail, and no
    label is needed, so a fit reads bars ``<= T_k - 1 - embargo`` only) serves bars ``T_k … T_{k+1} - 1``.

    The input row of bar ``t`` is its last ``memory`` log returns. The variance recursion runs along the row from
    the training window's variance (``GarchT.one_step_variance``, vectorised over rows), so a value depends on
    bars ``t - memory … t`` only: exactly the same whether the data ends at ``t`` or not, batched or bar by bar.
    Why ``memory`` bars suffice: the recursion forgets geometrically. Started ``memory`` bars back from any
    variance, it differs from the recursion over the whole history by ``beta^memory`` times the difference of the
    starting values: ``0.9^500 ~ 1e-23``, ``0.98^500 ~ 4e-5`` (hourly GARCH fits have ``beta`` ~0.8–0.95). A fit
    whose ``beta^memory`` exceeds 1e-3 is logged; raise ``memory`` then.

    ``horizon = 1``: the interval is exact under the model (a Student-t with the fitted ``nu``, scaled to the
    forecast variance). ``horizon > 1``: the variance is exact (the sum of the ``horizon`` one-step forecasts), the
    interval approximates the sum's distribution by a Student-t of the same ``nu`` with that variance (the sum is
    closer to normal than one step, and heavier-tailed than normal through the variance's own randomness).
    """

    params = (("memory", 500),)
    plotinfo = dict(plotname="GARCH forecast")

    def __init__(self) -> None:
        if int(self.p.horizon) < 1 or int(self.p.memory) < 1:
            raise ValueError(f"GarchForecast(horizon={self.p.horizon}, memory={self.p.memory}): both must be >= 1")
        super().__init__()
        self._truncation_logged = False

    def model_class(self) -> type:
        return GarchT

    def inputs(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        return trailing_windows(log_returns(arrays["close"]), int(self.p.memory))

    def input_lookback(self) -> int:
        return int(self.p.memory)

    def input_key(self) -> Any:
        return ("log_returns", int(self.p.memory))

    def make_model(self, n_features: int) -> Any:
        return GarchT(**self.model_kwargs)

    def fit_model(self, model: Any, X: np.ndarray, y: np.ndarray | None, X_val: np.ndarray,
                  y_val: np.ndarray | None) -> None:
        model.fit(np.concatenate([X[:, -1], X_val[:, -1]]), **self.fit_kwargs)   # the window's returns, in order

    def calibrate(self, model: Any, X_val: np.ndarray, y_val: Any) -> Any:
        weight = model.truncation_weight(int(self.p.memory))
        if weight > TRUNCATION_WARNING and not self._truncation_logged:
            self._truncation_logged = True
            log.warning("GarchForecast: fitted beta %.4f leaves beta^memory = %.2g on the start of each row "
                        "(memory=%d); a longer memory forgets it", model.beta_, weight, int(self.p.memory))
        return None

    def evaluate(self, model: Any, state: Any, X: np.ndarray) -> np.ndarray:
        mean, var = model.forecast(X, int(self.p.horizon))
        std = np.sqrt(var)
        half = model.quantile_factor(float(self.p.level)) * std
        return np.column_stack([mean, std, mean - half, mean + half, np.zeros_like(std), std])
