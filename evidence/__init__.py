"""Evidence: does a deep model beat the classical tool a quant would use instead, out of sample?

The numerical layer of the scorecard, in numpy and scipy only: proper scoring rules for densities, quantiles
and intervals (:mod:`.scoring`), VaR backtests (:mod:`.var_tests`), ranking and anomaly detection
(:mod:`.detection`), direction (:mod:`.direction`), regimes (:mod:`.regime`), and the comparison of two models'
per-bar losses with its verdict (:mod:`.comparison`). Every function takes arrays of forecasts and outcomes, one
row a bar, NaN where there is no forecast: it drops the rows where any input is NaN (:mod:`.rows`) and raises
:class:`InsufficientData` when too few are left.
"""
from .comparison import BootstrapInterval, DMTest, block_bootstrap_mean_diff, diebold_mariano, verdict
from .detection import Detection, anomaly_windows, auroc, detection_latency, precision_at_k, top_share_labels
from .direction import RankIC, rank_ic, sign_agreement
from .hac import default_lags, long_run_variance
from .regime import accuracy, log_loss
from .rows import InsufficientData
from .scoring import (LogLikelihood, crps_gaussian, crps_student_t, interval_coverage, log_likelihood_per_dim,
                      nll_gaussian, nll_student_t, pinball_loss, pit_values)
from .var_tests import LRTest, christoffersen_conditional_coverage, christoffersen_independence, kupiec_pof

__all__ = [
    # densities, quantiles, intervals
    "LogLikelihood", "log_likelihood_per_dim", "pinball_loss", "interval_coverage", "crps_gaussian",
    "crps_student_t", "nll_gaussian", "nll_student_t", "pit_values",
    # VaR backtests
    "LRTest", "kupiec_pof", "christoffersen_independence", "christoffersen_conditional_coverage",
    # ranking and detection
    "auroc", "precision_at_k", "top_share_labels", "anomaly_windows", "Detection", "detection_latency",
    # direction
    "sign_agreement", "RankIC", "rank_ic",
    # regimes
    "accuracy", "log_loss",
    # comparison of two models
    "BootstrapInterval", "block_bootstrap_mean_diff", "DMTest", "diebold_mariano", "verdict",
    # shared
    "InsufficientData", "default_lags", "long_run_variance",
]
