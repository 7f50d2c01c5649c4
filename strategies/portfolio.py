"""``uncertainty_portfolio``: several assets, each weighted by a Bayesian network's forecast of its return and risk.

Per data feed a :class:`~btdensity.indicators.BNNUncertainty` predicts the log return over its ``horizon`` (its
``mean`` line) and the predictive standard deviation (its ``std`` line). Both are smoothed over
``forecast_halflife`` bars (an exponentially weighted mean of the mean and of the variance; a one-bar forecast is
mostly noise, and weights that follow it bar by bar pay it away in fees), then :func:`portfolio_weights` turns the
forecasts of all assets into target weights (signed fractions of portfolio value):

- ``method="mean_variance"``: ``mean / (risk_aversion × std²)`` per asset (clipped at 0 unless ``long_short``),
  scaled to a gross exposure of ``target`` (the sum of |weights|) — always with ``risk_aversion=None``, only when
  above it otherwise;
- ``method="risk_parity"``: weights proportional to ``1 / std``, summing to ``target`` (every asset carries the
  same predicted risk; the forecast means are not used).

An asset whose direction (in or out of it, long or short) the weights would change less than ``signal_hold`` bars
after its last change keeps its weight, and the others share the rest of ``target`` (the turnover brake of the
signal strategies, :class:`~btdensity.strategies.managed.HeldDirection`: a mean forecast near 0 would otherwise put
an asset in and out every few bars). Each asset's weight is traded through the risk overlay's
:class:`~btdensity.strategies.rebalance.RebalanceRule`, as in every managed strategy: a weight changes only when its
target has moved by more than ``band`` from the weight last traded, at least ``min_hold`` bars after that trade;
entering or leaving an asset is traded at once, and with ``mean_variance`` an entry or increase needs the forecast
gain over ``min_hold`` bars to beat the round-trip cost (``edge_margin``). Orders are market orders, filled at the
next bar's open, decreases sent before increases.

``multitask=True`` replaces the per-feed networks by one :class:`~btdensity.models.MultiTaskBNN` fitted on the
features of every asset at once (a shared body, one head per asset): :class:`MultiTaskUncertainty`, one indicator
per asset reading that asset's head, on the same walk-forward windows.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator, Sequence

import backtrader as bt
import numpy as np

from btdensity.indicators import BNNUncertainty, WalkForwardIndicator
from btdensity.indicators.base import OHLCV, bar_arrays
from btdensity.models import MultiTaskBNN

from .managed import HeldDirection, RiskManaged, forecast_edge
from .model_base import ModelStrategy, managed_model_checks
from .rebalance import Holding, round_trip_cost
from .registry import register_strategy

__all__ = ["METHODS", "MultiTaskUncertainty", "UncertaintyPortfolio", "portfolio_weights"]


#: how ``uncertainty_portfolio`` weights its assets
METHODS = ("mean_variance", "risk_parity")


def portfolio_weights(mean: Sequence[float], std: Sequence[float], method: str = "mean_variance",
                      gross: float = 1.0, long_only: bool = True, risk_aversion: float | None = None) -> np.ndarray:
    """Target weights (signed fractions of portfolio value) of assets with predicted returns ``mean`` and predicted
    standard deviations ``std`` (see the module docstring); all NaN when a forecast is missing (NaN, std <= 0).

    >>> portfolio_weights([0.002, 0.001], [0.02, 0.01], gross=0.9).round(6).tolist()   # 5 : 10 of 0.9
    [0.3, 0.6]
    >>> portfolio_weights([0.002, -0.001], [0.02, 0.01], gross=0.9).round(6).tolist()   # long only: 0 for B
    [0.9, 0.0]
    >>> portfolio_weights([0.0, 0.0], [0.02, 0.01], "risk_parity", gross=0.9).round(6).tolist()   # 1/std: 50 : 100
    [0.3, 0.6]
    >>> portfolio_weights([0.0002, 0.0001], [0.02, 0.01], risk_aversion=2.0).round(6).tolist()   # 0.5 and 0.5
    [0.25, 0.5]
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r}: one of {', '.join(METHODS)}")
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
        return np.full(mean.shape, np.nan)
    if method == "risk_parity":
        inverse = 1.0 / std
        return gross * inverse / inverse.sum()
    raw = mean / ((1.0 if risk_aversion is None else risk_aversion) * std ** 2)
    if long_only:
        raw = np.maximum(raw, 0.0)
    total = np.abs(raw).sum()
    if total == 0.0:
        return raw
    if risk_aversion is None or total > gross:
        return raw * (gross / total)
    return raw


@contextlib.contextmanager
def _on_feed(owner: Any, data: Any) -> Iterator[None]:
    """``owner.data`` set to ``data`` for the block: an indicator's feature memo (single-feed machinery) then works on
    that feed."""
    first = owner.data
    owner.data = data
    try:
        yield
    finally:
        owner.data = first


class MultiTaskUncertainty(BNNUncertainty):
    """``BNNUncertainty``'s lines for asset ``task`` of a :class:`~btdensity.models.MultiTaskBNN` fitted on the
    features of every data feed given (``MultiTaskUncertainty(data0, data1, ..., task=1)``; the feeds must tick on
    the same bars, as a portfolio backtest's aligned feeds do).

    A fit's row ``t`` is the features of every feed at bar ``t`` side by side, its target the forward log returns of
    every feed over ``horizon`` bars; the walk-forward contract is the single-feed indicator's (the same windows, a
    row enters a fit only once all its labels are known, truncation invariance, mode parity). One indicator per
    asset, with equal settings, share one fit per window: the fits have the same cache key (the second indicator
    finds the first one's model in the cache) and each reads its own head.
    """

    #: not standardised: one volatility per asset would be needed; the portfolio reads the heads' means
    params = (("task", 0), ("standardize", False), ("zero_mean", False))
    default_model_kwargs = {"hidden": (32,), "head_hidden": (16,), "kl_warmup": 20, "likelihood": "studentt"}

    def __init__(self) -> None:
        for i, data in enumerate(self.datas):
            missing = [name for name in OHLCV if not hasattr(data, name)]
            if missing:
                raise ValueError(f"MultiTaskUncertainty: data feed {i} has no OHLCV lines {missing} (pass the feeds)")
        task = self.p.task
        if isinstance(task, bool) or not isinstance(task, int) or not 0 <= task < len(self.datas):
            raise ValueError(f"MultiTaskUncertainty(task={task!r}): the index of one of the {len(self.datas)} feeds")
        if self.p.standardize:
            raise ValueError("MultiTaskUncertainty(standardize=True) is not supported: the assets' returns would need "
                             "one volatility each; use one BNNUncertainty(standardize=True) per feed")
        if self.p.zero_mean:
            raise ValueError("MultiTaskUncertainty(zero_mean=True) is not supported: the multi-task network's heads "
                             "forecast each asset's mean; use one BNNUncertainty(zero_mean=True) per feed")
        self.n_tasks = len(self.datas)
        super().__init__()

    def model_class(self) -> type:
        return MultiTaskBNN

    def make_model(self, n_features: int) -> Any:
        return MultiTaskBNN(n_features, n_tasks=self.n_tasks, seed=self.p.seed, **self.model_kwargs)

    def evaluate(self, model: Any, state: Any, X: np.ndarray) -> np.ndarray:
        pred = model.predict(X, n_samples=int(self.p.n_samples), level=float(self.p.level))
        return np.column_stack([np.asarray(getattr(pred, name), dtype=np.float64)[:, self.p.task]
                                for name in ("mean", "epistemic", "aleatoric", "lower", "upper", "std")])

    # ------------------------------------------------------------------ the rows of every feed
    def _history(self, size: int) -> dict[str, Any]:
        return {"feeds": [bar_arrays(data, size=size) for data in self.datas]}

    def _once_inputs(self) -> tuple[np.ndarray, np.ndarray | None, int]:
        n = self.data.buflen()
        arrays = {"feeds": [bar_arrays(data, first=n) for data in self.datas]}
        X, y = self._features_and_labels(arrays, n - 1)
        return X, y, n

    def _features(self, arrays: dict[str, Any], end_bar: int) -> np.ndarray:
        """Every feed's rows side by side; each feed's from its own memo (shared with its other indicators)."""
        parts = []
        for data, feed in zip(self.datas, arrays["feeds"]):
            with _on_feed(self, data):
                parts.append(WalkForwardIndicator._features(self, feed, end_bar))
        return np.hstack(parts)

    def _features_and_labels(self, arrays: dict[str, Any], end_bar: int) -> tuple[np.ndarray, np.ndarray | None]:
        X = self._features(arrays, end_bar)
        return X, np.column_stack([self.labels(feed["close"]) for feed in arrays["feeds"]])


@register_strategy("uncertainty_portfolio")
class UncertaintyPortfolio(RiskManaged, ModelStrategy):
    """Weights several assets (one data feed each; one feed works too) by their BNN forecasts, ``method`` =
    ``"mean_variance"`` or ``"risk_parity"``, at a gross exposure of ``target``, rebalanced past ``band`` (see the
    module docstring). ``long_short=False`` (the default) keeps mean-variance weights long only; ``risk_aversion``
    (None: always the full ``target``) makes them ``mean / (risk_aversion × std²)``, capped at ``target``;
    ``multitask=True`` fits one :class:`~btdensity.models.MultiTaskBNN` over every asset's features;
    ``forecast_halflife`` (24 bars; 0: none) smooths the forecasts the weights are made of; ``signal_hold`` (168
    bars) is each asset's turnover brake: its direction (in or out, long or short) changes at most once in as many
    bars (:class:`~btdensity.strategies.managed.HeldDirection`, as in the signal strategies).

    ``replace`` swaps the per-feed ``BNNUncertainty`` like every model strategy's indicators (a baseline by class
    name, e.g. ``{"BNNUncertainty": "GarchForecast"}``, or ``(indicator class, values)``: then the class is built on
    each feed with the same ``values``, and may pick its own by the feed's name, ``data._name``).

    ``forecasts`` holds the indicator of each feed (in ``datas`` order), ``forecast`` the smoothed ``(mean, std)``
    of the bar, ``holdings`` what each asset last traded (direction, weight, bar), ``directions`` their held
    directions.
    """

    params = (("method", "mean_variance"), ("multitask", False), ("risk_aversion", None), ("forecast_halflife", 24),
              ("signal_hold", 168))

    def __init__(self) -> None:
        super().__init__()
        managed_model_checks(self)
        if self.p.method not in METHODS:
            raise ValueError(f"UncertaintyPortfolio(method={self.p.method!r}): one of {', '.join(METHODS)}")
        if self.p.risk_aversion is not None and not (isinstance(self.p.risk_aversion, (int, float))
                                                     and self.p.risk_aversion > 0):
            raise ValueError(f"UncertaintyPortfolio(risk_aversion={self.p.risk_aversion!r}): a positive number or None")
        self.forecasts = [self._forecast(i, data) for i, data in enumerate(self.datas)]
        self.uncertainty = self.forecasts[0]    # diagnostics=True then adds no second BNN on the first asset
        self.holdings = [Holding() for _ in self.datas]
        self.directions = [HeldDirection(self.p.signal_hold) for _ in self.datas]
        self._asset_orders: list[tuple[bt.Order, int, Holding]] = []
        halflife = self.p.forecast_halflife
        if isinstance(halflife, bool) or not isinstance(halflife, int) or halflife < 0:
            raise ValueError(f"UncertaintyPortfolio(forecast_halflife={halflife!r}): a number of bars >= 0 (0: none)")
        self._weight = 1.0 if halflife == 0 else 1.0 - 0.5 ** (1.0 / halflife)
        self._smoothed: tuple[np.ndarray, np.ndarray] | None = None   # mean and variance of every asset
        self.forecast: tuple[np.ndarray, np.ndarray] | None = None    # this bar's (mean, std); None: not known
        self.targets = np.full(len(self.datas), np.nan)               # this bar's target weights
        self.attach_diagnostics()

    def _forecast(self, i: int, data: Any) -> Any:
        """The forecast indicator of feed ``i``: its own BNNUncertainty (or what ``replace`` puts there), or its head
        of the multi-task network."""
        if self.p.multitask:
            return MultiTaskUncertainty(*self.datas, task=i, **self.walk_forward.indicator_params())
        # the weights and the directions read the network's mean forecast
        return self.model(BNNUncertainty, data=data, zero_mean=False)   # the walk-forward settings, the replace swaps

    # ------------------------------------------------------------------ trading
    def core(self) -> float:   # the assets' weights are decided together in rebalance()
        return math.nan

    def next(self) -> None:
        self.update_forecast()
        self.targets = self.target_weights()
        self.rebalance()

    def update_forecast(self) -> None:
        """This bar's ``forecast``: every asset's predicted mean and variance, exponentially smoothed with a half-life
        of ``forecast_halflife`` bars (0: as predicted), as ``(mean, std)``; None while a forecast is missing (the
        smoothing then waits for the next complete bar)."""
        mean = np.array([f.mean[0] for f in self.forecasts], dtype=np.float64)
        var = np.array([f.std[0] for f in self.forecasts], dtype=np.float64) ** 2
        if not (np.isfinite(mean).all() and np.isfinite(var).all()):
            self.forecast = None
            return
        if self._smoothed is None:
            self._smoothed = (mean, var)
        else:
            before_mean, before_var = self._smoothed
            self._smoothed = (before_mean + self._weight * (mean - before_mean),
                              before_var + self._weight * (var - before_var))
        self.forecast = (self._smoothed[0], np.sqrt(self._smoothed[1]))

    def target_weights(self) -> np.ndarray:
        """The weights this bar's ``forecast`` asks for (NaN while it is missing), under the direction hold: an asset
        whose direction (in, out; long or short) the forecast would change less than ``signal_hold`` bars after its
        last change keeps the weight it last traded, and the other assets share what is left of ``target``."""
        if self.forecast is None:
            return np.full(len(self.datas), np.nan)
        mean, std = self.forecast
        weights = portfolio_weights(mean, std, self.p.method, float(self.p.target), long_only=not self.p.long_short,
                                    risk_aversion=self.p.risk_aversion)
        if not np.isfinite(weights).all():
            return weights
        bar = len(self) - 1
        wanted = np.sign(weights).astype(int)
        kept = np.array([held.update(bar, int(want)) != want for held, want in zip(self.directions, wanted)])
        if not kept.any():
            return weights
        weights[kept] = [self.holdings[i].weight for i in np.flatnonzero(kept)]
        free = ~kept
        if free.any():
            left = max(float(self.p.target) - float(np.abs(weights[kept]).sum()), 0.0)
            weights[free] = portfolio_weights(mean[free], std[free], self.p.method, left,
                                              long_only=not self.p.long_short, risk_aversion=self.p.risk_aversion)
        return weights

    def rebalance(self) -> None:
        """Trade each asset whose target weight (``targets``, of this bar) the rebalance rule says to trade;
        decreases first. Nothing is sent while an order of the portfolio is working."""
        if any(order.alive() for order, _, _ in self._asset_orders):
            return
        weights = self.targets
        if not np.isfinite(weights).all():
            return
        bar = len(self) - 1
        value = self.broker.getvalue()
        trades = []
        for i, (data, weight) in enumerate(zip(self.datas, weights)):
            direction = int(np.sign(weight))
            edge = None
            if self.p.method == "mean_variance" and direction:
                horizon = max(int(getattr(getattr(self.forecasts[i], "p", None), "horizon", 1)), 1)
                edge = forecast_edge(float(self.forecast[0][i]), horizon, int(self.p.min_hold))
            decision = self.rule.decide(bar, direction, float(weight), self.holdings[i],
                                        round_trip_cost(self.broker, data), edge)
            if decision is not None:
                held = self.broker.getvalue(datas=[data]) / value if value > 0 else 0.0
                trades.append((abs(decision[1]) - abs(held), i, decision))
        for _, i, (direction, weight) in sorted(trades, key=lambda t: (t[0], t[1])):
            before = self.holdings[i]
            self.holdings[i] = Holding(direction, weight, bar)
            order = self.order_target_percent(data=self.datas[i], target=weight)
            if order is not None:
                self._asset_orders.append((order, i, before))

    def notify_order(self, order: bt.Order) -> None:
        super().notify_order(order)
        for j, (placed, i, before) in enumerate(self._asset_orders):
            if placed is order and not order.alive():
                del self._asset_orders[j]
                if order.status in (order.Margin, order.Rejected, order.Canceled):
                    self.holdings[i] = before      # not traded: decide again on the next bar
                break
