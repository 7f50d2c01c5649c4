"""Parameter sweeps and walk-forward optimisation: grids of backtests on a process pool or Ray, resumable,
with ``sweep.csv`` and ``sweep.html``."""
from .grid import SweepGrid, WalkForwardSplit, load_grid
from .sweep import SweepResult, sweep
from .trial import make_trial, run_trial, trial_id

__all__ = ["SweepGrid", "SweepResult", "WalkForwardSplit", "load_grid", "make_trial", "run_trial", "sweep", "trial_id"]
