"""Quickstart: the model indicators in a plain backtrader strategy.

A long-only trend strategy (close above its 24-bar SMA) that trades only while the market state is familiar:
``LogDensity``'s gate is open (a RealNVP flow finds the bar's features no rarer than 5 % of its calibration
sample) and ``Energy``'s z-score is below 2. Both models refit walk-forward every ``retrain_every`` bars on the
``train_bars`` bars before. Runs on the synthetic sample market with Bybit's spot fees.

Run it::

    OMP_NUM_THREADS=1 python examples/quickstart.py

About ten seconds; fitted models are cached in ``$BTDENSITY_CACHE`` (default ``~/.cache/btdensity/models``), so a
second run takes a few. ``OMP_NUM_THREADS=1`` is optional: the networks are small, and on a machine with few
cores torch's multi-threaded kernels make them several times slower.

``import backtrader`` may come before or after ``import btdensity``: btdensity applies its backtrader fixes
whenever it is imported.
"""
import backtrader as bt

from btdensity import BybitCommission, DataFrameFeed, Energy, LogDensity, synthetic_market


class MyStrategy(bt.Strategy):
    params = (("train_bars", 1000), ("retrain_every", 500), ("epochs", 40), ("cache_dir", "default"))

    def __init__(self):
        models = dict(train_bars=self.p.train_bars, retrain_every=self.p.retrain_every,
                      fit_kwargs={"epochs": self.p.epochs}, cache_dir=self.p.cache_dir)
        self.fast = bt.ind.SMA(self.data.close, period=24)
        self.logp = LogDensity(self.data, **models)     # RealNVP flow: logp, pvalue, gate
        self.energy = Energy(self.data, **models)       # energy-based model: energy, zscore, pvalue

    def next(self):
        known_state = self.logp.gate[0] > 0 and self.energy.zscore[0] < 2.0
        if not self.position and known_state and self.data.close[0] > self.fast[0]:
            self.order_target_percent(target=0.95)
        elif self.position and (not known_state or self.data.close[0] < self.fast[0]):
            self.order_target_percent(target=0.0)


def main(bars=3000, train_bars=1000, retrain_every=500, epochs=40, seed=1, cache_dir="default"):
    """Run the strategy on ``bars`` synthetic hourly bars; returns the final value and the gate-closed share."""
    cerebro = bt.Cerebro()
    cerebro.adddata(DataFrameFeed(dataname=synthetic_market(bars, seed=seed)))   # or load_csv("btc_1h.csv")
    cerebro.addstrategy(MyStrategy, train_bars=train_bars, retrain_every=retrain_every, epochs=epochs,
                        cache_dir=cache_dir)
    cerebro.broker.addcommissioninfo(BybitCommission(market="spot"))            # fees, fractional sizes
    strategy = cerebro.run()[0]
    gate = [g for g in strategy.logp.gate.array if g == g]                        # bars with a value (not NaN)
    result = {"final_value": cerebro.broker.getvalue(), "gate_closed_share": 1 - sum(gate) / len(gate)}
    print(f"final value {result['final_value']:,.2f}; gate closed on {result['gate_closed_share']:.1%} of bars")
    return result


if __name__ == "__main__":
    main()
