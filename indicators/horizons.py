"""``BNNHorizons``: a Bayesian neural network's forecasts of the log return over several horizons at once, each with
its central interval, from one fit per window.

Lines, for each horizon ``h`` of the ``horizons`` parameter (default 1, 4 and 24 bars):

* ``mean_h<h>`` -- the predictive mean of ``log(close[t + h] / close[t])``;
* ``lower_h<h>``, ``upper_h<h>`` -- its central interval at ``level``, recalibrated on the held-out tail of the
  training window (one variance factor per horizon, so each horizon covers at its level there).

backtrader fixes an indicator's lines when its class is made, so the lines are named after the horizons asked for:
``BNNHorizons(data)`` has ``mean_h1, lower_h1, upper_h1, mean_h4, …, upper_h24``, and ``BNNHorizons(data,
horizons=(1, 6, 48))`` is an instance of a subclass of ``BNNHorizons`` (made once per set of horizons, named
``BNNHorizons`` too) with ``mean_h1, …, mean_h6, …, upper_h48``. ``BNNHorizons.line_names(horizons)`` lists them.

The model is one :class:`~btdensity.models.bnn.BayesianNN` with an output per horizon (one body, a mean and a noise
scale per horizon, a Student-t likelihood per output): the horizons share what they learn of the market state, and
a window costs one fit. Measured against one network per horizon on a simulated GARCH(1,1)-t market
(``benchmarks/bnn_horizons.py``): the same 5 % / 95 % pinball loss within noise at every horizon, in about a third
of the fit time.

Walk-forward: the label of horizon ``h`` at row ``t`` is known at bar ``t + h``; a row trains only once the label
of the longest horizon is known (``t + max(horizons) + embargo <= T_k - 1``), so the longest horizon sets the
embargo of every output and the first fit comes ``max(horizons)`` bars after the training window.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from btdensity.labels import forward_log_returns
from btdensity.models import BayesianNN
from btdensity.models.calibration import central_quantile, fit_variance_scale, moved_targets

from .base import WalkForwardIndicator
from .features import RISK_FEATURES

__all__ = ["BNNHorizons", "DEFAULT_HORIZONS"]

#: the horizons of ``BNNHorizons`` unless told otherwise: the next bar, four bars, a day of hourly bars
DEFAULT_HORIZONS = (1, 4, 24)
_STATS = ("mean", "lower", "upper")


def _check_horizons(horizons: Any) -> tuple[int, ...]:
    """``horizons`` as a tuple of increasing positive integers, or a ValueError naming it."""
    try:
        values = tuple(horizons)
    except TypeError:
        values = ()
    if (not values or any(isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1 for h in values)
            or any(a >= b for a, b in zip(values, values[1:]))):
        raise ValueError(f"BNNHorizons(horizons={horizons!r}): horizons must be increasing positive whole numbers "
                         "of bars, e.g. (1, 4, 24)")
    return tuple(int(h) for h in values)


class _HorizonLines(type(WalkForwardIndicator)):
    """Makes ``BNNHorizons(...)`` an instance of the subclass whose lines are named after its ``horizons``."""

    def doprenew(cls, *args: Any, **kwargs: Any) -> tuple[type, tuple, dict]:
        horizons = _check_horizons(kwargs.get("horizons", cls.params.horizons))
        return BNNHorizons.for_horizons(horizons), args, kwargs


class BNNHorizons(WalkForwardIndicator, metaclass=_HorizonLines):
    """Predictive mean (``mean_h<h>``) and central interval at ``level`` (``lower_h<h>`` … ``upper_h<h>``) of the log
    return over each horizon ``h`` of ``horizons``, recalibrated per horizon on the held-out tail of the training
    window; ``n_samples`` posterior draws per forecast. The longest horizon sets the walk-forward embargo."""

    params = (("horizons", DEFAULT_HORIZONS), ("level", 0.9), ("n_samples", 64), ("features", RISK_FEATURES))
    plotinfo = dict(subplot=True, plothlines=[0.0], plotname="BNN horizons")
    uses_labels = True
    default_model_kwargs = {"hidden": (32, 16), "kl_warmup": 20, "likelihood": "studentt"}
    default_fit_kwargs = {"epochs": 80, "patience": 10, "lr": 5e-3}

    #: the subclass of each set of horizons (see ``for_horizons``)
    _variants: dict[tuple[int, ...], type] = {}

    @staticmethod
    def line_names(horizons: Sequence[int] = DEFAULT_HORIZONS) -> tuple[str, ...]:
        """The lines of ``BNNHorizons`` for ``horizons``, in order.

        >>> BNNHorizons.line_names((1, 4))
        ('mean_h1', 'lower_h1', 'upper_h1', 'mean_h4', 'lower_h4', 'upper_h4')
        """
        return tuple(f"{stat}_h{h}" for h in _check_horizons(horizons) for stat in _STATS)

    @classmethod
    def for_horizons(cls, horizons: Sequence[int]) -> type:
        """The subclass of ``BNNHorizons`` whose lines are those of ``horizons`` (made on first use, then reused);
        ``BNNHorizons(data, horizons=...)`` instantiates it."""
        horizons = _check_horizons(horizons)
        variant = BNNHorizons._variants.get(horizons)
        if variant is None:
            names = BNNHorizons.line_names(horizons)
            styles = {"mean": dict(color="#1f77b4"), "lower": dict(color="#aaaaaa", linestyle="--"),
                      "upper": dict(color="#aaaaaa", linestyle="--")}
            # only the longest horizon is drawn by backtrader's plot: three horizons' bands would hide each other
            plotlines = {name: (dict(styles[name.split("_")[0]]) if name.endswith(f"_h{horizons[-1]}")
                                else dict(_plotskip=True)) for name in names}
            # a leading underscore keeps it out of backtrader's registry of indicator names; then it takes the name
            variant = type(BNNHorizons)("_BNNHorizons_" + "_".join(map(str, horizons)), (BNNHorizons,),
                                        {"lines": names, "params": (("horizons", horizons),), "plotlines": plotlines,
                                         "__module__": __name__, "__doc__": BNNHorizons.__doc__})
            # a fit worker rebuilds the indicator from this name: BNNHorizons, whose hooks read p.horizons
            variant.__name__ = variant.__qualname__ = "BNNHorizons"
            BNNHorizons._variants[horizons] = variant
        return variant

    def __init__(self) -> None:
        self.horizons = _check_horizons(self.p.horizons)
        if not 0.0 < self.p.level < 1.0:
            raise ValueError(f"BNNHorizons(level={self.p.level}): level must be in (0, 1)")
        if int(self.p.n_samples) < 2:
            raise ValueError(f"BNNHorizons(n_samples={self.p.n_samples}): need at least 2 posterior draws")
        if int(self.p.horizon) not in (0, self.horizons[-1]):
            raise ValueError(f"BNNHorizons(horizon={self.p.horizon}): give the horizons as horizons=(...); the "
                             "longest of them sets the embargo")
        self.p.horizon = self.horizons[-1]
        super().__init__()
        self.keep_kl_warmup_within_epochs()

    # ------------------------------------------------------------------ hooks
    def model_class(self) -> type:
        return BayesianNN

    def extra_config(self) -> dict[str, Any]:
        return {"horizons": list(self.horizons), "n_samples": int(self.p.n_samples)}

    def labels(self, close: np.ndarray) -> np.ndarray:
        """Row ``t``: the log returns over each horizon, ``(n, len(horizons))``, NaN until bar ``t + h``."""
        return np.column_stack([forward_log_returns(close, h) for h in self.horizons])

    def make_model(self, n_features: int) -> Any:
        return BayesianNN(n_features, n_outputs=len(self.horizons), seed=self.p.seed, **self.model_kwargs)

    def fit_model(self, model: Any, X: np.ndarray, y: np.ndarray | None, X_val: np.ndarray,
                  y_val: np.ndarray | None) -> None:
        model.fit(X, y, X_val=X_val, y_val=y_val, **self.fit_kwargs)

    def calibrate(self, model: Any, X_val: np.ndarray, y_val: np.ndarray | None) -> np.ndarray:
        """Per horizon, the factor on the predictive std that makes the held-out tail's central intervals cover at
        their nominal levels (``fit_variance_scale(criterion="coverage")``; independent of ``level``)."""
        pred = model.predict(X_val, n_samples=int(self.p.n_samples))
        mean, std = (np.asarray(a, dtype=np.float64).reshape(len(X_val), -1) for a in (pred.mean, pred.std))
        moved = moved_targets(y_val)
        return np.sqrt([fit_variance_scale(y_val[:, j], mean[:, j], std[:, j], model.df, criterion="coverage",
                                           moved=moved[:, j]) for j in range(len(self.horizons))])

    def evaluate(self, model: Any, state: np.ndarray, X: np.ndarray) -> np.ndarray:
        pred = model.predict(X, n_samples=int(self.p.n_samples))
        mean = np.asarray(pred.mean, dtype=np.float64).reshape(len(X), -1)
        half = central_quantile(float(self.p.level), model.df) * state * np.asarray(pred.std).reshape(len(X), -1)
        return np.stack([mean, mean - half, mean + half], axis=2).reshape(len(X), -1)
