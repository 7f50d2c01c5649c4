"""``Energy``: how unusual the current market state is, by an energy-based model (EBM or Gaussian RBM)."""
from __future__ import annotations

from typing import Any

import numpy as np

from btdensity.models import EnergyModel, GaussianRBM

from .base import WalkForwardIndicator
from .calibration import sorted_reference, upper_tail_pvalue

__all__ = ["Energy"]

_FAMILIES = {"ebm": EnergyModel, "rbm": GaussianRBM}
_DEFAULTS = {"ebm": {"hidden": (64, 64)}, "rbm": {"n_hidden": 16}}


class Energy(WalkForwardIndicator):
    """Energy of the bar's features (low = typical), its z-score and upper-tail p-value against the
    held-out tail of the training window.

    ``model="ebm"`` (``method`` = dsm, ssm, nce or cd) or ``"rbm"`` (free energy of a Gaussian RBM).
    """

    lines = ("energy", "zscore", "pvalue")
    params = (("model", "ebm"), ("method", "dsm"))
    plotinfo = dict(subplot=True, plothlines=[0.0, 2.0, 3.0], plotname="Energy z-score")
    plotlines = dict(energy=dict(_plotskip=True), pvalue=dict(_plotskip=True),
                     zscore=dict(color="#7b3294", linewidth=1.0))
    default_fit_kwargs = {"epochs": 40, "patience": 8, "lr": 2e-3}

    def __init__(self) -> None:
        if self.p.model not in _FAMILIES:
            raise ValueError(f"Energy(model={self.p.model!r}): choose one of {sorted(_FAMILIES)}")
        self.default_model_kwargs = dict(_DEFAULTS[self.p.model])
        super().__init__()

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
        return np.column_stack([e, z, upper_tail_pvalue(state["reference"], e)])
