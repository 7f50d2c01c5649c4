"""One comparison of a model with its baseline on the bars both serve: the figure of each, their difference with a
block-bootstrap interval, and the verdict word. Every family of the scorecard reports its comparisons this way."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

from .comparison import BootstrapInterval, block_bootstrap_mean_diff, block_bootstrap_statistic_diff, verdict
from .rows import InsufficientData

__all__ = ["Comparison", "compare_means", "compare_statistic", "unavailable"]


@dataclass(frozen=True)
class Comparison:
    """``model`` against ``baseline`` on ``metric`` over ``n`` common bars.

    ``diff`` = model − baseline in the metric's own units, [``lower``, ``upper``] its 95 % block-bootstrap
    interval; ``verdict`` is "better", "no different" or "worse" for the model (``higher_is_better`` says which
    way the metric points), or "not scored" with the reason in ``note``.
    """

    family: str
    metric: str
    model: str
    baseline: str
    model_value: float
    baseline_value: float
    diff: float
    lower: float
    upper: float
    verdict: str
    higher_is_better: bool
    n: int
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def _from_interval(family: str, metric: str, model: str, baseline: str, a: float, b: float,
                   interval: BootstrapInterval, higher_is_better: bool) -> Comparison:
    """A comparison from a bootstrap interval of model − baseline."""
    word = verdict(interval.interval, lower_is_better=not higher_is_better)
    return Comparison(family, metric, model, baseline, float(a), float(b), float(a - b), interval.lower,
                      interval.upper, word, higher_is_better, int(interval.n))


def unavailable(family: str, metric: str, model: str, baseline: str, higher_is_better: bool, reason: str) -> Comparison:
    """A comparison that could not be made (an indicator missing, too few common bars), saying why."""
    nan = float("nan")
    return Comparison(family, metric, model, baseline, nan, nan, nan, nan, nan, "not scored", higher_is_better, 0,
                      reason)


def compare_means(family: str, metric: str, model: str, baseline: str, value_a: np.ndarray, value_b: np.ndarray,
                  higher_is_better: bool, seed: int = 0) -> Comparison:
    """Compare the means of two per-bar series (a score or a loss a bar) over the bars where both are finite."""
    keep = np.isfinite(value_a) & np.isfinite(value_b)
    a, b = value_a[keep], value_b[keep]
    try:
        interval = block_bootstrap_mean_diff(a, b, seed=seed)
    except (InsufficientData, ValueError) as exc:
        return unavailable(family, metric, model, baseline, higher_is_better, str(exc))
    return _from_interval(family, metric, model, baseline, a.mean(), b.mean(), interval, higher_is_better)


def compare_statistic(family: str, metric: str, model: str, baseline: str, n: int,
                      statistic: Callable[[np.ndarray], tuple[float, float]], higher_is_better: bool,
                      seed: int = 0, n_boot: int = 400) -> Comparison:
    """Compare a statistic that is not a mean (AUROC): ``statistic(indices)`` gives (model's, baseline's) on those
    of the ``n`` common bars; the interval comes from circular block resamples of the bars."""
    if n < 20:
        return unavailable(family, metric, model, baseline, higher_is_better, f"{n} common bars (at least 20 needed)")
    a, b = statistic(np.arange(n))

    def diff(idx: np.ndarray) -> float:
        x, y = statistic(idx)
        return x - y

    try:
        interval = block_bootstrap_statistic_diff(diff, n, n_boot=n_boot, seed=seed)
    except (InsufficientData, ValueError) as exc:
        return unavailable(family, metric, model, baseline, higher_is_better, str(exc))
    return _from_interval(family, metric, model, baseline, a, b, interval, higher_is_better)
