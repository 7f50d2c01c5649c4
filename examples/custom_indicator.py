"""A custom walk-forward indicator: the Mahalanobis distance of the market state, built on ``WalkForwardIndicator``.

The base class does the walk-forward work (causal features, a refit every ``retrain_every`` bars on the
``train_bars`` bars before, the held-out tail of each window, the disk cache of fitted models, batched and
bar-by-bar evaluation); the subclass names its lines and says how to make, calibrate and evaluate its model.
The model here is a Gaussian fitted on the window's features; the lines are the bar's Mahalanobis ``distance``
from it and the ``pvalue`` of that distance against the held-out tail (share of held-out bars at least as far).
On data like the training window the p-values are uniform: about 5 % of bars fall below 0.05.

A model class needs what the base calls: ``fit(X, X_val=...)``, ``double()`` (evaluate in float64),
``save(path, meta=...)`` and the classmethod ``load(path)`` that gives ``meta`` back as ``meta_`` (the cache checks
it: a file with another key or version is fitted again). Run it (a few seconds)::

    python examples/custom_indicator.py
"""
import json
from pathlib import Path

import backtrader as bt
import numpy as np

from btdensity import BybitCommission, DataFrameFeed, WalkForwardIndicator, synthetic_market
from btdensity.atomic import atomic_path
from btdensity.indicators.calibration import sorted_reference, upper_tail_pvalue


class GaussianModel:
    """Mean and (shrunk) covariance of the training rows; ``distance(X)`` is each row's Mahalanobis distance."""

    def __init__(self, n_features, shrinkage=0.05):
        self.n_features, self.shrinkage = n_features, shrinkage
        self.mean = self.precision = None
        self.meta_ = {}

    def fit(self, X, X_val=None):
        self.mean = X.mean(axis=0)
        cov = np.cov(X, rowvar=False)
        cov = (1 - self.shrinkage) * cov + self.shrinkage * np.diag(np.diag(cov))   # shrunk towards the diagonal
        self.precision = np.linalg.inv(cov)
        return self

    def distance(self, X):
        d = X - self.mean
        return np.sqrt(np.einsum("ij,jk,ik->i", d, self.precision, d))

    def double(self):
        return self            # numpy evaluates in float64 already

    def save(self, path, meta=None):
        state = {"n_features": self.n_features, "shrinkage": self.shrinkage, "mean": self.mean.tolist(),
                 "precision": self.precision.tolist(), "meta": meta or {}}
        with atomic_path(path) as tmp:         # never half a file under the final name
            tmp.write_text(json.dumps(state))

    @classmethod
    def load(cls, path):
        state = json.loads(Path(path).read_text())
        model = cls(state["n_features"], state["shrinkage"])
        model.mean, model.precision = np.array(state["mean"]), np.array(state["precision"])
        model.meta_ = state["meta"]
        return model


class MahalanobisDistance(WalkForwardIndicator):
    """``distance`` of the bar's features from the training window's Gaussian and its upper-tail ``pvalue``."""

    lines = ("distance", "pvalue")
    default_model_kwargs = {"shrinkage": 0.05}     # model_kwargs=... overrides; part of the cache key

    def model_class(self):
        return GaussianModel

    def make_model(self, n_features):
        return GaussianModel(n_features, **self.model_kwargs)

    def calibrate(self, model, X_val, y_val):
        return sorted_reference(model.distance(X_val))

    def evaluate(self, model, state, X):
        d = model.distance(X)
        return np.column_stack([d, upper_tail_pvalue(state, d)])


class TypicalTrend(bt.Strategy):
    """Long while the close is above its 48-bar SMA and the market state is typical (``pvalue > alpha``)."""

    params = (("alpha", 0.05), ("train_bars", 2000), ("retrain_every", 500), ("cache_dir", "default"))

    def __init__(self):
        self.sma = bt.ind.SMA(self.data.close, period=48)
        self.maha = MahalanobisDistance(self.data, train_bars=self.p.train_bars, retrain_every=self.p.retrain_every,
                                        cache_dir=self.p.cache_dir)

    def next(self):
        want_long = self.maha.pvalue[0] > self.p.alpha and self.data.close[0] > self.sma[0]
        if want_long != bool(self.position):
            self.order_target_percent(target=0.95 if want_long else 0.0)


def main(bars=8760, train_bars=2000, retrain_every=500, seed=0, cache_dir="default", stationary=False):
    """Backtest ``TypicalTrend`` on the synthetic market; returns the final value and the indicator's lines.

    ``stationary=True``: one regime and no anomalies, a market where every bar is in distribution."""
    market = dict(regimes=("normal",), anomaly_rate=0.0) if stationary else {}
    cerebro = bt.Cerebro()
    cerebro.adddata(DataFrameFeed(dataname=synthetic_market(bars, seed=seed, **market)))
    cerebro.addstrategy(TypicalTrend, train_bars=train_bars, retrain_every=retrain_every, cache_dir=cache_dir)
    cerebro.broker.addcommissioninfo(BybitCommission(market="spot"))
    maha = cerebro.run()[0].maha
    pvalue = np.array(maha.pvalue.array)
    valid = pvalue[~np.isnan(pvalue)]
    result = {"final_value": cerebro.broker.getvalue(), "first_fit": maha.spec.first_fit, "fits": maha.n_fits,
              "pvalue": pvalue, "distance": np.array(maha.distance.array),
              "share_below_005": float(np.mean(valid < 0.05))}
    print(f"final value {result['final_value']:,.2f}; {result['fits']} fits, the first at bar {result['first_fit']}; "
          f"p-value below 0.05 on {result['share_below_005']:.1%} of bars (5% expected in distribution)")
    return result


if __name__ == "__main__":
    main()
