"""Parameter sweeps and walk-forward optimisation: grids of backtests on a process pool or Ray, resumable,
with ``sweep.csv`` and ``sweep.html``, and the selected trials' deflated Sharpe ratio and probability of
backtest overfitting (``overfitting.csv``)."""
from .grid import SweepGrid, WalkForwardSplit, load_grid
from .overfitting import deflated_sharpe_ratio, probability_of_backtest_overfitting
from .sweep import SweepResult, sweep
from .trial import make_trial, run_trial, trial_id

__all__ = ["SweepGrid", "SweepResult", "WalkForwardSplit", "deflated_sharpe_ratio", "load_grid", "make_trial",
           "probability_of_backtest_overfitting", "run_trial", "sweep", "trial_id"]
