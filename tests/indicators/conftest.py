"""Helpers of the indicator tests."""
import backtrader as bt
import numpy as np

from btdensity.feeds import DataFrameFeed
from btdensity.indicators.features import SCALE_FEATURES
from btdensity.indicators.walkforward import FitCache

#: BNNUncertainty's volatility regressors without the week's (``lvol_168``, ``lpark_168``): the lookback of the other
#: model indicators (48 bars), so that the short test markets hold the windows the tests count on
DAY_SCALE_FEATURES = tuple(f for f in SCALE_FEATURES if not f.endswith("_168"))


def run_alone(make, df, runonce=True):
    """The indicator ``make(data)`` builds, run alone over ``df`` with an empty in-memory cache, and its lines as
    ``{alias: array}``."""
    class Holder(bt.Strategy):
        def __init__(self):
            self.ind = make(self.data)

    FitCache.forget()
    cerebro = bt.Cerebro(stdstats=False, runonce=runonce)
    cerebro.adddata(DataFrameFeed(dataname=df))
    cerebro.addstrategy(Holder)
    ind = cerebro.run()[0].ind
    return ind, {alias: np.asarray(ind.lines[i].array) for i, alias in enumerate(ind.lines.getlinealiases())}
