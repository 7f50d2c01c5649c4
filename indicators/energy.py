"""``Energy``: how unusual the current market state is, by an energy-based model (EBM or Gaussian RBM).

Besides the energy, its z-score and p-value, two lines derived from the z-score:

- ``regime``: 0 / 1 / 2 / 3 = calm / normal / elevated / crisis, the z-score's place among ``regime_thresholds``
  (:func:`energy_regime`);
- ``spike_resolved``: 1 on the first bar the z-score is back below ``release`` after a spike above ``threshold`` at
  most ``resolve_bars`` bars before (:func:`spike_resolved`), the entry signal of the ``energy_reversion`` strategy.

Both read z-scores of bars ``<= t`` only. ``spike_resolved`` needs the z-scores of the bars before: like
``LogDensity``'s ``smooth_gate`` it is filled by ``once()`` from the whole z-score line and by ``next()`` from the
line's last ``resolve_bars + 1`` values, with the same function, so both paths give the same values.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from btdensity.models import EnergyModel, GaussianRBM

from .base import WalkForwardIndicator
from .calibration import sorted_reference, upper_tail_pvalue

__all__ = ["Energy", "REGIME_LABELS", "energy_regime", "spike_peak", "spike_resolved"]

_FAMILIES = {"ebm": EnergyModel, "rbm": GaussianRBM}
_DEFAULTS = {"ebm": {"hidden": (64, 64)}, "rbm": {"n_hidden": 16}}
#: the names of the ``regime`` line's values 0, 1, 2, 3
REGIME_LABELS = ("calm", "normal", "elevated", "crisis")


def energy_regime(zscore: Iterable[float], thresholds: Iterable[float]) -> np.ndarray:
    """The number of ``thresholds`` (three, increasing) at or below each z-score: 0 calm, 1 normal, 2 elevated,
    3 crisis; NaN where the z-score is NaN.

    >>> energy_regime([-1.0, -0.5, 0.3, 1.0, 2.6, np.nan], (-0.5, 1.0, 2.5)).tolist()
    [0.0, 1.0, 1.0, 2.0, 3.0, nan]
    """
    z = np.asarray(zscore, dtype=np.float64)
    out = np.searchsorted(np.asarray(tuple(thresholds), dtype=np.float64), z, side="right").astype(np.float64)
    out[np.isnan(z)] = np.nan
    return out


def _resolutions(z: np.ndarray, threshold: float, release: float, bars: int) -> tuple[np.ndarray, np.ndarray]:
    """``(fired, peak)`` per bar: ``fired`` as :func:`spike_resolved`; ``peak`` the bar (index into ``z``) of the
    highest z-score of the spike a firing bar resolves (-1 elsewhere)."""
    n = z.shape[0]
    fired = np.zeros(n)
    peak = np.full(n, -1, dtype=np.int64)
    last_above, last_below = -(10 ** 9), -(10 ** 9)   # the last bar above threshold, and below release
    for i, value in enumerate(z.tolist()):
        if math.isnan(value):       # neither a spike nor a release: keeps the episode as it was
            fired[i] = math.nan
            continue
        if value < release:
            if last_above > last_below and i - last_above <= bars:
                fired[i] = 1.0
                start = max(last_below + 1, i - bars, 0)
                window = z[start:i]
                peak[i] = start + int(np.nanargmax(window))
            last_below = i
        elif value > threshold:
            last_above = i
    return fired, peak


def spike_resolved(zscore: Iterable[float], threshold: float, release: float, bars: int) -> np.ndarray:
    """Per bar: 1.0 when the z-score is below ``release`` for the first time since a bar above ``threshold`` that
    is at most ``bars`` bars before it, else 0.0; NaN where the z-score is NaN.

    It fires once per spike, on its first bar back below ``release`` (every later bar is 0 until a new spike): an
    entry signal, not a state. A spike that takes more than ``bars`` bars to come back below ``release`` (counted
    from its last bar above ``threshold``) does not fire. A NaN z-score (warm-up, a bad bar) is neither a spike
    nor a release; bars before the first z-score count as no spike. The value at bar t depends on the z-scores of
    bars t - ``bars`` … t only.

    >>> spike_resolved([0.0, 3.0, 2.0, 0.5, 0.2, 3.2, 1.5, 1.2, np.nan, 0.9], 2.5, 1.0, 24).tolist()
    [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, nan, 1.0]
    >>> spike_resolved([3.0, 2.0, 2.0, 0.5], 2.5, 1.0, 2).tolist()    # back below release 3 bars after the spike
    [0.0, 0.0, 0.0, 0.0]
    """
    return _resolutions(np.asarray(zscore, dtype=np.float64), float(threshold), float(release), int(bars))[0]


def spike_peak(zscore: Iterable[float], threshold: float, release: float, bars: int) -> int | None:
    """How many bars before the last one the peak of the spike it resolves was (the highest z-score among the bars
    since the last bar below ``release`` and at most ``bars`` back; the first of equal highs), or None when
    :func:`spike_resolved` does not fire on the last bar.

    >>> spike_peak([0.0, 2.7, 3.1, 2.9, 1.4, 0.8], 2.5, 1.0, 24), spike_peak([0.0, 3.0, 2.0], 2.5, 1.0, 24)
    (3, None)
    """
    fired, peak = _resolutions(np.asarray(zscore, dtype=np.float64), float(threshold), float(release), int(bars))
    if fired.size == 0 or not fired[-1] == 1.0:
        return None
    return fired.size - 1 - int(peak[-1])


class Energy(WalkForwardIndicator):
    """Energy of the bar's features (low = typical), its z-score and upper-tail p-value against the
    held-out tail of the training window; ``regime`` (0 calm, 1 normal, 2 elevated, 3 crisis: the z-score's place
    among ``regime_thresholds``) and ``spike_resolved`` (1 on the first bar the z-score is back below ``release``
    within ``resolve_bars`` bars of a bar above ``threshold``, else 0; see :func:`spike_resolved`).

    ``model="ebm"`` (``method`` = dsm, ssm, nce or cd) or ``"rbm"`` (free energy of a Gaussian RBM). The parameters
    of the derived lines do not change the fits (nor the model cache's keys).
    """

    lines = ("energy", "zscore", "pvalue", "regime", "spike_resolved")
    derived_lines = ("spike_resolved",)   # from the lines before (see WalkForwardIndicator.derived_lines)
    params = (("model", "ebm"), ("method", "dsm"), ("regime_thresholds", (-0.5, 1.0, 2.5)), ("threshold", 2.5),
              ("release", 1.0), ("resolve_bars", 24))
    plotinfo = dict(subplot=True, plothlines=[0.0, 2.0, 3.0], plotname="Energy z-score")
    plotlines = dict(energy=dict(_plotskip=True), pvalue=dict(_plotskip=True),
                     zscore=dict(color="#7b3294", linewidth=1.0), regime=dict(_plotskip=True),
                     spike_resolved=dict(_plotskip=True))
    default_fit_kwargs = {"epochs": 40, "patience": 8, "lr": 2e-3}

    def __init__(self) -> None:
        if self.p.model not in _FAMILIES:
            raise ValueError(f"Energy(model={self.p.model!r}): choose one of {sorted(_FAMILIES)}")
        self._check_derived()
        self.default_model_kwargs = dict(_DEFAULTS[self.p.model])
        super().__init__()

    def _check_derived(self) -> None:
        p = self.p
        try:
            cuts = tuple(float(c) for c in p.regime_thresholds)
        except (TypeError, ValueError):
            cuts = ()
        if len(cuts) != 3 or not all(math.isfinite(c) for c in cuts) or not cuts[0] < cuts[1] < cuts[2]:
            raise ValueError(f"Energy(regime_thresholds={p.regime_thresholds!r}): three increasing z-scores, "
                             "e.g. (-0.5, 1.0, 2.5)")
        self.regime_thresholds = cuts
        if not (math.isfinite(p.release) and math.isfinite(p.threshold) and p.release < p.threshold):
            raise ValueError(f"Energy(release={p.release}, threshold={p.threshold}): release must be a z-score "
                             "below threshold")
        if isinstance(p.resolve_bars, bool) or not isinstance(p.resolve_bars, int) or p.resolve_bars < 1:
            raise ValueError(f"Energy(resolve_bars={p.resolve_bars!r}): a positive number of bars")

    def model_class(self) -> type:
        return _FAMILIES[self.p.model]

    def extra_config(self) -> dict[str, Any]:
        return {"method": self.p.method if self.p.model == "ebm" else None}

    def make_model(self, n_features: int) -> Any:
        if self.p.model == "ebm":
            return EnergyModel(n_features, method=self.p.method, seed=self.p.seed, **self.model_kwargs)
        return GaussianRBM(n_features, seed=self.p.seed, **self.model_kwargs)

    def calibrate(self, model: Any, X_val: np.ndarray, y_val: Any) -> Any:
        e = model.energy(X_val)
        return {"mean": float(e.mean()), "std": float(e.std()) or 1.0, "reference": sorted_reference(e)}

    def evaluate(self, model: Any, state: Any, X: np.ndarray) -> np.ndarray:
        e = model.energy(X)
        z = (e - state["mean"]) / state["std"]
        return np.column_stack([e, z, upper_tail_pvalue(state["reference"], e),
                                energy_regime(z, self.regime_thresholds)])

    def _spike_resolved(self, zscore: np.ndarray) -> np.ndarray:
        return spike_resolved(zscore, self.p.threshold, self.p.release, self.p.resolve_bars)

    def derive_all(self, n: int) -> np.ndarray:
        return self._spike_resolved(np.asarray(self.lines.zscore.array[0:n], dtype=np.float64))[:, None]

    def derive_bar(self) -> tuple[float, ...]:
        recent = np.asarray(self.lines.zscore.get(size=min(self.p.resolve_bars + 1, len(self))), dtype=np.float64)
        return (float(self._spike_resolved(recent)[-1]),)
